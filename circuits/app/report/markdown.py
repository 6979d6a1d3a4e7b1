"""``report.md``: the report's blocks as GitHub-flavoured Markdown. Figures are referenced by
relative file name (``![circuit](circuit.png)``); edge names and identifiers sit in code spans
so port suffixes such as ``<q>`` show literally."""

from __future__ import annotations

from urllib.parse import quote

from circuits.app.report.captions import figure_order
from circuits.app.report.doc import (
    Code,
    Contents,
    Figure,
    Heading,
    Inline,
    Link,
    Paragraph,
    Strong,
    Table,
)
from circuits.app.report.document import document
from circuits.app.report.summary import footer

__all__ = ["render_markdown"]

_MD_ALWAYS = set("\\`*<|&~")  # characters that are markup wherever they stand


def _md_text(text: str) -> str:
    """Escape text for Markdown, leaving harmless characters (``riemann_left``, ``[0.9, 1]``,
    ``a->b``) unescaped so the raw file stays readable."""
    text = " ".join(str(text).split("\n"))
    out = []
    for i, c in enumerate(text):
        before = text[i - 1] if i > 0 else ""
        after = text[i + 1] if i + 1 < len(text) else ""
        escape = (
            c in _MD_ALWAYS
            or (c == "_" and not (before.isalnum() and after.isalnum()))  # emphasis
            or (c == "]" and after == "(")  # inline link
            or (c == ">" and i == 0)  # block quote
        )
        out.append("\\" + c if escape else c)
    return "".join(out)


def _md_code(text: str) -> str:
    text = " ".join(str(text).split("\n"))
    longest = run = 0
    for c in text:
        run = run + 1 if c == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_inline(content: Inline, *, in_table: bool = False) -> str:
    pieces = [content] if isinstance(content, str) else list(content)
    out = []
    for piece in pieces:
        if isinstance(piece, Code):
            text = _md_code(piece)
            if in_table:  # GFM splits cells on '|' even inside code spans
                text = text.replace("|", "\\|")
        elif isinstance(piece, Strong):
            text = f"**{_md_text(piece)}**"
        elif isinstance(piece, Link):
            text = f"[{_md_text(piece)}]({quote(piece.href)})"
        else:
            text = _md_text(piece)
        out.append(text)
    return "".join(out)


def render_markdown(metrics: dict, figures: dict[str, str | None]) -> str:
    """The report as Markdown. ``figures`` maps a figure key (``"circuit"``, …) to its file name
    relative to the report, or to ``None`` when the figure is not available."""
    figures = dict(figures)
    lines: list[str] = []
    for block in document(metrics, figure_order(figures)):
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _md_text(block.text), ""]
        elif isinstance(block, Paragraph):
            text = _md_inline(block.content)
            if block.css == "warning":
                text = f"> ⚠ {text}"
            lines += [f"*{text}*" if block.css == "note" else text, ""]
        elif isinstance(block, Contents):
            lines += ["**Contents**", ""]
            lines += [f"- [{_md_text(text)}](#{anchor})" for anchor, text in block.entries] + [""]
        elif isinstance(block, Table):
            lines.append("| " + " | ".join(_md_text(h) for h in block.headers) + " |")
            lines.append("|" + "|".join("---:" if a == "r" else "---" for a in block.align) + "|")
            for row in block.rows:
                cells = [_md_inline(cell, in_table=True) or " " for cell in row]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        elif isinstance(block, Figure):
            name = figures.get(block.key)
            if name:
                lines.append(f"![{_md_text(block.key)}]({quote(name)})")
            else:
                lines.append(
                    f"*(figure not available: {_md_code(block.expected)} "
                    "is missing from the run folder or is not a PNG image)*"
                )
            lines += ["", f"*Figure {block.number}: {_md_inline(block.caption)}*", ""]
    lines += ["---", "", _md_inline(footer(metrics)), ""]
    return "\n".join(lines)
