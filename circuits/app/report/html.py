"""``report.html``: the report's blocks as one self-contained page. Every figure is inlined as a
``data:image/png;base64,…`` URI and the page styles itself with inline CSS: it has no external
references and no JavaScript, and opens offline (its one link goes to ``explorer.html`` beside
it, :mod:`circuits.app.explorer`). Every piece of text is HTML-escaped."""

from __future__ import annotations

import base64
import html
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
from circuits.app.report.load import PNG_SIGNATURE
from circuits.app.report.summary import footer, title

__all__ = ["render_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.5;
  color: #1a1a1a; background: #fff; margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
h1 { font-size: 1.7rem; margin-bottom: 0.5rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
p.summary { font-size: 1.08rem; background: #f4f7fb; border-left: 4px solid #3b6ea5;
  padding: 0.7rem 1rem; }
p.warning { background: #fff4e5; border-left: 4px solid #d9822b; padding: 0.5rem 1rem; }
nav.contents { font-size: 0.93rem; } nav.contents ul { margin: 0.2rem 0; }
p.note, p.missing { color: #8a5a00; font-style: italic; }
p.missing { border: 1px dashed #c9a040; padding: 1.5rem; text-align: center; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.93rem; }
th, td { border: 1px solid #d6d6d6; padding: 0.25rem 0.6rem; vertical-align: top; }
th { background: #f0f0f0; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em;
  background: #f3f3f3; padding: 0 0.2em; border-radius: 3px; word-break: break-all; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e2e2e2; }
figcaption { color: #444; font-size: 0.92rem; margin-top: 0.3rem; }
footer { margin-top: 3rem; border-top: 1px solid #ddd; padding-top: 0.6rem; color: #555;
  font-size: 0.88rem; }
@media print { main { max-width: none; } figure { break-inside: avoid; } }
""".strip()


_NUM_CLASS = ' class="num"'


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_inline(content: Inline) -> str:
    pieces = [content] if isinstance(content, str) else list(content)
    out = []
    for piece in pieces:
        if isinstance(piece, Code):
            out.append(f"<code>{_h(piece)}</code>")
        elif isinstance(piece, Strong):
            out.append(f"<strong>{_h(piece)}</strong>")
        elif isinstance(piece, Link):
            out.append(f'<a href="{_h(quote(piece.href))}">{_h(piece)}</a>')
        else:
            out.append(_h(piece))
    return "".join(out)


def render_html(metrics: dict, images: dict[str, bytes | None]) -> str:
    """The report as one self-contained HTML page. ``images`` maps a figure key to the PNG
    file's bytes, which are inlined as ``data:`` URIs, or to ``None`` when not available."""
    images = dict(images)
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_h(title(metrics))}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        "<main>",
    ]
    for block in document(metrics, figure_order(images)):
        if isinstance(block, Heading):
            anchor = f' id="{_h(block.anchor)}"' if block.anchor else ""
            out.append(f"<h{block.level}{anchor}>{_h(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = f' class="{_h(block.css)}"' if block.css else ""
            out.append(f"<p{css}>{_html_inline(block.content)}</p>")
        elif isinstance(block, Contents):
            out.append('<nav class="contents"><strong>Contents</strong><ul>')
            out += [
                f'<li><a href="#{_h(anchor)}">{_h(text)}</a></li>' for anchor, text in block.entries
            ]
            out.append("</ul></nav>")
        elif isinstance(block, Table):
            out += _table(block)
        elif isinstance(block, Figure):
            out += _figure(block, images.get(block.key))
    out += [
        f"<footer><p>{_html_inline(footer(metrics))}</p></footer>",
        "</main>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(out)


def _table(block: Table) -> list[str]:
    """A table's lines; number columns (align ``r``) are right-aligned."""
    out = ["<table>", "<thead><tr>"]
    for header, align in zip(block.headers, block.align, strict=True):
        css = _NUM_CLASS if align == "r" else ""
        out.append(f"<th{css}>{_h(header)}</th>")
    out += ["</tr></thead>", "<tbody>"]
    for row in block.rows:
        cells = "".join(
            f"<td{_NUM_CLASS if align == 'r' else ''}>{_html_inline(cell)}</td>"
            for cell, align in zip(row, block.align, strict=True)
        )
        out.append(f"<tr>{cells}</tr>")
    return out + ["</tbody>", "</table>"]


def _figure(block: Figure, data: bytes | None) -> list[str]:
    """A figure's lines: the PNG inlined, or a note saying why it is not available."""
    caption = f"Figure {block.number}: {_html_inline(block.caption)}"
    out = [f'<figure id="figure-{_h(block.key)}">']
    if data is not None and bytes(data).startswith(PNG_SIGNATURE):
        encoded = base64.b64encode(bytes(data)).decode("ascii")
        out.append(f'<img src="data:image/png;base64,{encoded}" alt="{_h(block.key)}">')
    else:
        reason = "is missing from the run folder" if data is None else "is not a PNG image"
        out.append(
            f'<p class="missing">figure not available '
            f"(<code>{_h(block.expected)}</code> {reason})</p>"
        )
    return out + [f"<figcaption>{caption}</figcaption>", "</figure>"]
