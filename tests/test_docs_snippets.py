"""Every ```python block of README.md and docs/*.md runs as written.

Each file's blocks run in order in one namespace, in a temporary folder, offline. A block
that must not run is marked by an HTML comment on the line before its fence,
``<!-- no-test: reason -->``; :data:`SKIPPED` lists every such block, so a new one is a
visible change to this file. A ```text block right after a python block (blank lines
between at most) is that block's printed output and must match it, so shown output cannot go
stale. Files whose blocks take long on 2 CPU cores are marked slow (``make test`` runs them).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]

#: (file, reason) of every block marked ``<!-- no-test: reason -->``.
SKIPPED = [
    ("docs/architecture.md", "edits a file inside the attribution package"),
    ("docs/architecture.md", "edits a file inside the attribution package"),
    ("docs/architecture.md", "edits a file inside the circuits package"),
    ("docs/architecture.md", "edits a file inside the graphs package"),
    ("docs/models.md", "downloads gpt2 from the Hugging Face Hub"),
]

#: Files whose blocks train or search on the bundled model (over 10 s on 2 cores).
SLOW = {"README.md", "docs/alignment.md", "docs/circuits.md", "docs/guide.md"}

_SKIP = re.compile(r"<!--\s*no-test:\s*(.+?)\s*-->")


@dataclass
class Snippet:
    """One python block: where it starts, its code, its shown output, or why it is skipped."""

    path: str
    line: int  # 1-based line of the first code line
    code: str
    output: str | None = None
    skip: str | None = None


def snippets(path: str) -> list[Snippet]:
    """The python blocks of ``path`` (relative to the repository root), in order."""
    lines = (ROOT / path).read_text().splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        fence = lines[i].strip()
        if not fence.startswith("```") or fence == "```":
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        body = "\n".join(lines[i + 1 : end])
        if fence == "```python":
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            reason = _SKIP.search(before)
            found.append(Snippet(path, i + 2, body, skip=reason.group(1) if reason else None))
        elif fence == "```text" and found and _only_blank(lines, found[-1], i):
            found[-1].output = body
        i = end + 1
    return found


def _only_blank(lines: list[str], previous: Snippet, fence: int) -> bool:
    """Whether only blank lines lie between ``previous``'s closing fence and line ``fence``."""
    closing = previous.line - 1 + len(previous.code.splitlines())  # 0-based closing fence
    return all(not lines[j].strip() for j in range(closing + 1, fence))


def _run_file(path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from circuits.groundtruth import registry

    # a snippet may register a ground truth; keep it out of the other tests
    monkeypatch.setattr(registry, "BUILDERS", dict(registry.BUILDERS))
    namespace: dict = {"__name__": "__snippet__"}
    for snippet in snippets(path):
        if snippet.skip:
            continue
        # padded so that a traceback's line numbers are the markdown file's
        code = compile("\n" * (snippet.line - 1) + snippet.code, str(ROOT / path), "exec")
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(code, namespace)  # noqa: S102 - running the documentation is the test
        # a warning raised at the snippet's own line is the project telling it it misuses an API
        misuse = [
            f"{path}:{w.lineno}: {w.message}" for w in caught if w.filename == code.co_filename
        ]
        assert not misuse, misuse
        if snippet.output is not None:
            shown = [line.rstrip() for line in snippet.output.strip().splitlines()]
            real = [line.rstrip() for line in printed.getvalue().strip().splitlines()]
            assert real == shown, f"{path}:{snippet.line}: the output shown below the block"


def _params() -> list:
    return [
        pytest.param(path, marks=[pytest.mark.slow] if path in SLOW else [], id=path)
        for path in FILES
        if any(not s.skip for s in snippets(path))
    ]


@pytest.mark.parametrize("path", _params())
def test_python_blocks_run_as_written(path, tmp_path, monkeypatch):
    _run_file(path, tmp_path, monkeypatch)


def test_skipped_blocks_are_listed_with_their_reason():
    marked = [(s.path, s.skip) for path in FILES for s in snippets(path) if s.skip]
    print(f"{len(marked)} python blocks skipped: {marked}")
    assert marked == SKIPPED


def test_parser_reads_blocks_skips_and_shown_output(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n```python\nprint(1 + 1)\n```\n\n```text\n2\n```\n\n"
        "<!-- no-test: needs a GPU -->\n```python\nraise SystemExit\n```\n\n```bash\nls\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    first, second = snippets("page.md")
    assert (first.line, first.code, first.output, first.skip) == (4, "print(1 + 1)", "2", None)
    assert (second.line, second.skip, second.output) == (13, "needs a GPU", None)
    page.write_text(page.read_text().replace("```text\n2", "```text\n3"))
    with pytest.raises(AssertionError, match="page.md:4"):
        _run_file("page.md", tmp_path, monkeypatch)
    page.write_text('```python\nimport warnings\nwarnings.warn("misused")\n```\n')
    with pytest.raises(AssertionError, match="page.md:3: misused"):
        _run_file("page.md", tmp_path, monkeypatch)


def test_guide_lists_every_registered_method():
    from attribution.methods import method_names

    guide = (ROOT / "docs" / "guide.md").read_text()
    sentence = guide[guide.index("`--method` takes") :].split(".")[0]
    missing = [name for name in method_names() if f"`{name}`" not in sentence]
    assert not missing, f"docs/guide.md's --method list lacks {missing}"


def _command_lines(path: str) -> list[tuple[int, str]]:
    """``(line, arguments)`` of every command line ``circuits ...`` of ``path`` (backslash
    continuations joined), except synopses with ``[...]``, ``|`` or ``...`` in them."""
    found = []
    lines = (ROOT / path).read_text().splitlines()
    for n, line in enumerate(lines, 1):
        match = re.match(r"^\s*(?:\$ )?(?:torchrun .*?)?circuits (.+)$", line)
        if not match or any(t in line for t in ("[", "|", "...", "…")):
            continue
        text, k = match.group(1), n
        while text.endswith("\\"):
            text, k = text[:-1] + lines[k].strip(), k + 1
        found.append((n, text.split("  #")[0].split("# ")[0].strip()))
    return found


@pytest.mark.parametrize("path", FILES)
def test_shell_examples_are_valid_command_lines(path):
    import shlex

    from circuits.app.cli import _parser

    parser = _parser()
    for line, arguments in _command_lines(path):
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                parser.parse_args(shlex.split(arguments))
            except SystemExit:
                pytest.fail(f"{path}:{line}: `circuits {arguments}`: {err.getvalue().strip()}")
