"""``circuits data check FILE --model M``: validate a prompt file and describe it, without
loading the model's weights (exit 2 listing every problem, each with ``FILE:LINE``).

Its parser imports no torch (``circuits.models.zoo`` is read only for the default model's
name), so the command's start-up is the check's own."""

from __future__ import annotations

import argparse

from circuits.app.cli.common import EXIT_OK, add_data_options

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = "Tools for your own prompt files (.jsonl / .csv; see docs/guide.md)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``data`` command's subcommands: ``check``."""
    from circuits.models.zoo import DEFAULT_MODEL

    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    c = dsub.add_parser(
        "check",
        help="validate a prompt file against a model's tokenizer",
        description="Print the rows, splits, duplicate rows dropped, token lengths, answers "
        "and (when the rows give them) spans of FILE under MODEL's tokenizer; exit 2 listing "
        "every problem (with its line) if discover --data could not use it: the same checks, "
        "including MODEL's context length and the train/test split.",
    )
    c.add_argument("file", help="prompt file (.jsonl or .csv)")
    c.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"model whose tokenizer and context length to check against (default: {DEFAULT_MODEL})",
    )
    add_data_options(c, data=False)
    c.add_argument("--seed", type=int, default=0, help="seed of the 80/20 split (default: 0)")
    c.add_argument(
        "--positions", choices=("tokens", "schema"),
        help="also check what discover --positions needs (tokens: every prompt of one length; "
        "schema: spans in every row)",
    )  # fmt: skip


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Run ``circuits data check``: the same validation pass as ``discover --data``
    (:func:`circuits.app.prompts.check_data_file`); a bad file raises PromptFileError (exit 2)."""
    from circuits.app.prompts import check_data_file, data_summary

    prompts, tokenizer = check_data_file(
        args.file, args.model, args.counterfactual, args.seed, args.positions
    )
    print(data_summary(prompts, tokenizer))
    return EXIT_OK
