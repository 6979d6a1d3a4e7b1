"""Entity attributes in the style of RAVEL (Huang et al. 2024).

A synthetic world of cities, each with a country, a continent (fixed by the country, as in
the real world) and a language (drawn independently of the country, so that two attributes
of one entity can be told apart by interventions). Prompts query one attribute:
"Varo is a city in the country of" → " Norway". Corrupted prompts ask the same question
about another city whose value differs.

The world is fixed (built from :data:`WORLD_SEED`), because a model can only know the facts
it was trained on; seeds choose prompts, not facts. Every fact appears in the training split
through its first template, and held-out prompts ask known facts in other words.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

from circuits.tasks.base import Example, Task, TaskError, split_of, words_of
from circuits.tasks.ioi import NAMES

__all__ = ["WORLD", "WORLD_SEED", "EntityAttributes", "World"]

WORLD_SEED = 0

COUNTRIES: dict[str, str] = {
    "France": "Europe", "Norway": "Europe", "Spain": "Europe",
    "Japan": "Asia", "India": "Asia", "Nepal": "Asia",
    "Kenya": "Africa", "Ghana": "Africa", "Egypt": "Africa",
    "Peru": "America", "Canada": "America", "Chile": "America",
}  # fmt: skip

LANGUAGES: tuple[str, ...] = (
    "Aldic",
    "Borean",
    "Cyran",
    "Dolmic",
    "Eskan",
    "Galic",
    "Hovan",
    "Ivric",
)

_ONSETS = ("B", "D", "F", "K", "L", "M", "N", "P", "R", "S", "T", "V", "Z")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("l", "n", "r", "s", "t", "v", "m")

TEMPLATES: dict[str, tuple[str, ...]] = {
    "country": (
        "[E] is a city in the country of",
        "The city of [E] is located in the country of",
        "People who live in [E] are citizens of",
        "[E] belongs to the country of",
    ),
    "continent": (
        "[E] is a city on the continent of",
        "The city of [E] lies on the continent of",
        "To visit [E] you travel to the continent of",
        "[E] can be found on the continent of",
    ),
    "language": (
        "People in [E] speak",
        "The main language of [E] is",
        "In the city of [E] most people speak",
        "The language spoken in [E] is",
    ),
}


@dataclass(frozen=True)
class World:
    """Entities and their attribute values: ``facts[entity][attribute] -> value``."""

    facts: dict[str, dict[str, str]]

    @property
    def entities(self) -> tuple[str, ...]:
        return tuple(self.facts)

    @property
    def attributes(self) -> tuple[str, ...]:
        return tuple(TEMPLATES)

    def values(self, attribute: str) -> tuple[str, ...]:
        return tuple(sorted({f[attribute] for f in self.facts.values()}))


def build_world(n_entities: int = 48, seed: int = WORLD_SEED) -> World:
    """Invented city names with a country (and its continent) and a language."""
    rng = random.Random(f"world:{seed}")
    names: list[str] = []
    while len(names) < n_entities:
        name = rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) + rng.choice(_VOWELS)
        if name not in names and name not in NAMES:  # a city must not share a person's name
            names.append(name)
    countries = list(COUNTRIES)
    facts = {}
    for i, name in enumerate(names):
        country = countries[i % len(countries)]  # every country has the same number of cities
        facts[name] = {
            "country": country,
            "continent": COUNTRIES[country],
            "language": rng.choice(LANGUAGES),
        }
    return World(facts)


WORLD = build_world()


class EntityAttributes(Task):
    """RAVEL-style attribute queries about the cities of :data:`WORLD`."""

    name = "entity-attributes"
    metric = "logit_diff"
    description = "entity attributes: 'Varo is a city in the country of' -> Norway (country, continent, language)"

    def __init__(self, world: World = WORLD, attributes: tuple[str, ...] | None = None) -> None:
        self.world = world
        self.attributes = attributes or world.attributes
        unknown = [a for a in self.attributes if a not in TEMPLATES]
        if unknown:
            raise TaskError(f"unknown attributes {unknown}; choose from {list(TEMPLATES)}")

    @cached_property
    def _by_value(self) -> dict[tuple[str, str], list[str]]:
        out: dict[tuple[str, str], list[str]] = {}
        for entity, facts in self.world.facts.items():
            for attribute, value in facts.items():
                out.setdefault((attribute, value), []).append(entity)
        return out

    def prompt(self, entity: str, attribute: str, template: int = 0) -> str:
        return TEMPLATES[attribute][template].replace("[E]", entity)

    def sample(self, rng: random.Random) -> Example:
        attribute = rng.choice(self.attributes)
        template = rng.randrange(len(TEMPLATES[attribute]))
        entity = rng.choice(self.world.entities)
        value = self.world.facts[entity][attribute]
        other = rng.choice(
            [e for e in self.world.entities if self.world.facts[e][attribute] != value]
        )
        other_value = self.world.facts[other][attribute]
        return Example(
            clean=self.prompt(entity, attribute, template),
            corrupted=self.prompt(other, attribute, template),
            answers=(" " + value,),
            distractors=(" " + other_value,),
            corrupted_answers=(" " + other_value,),
            variables={
                "entity": entity,
                "attribute": attribute,
                "template": template,
                "corrupted_entity": other,
            },
        )

    def split_of(self, example: Example) -> str:
        if example.variables["template"] == 0:
            return "train"  # every fact must be learnable from the training split
        return split_of(example.clean)

    def vocabulary(self) -> set[str]:
        words = set(self.world.entities) | set(COUNTRIES) | set(COUNTRIES.values()) | set(LANGUAGES)
        for templates in TEMPLATES.values():
            for template in templates:
                words |= set(words_of(template.replace("[E]", "")))
        return words
