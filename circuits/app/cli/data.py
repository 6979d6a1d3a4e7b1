"""``circuits data check FILE --model M``: validate a prompt file and describe it, without
loading the model's weights (exit 2 listing every problem, each with ``FILE:LINE``)."""

from __future__ import annotations

import argparse

__all__ = ["add_data_options", "data_parser", "run_data"]


def add_data_options(p: argparse.ArgumentParser, *, data: bool = True) -> None:
    """``--data FILE`` (with ``data``) and ``--counterfactual NAME``."""
    if data:
        p.add_argument(
            "--data", metavar="FILE",
            help="your own prompt pairs (.jsonl or .csv, see docs/guide.md) instead of --task",
        )  # fmt: skip
    p.add_argument(
        "--counterfactual", metavar="NAME",
        help="which counterfactual prompt of MIB-style rows is the corrupted prompt",
    )  # fmt: skip


def data_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` command (and its ``check`` subcommand) to the ``circuits`` parser."""
    from circuits.models.zoo import DEFAULT_MODEL

    p = sub.add_parser(
        "data",
        help="check a prompt file",
        description="Tools for your own prompt files (.jsonl / .csv; see docs/guide.md).",
    )
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


def run_data(args: argparse.Namespace) -> int:
    """Run ``circuits data check``: the same validation pass as ``discover --data``
    (:func:`circuits.app.prompts.check_data_file`); a bad file raises PromptFileError (exit 2)."""
    from circuits.app.prompts import check_data_file, data_summary

    prompts, tokenizer = check_data_file(
        args.file, args.model, args.counterfactual, args.seed, args.positions
    )
    print(data_summary(prompts, tokenizer))
    return 0
