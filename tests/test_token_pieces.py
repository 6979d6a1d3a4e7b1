"""token_ids a whitespace piece at a time (circuits.tasks.pieces): exactly the ids of
tokenising each text whole, for the tokenizers it reads, and the whole path for the rest."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from circuits.models import zoo
from circuits.tasks import pieces
from circuits.tasks.encode import token_ids

TEXTS = [
    "When Mary and John went to the store, John gave a drink to",
    "When Mary and John went to the store, John gave a drink to Mary",
    "When Mary and John went to the store, John gave a drink toMary",
    "  When Mary\tand John\n went to the store,John gave a drink to ",
    "Then, Sam and Clara had a long argument. Afterwards Sam said to Zyx",
    "Mary\x1cJohn",  # a separator Python splits on and the tokenizer does not
    "Mary\u00a0John",  # no-break space: not ASCII, tokenised whole
    "",
]


def _whole(backend: Tokenizer, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in backend.encode_batch(texts, add_special_tokens=True)]


class Counting:
    """A tokenizers.Tokenizer that counts the texts it encodes."""

    def __init__(self, inner: Tokenizer):
        self.inner, self.texts = inner, 0
        self.truncation, self.padding = inner.truncation, inner.padding

    def __getattr__(self, name):  # the pipeline's parts, read by pieces.whitespace_first
        parts = ("normalizer", "pre_tokenizer", "post_processor", "get_added_tokens_decoder")
        if name not in parts:
            raise AttributeError(name)  # e.g. encode_batch_fast: every encoding is counted
        return getattr(self.inner, name)

    def encode(self, text, add_special_tokens=True):
        return self.inner.encode(text, add_special_tokens=add_special_tokens)

    def encode_batch(self, texts, add_special_tokens=True):
        self.texts += len(texts)
        return self.inner.encode_batch(texts, add_special_tokens=add_special_tokens)


def _word_level(post=None, first=None) -> Tokenizer:
    words = sorted({w for t in TEXTS for w in t.replace(",", " , ").replace(".", " . ").split()})
    vocab = {w: i for i, w in enumerate(["<unk>", "<bos>", "</s>", *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [first or pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    if post is not None:
        tok.post_processor = post
    return tok


BOS = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
EOS = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])


def test_the_bundled_tokenizer_goes_a_piece_at_a_time_with_the_whole_texts_ids():
    tokenizer = zoo.load_tokenizer("toy-gpt2")
    backend = tokenizer.backend_tokenizer
    assert pieces.whitespace_first(backend)
    many = TEXTS * 30  # more texts than the confirming sample
    assert pieces.piecewise_ids(backend, many) == _whole(backend, many)
    assert token_ids(tokenizer, many) == _whole(backend, many)


@pytest.mark.parametrize(
    "post, first, read",
    [
        (None, None, True),
        (BOS, None, True),
        (BOS, pre_tokenizers.Whitespace(), True),
        (EOS, None, False),  # a special token after the text
        (BOS, pre_tokenizers.Punctuation(), False),  # does not split on whitespace first
    ],
)
def test_a_piece_at_a_time_only_where_the_pipeline_allows_it(post, first, read):
    tok = _word_level(post, first)
    assert pieces.whitespace_first(tok) is read
    many = TEXTS * 30
    assert token_ids(tok, many) == _whole(tok, many)
    counting = Counting(tok)
    token_ids(counting, many)
    distinct = len(set(many))
    if read:  # the distinct pieces, the confirming sample and the texts tokenised whole
        assert counting.texts < len(many)
    else:
        assert counting.texts == distinct


def test_at_most_a_sample_of_texts_is_tokenised_whole_once():
    # the sample would be every text: the pieces would only be extra work
    tok = Counting(_word_level(BOS))
    assert pieces.piecewise_ids(tok, TEXTS * 8) is None  # 64 texts
    token_ids(tok, TEXTS * 8)
    assert tok.texts == len(set(TEXTS))


def test_a_wrong_reading_falls_back_to_whole_texts(monkeypatch):
    # were the pipeline read wrongly (here: a tokenizer adding a special token after the text
    # taken for one that adds none), the confirming sample catches it
    tok = _word_level(EOS)
    monkeypatch.setattr(pieces, "whitespace_first", lambda _: True)
    assert pieces.piecewise_ids(tok, TEXTS * 30) is None  # more texts than the sample
    assert token_ids(tok, TEXTS * 30) == _whole(tok, TEXTS * 30)


def test_continuations_join_their_prompts_ids_exactly_where_a_space_separates_them():
    tokenizer = zoo.load_tokenizer("toy-gpt2")
    backend = tokenizer.backend_tokenizer
    prompts = [TEXTS[0], TEXTS[4]] * 40
    prompt_ids = token_ids(tokenizer, prompts)
    pairs = [(i, c) for i in range(len(prompts)) for c in (" Mary", " John", " the store")]
    whole = _whole(backend, [prompts[i] + c for i, c in pairs])
    assert pieces.joined_ids(backend, prompts, prompt_ids, pairs) == whole
    # no space between prompt and continuation, or a prompt ending in one: not joined
    assert pieces.joined_ids(backend, prompts, prompt_ids, [*pairs, (0, "Mary")]) is None
    spaced = [TEXTS[3]] * 70  # more pairs than the sample, so only the space decides
    spaced_pairs = [(i, " Mary") for i in range(len(spaced))]
    assert pieces.joined_ids(backend, spaced, token_ids(tokenizer, spaced), spaced_pairs) is None
    # and extended_ids then tokenises those texts whole, with the same ids
    from circuits.tasks.encode import extended_ids

    more = [*pairs, (0, "Mary")]
    assert extended_ids(tokenizer, prompts, prompt_ids, more) == _whole(
        backend, [prompts[i] + c for i, c in more]
    )


def test_joined_ids_whose_sample_disagrees_are_not_used():
    # wrong prompt ids (as a misread pipeline would give) are caught by the sample
    tokenizer = zoo.load_tokenizer("toy-gpt2")
    backend = tokenizer.backend_tokenizer
    prompts = [TEXTS[0]] * 70  # more pairs than the sample
    wrong = [ids[1:] for ids in token_ids(tokenizer, prompts)]
    pairs = [(i, " Mary") for i in range(len(prompts))]
    assert pieces.joined_ids(backend, prompts, wrong, pairs) is None
    right = token_ids(tokenizer, prompts)  # the same pairs with the right ids are joined
    assert pieces.joined_ids(backend, prompts, right, pairs) == _whole(
        backend, [prompts[i] + c for i, c in pairs]
    )
