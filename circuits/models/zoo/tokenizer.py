"""The bundled word-level tokenizer, built with Hugging Face ``tokenizers``.

Every word of :func:`circuits.tasks.all_words` is one token; text is split by
:data:`circuits.tasks.base.WORD_PATTERN` (words, digit pairs, single characters), and every
encoding starts with ``<bos>``. Unknown words become ``<unk>``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SPECIAL_TOKENS", "build_tokenizer"]

#: Special tokens and their ids (the first ids of the vocabulary).
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>")


def build_tokenizer(words: Iterable[str]):
    """A ``PreTrainedTokenizerFast`` whose vocabulary is the special tokens then sorted ``words``.

    Returns:
        ``transformers.PreTrainedTokenizerFast`` with ``padding_side="right"``; save it with
        ``save_pretrained(dir)`` to get ``tokenizer.json``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from circuits.tasks.base import WORD_PATTERN

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for word in sorted(set(words) - set(SPECIAL_TOKENS)):
        vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated"),
        ]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins tokens with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="right",
        model_max_length=64,
    )
