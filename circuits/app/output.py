"""The run folder's safety: where ``circuits discover`` may write, and one run per folder.

:func:`check_output_folder` refuses, before any model work, an output it must not replace
(the current, home or a repository folder, a folder that is not a run folder) or cannot
write (it tries to create a folder there, which also catches ``/proc`` and read-only mounts).

:func:`output_lock` holds an exclusive ``flock`` on a lock file beside the output folder
(``.circuits-lock-NAME``) for the whole run, so a second run into the same ``--out`` fails at
once, naming the first (pid, command, start time), instead of one silently replacing the
other's folder when it finishes. The kernel releases the lock when the process ends, however
it ends; a lock file left by a killed run is therefore taken over, not obeyed.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from circuits.app.errors import RunError
from circuits.app.run import METRICS_FILE, RUN_FORMAT

try:
    import fcntl
except ImportError:  # Windows: no flock; runs go unlocked there
    fcntl = None

__all__ = ["OutputError", "OutputLockedError", "check_output_folder", "lock_path", "output_lock"]

LOCK_PREFIX = ".circuits-lock-"


class OutputError(RunError):
    """An output folder that must not or cannot be written; the message says the fix."""


class OutputLockedError(OutputError):
    """Another run is writing the same output folder."""


def check_output_folder(out: Path, overwrite: bool) -> None:
    """OutputError unless ``out`` can be created (or replaced with ``overwrite``) and written.

    The folder is replaced as a whole, so ``overwrite`` replaces only a run folder of this
    tool (its ``metrics.json`` says ``"format": "circuit-discovery-run"``), and never the
    current folder, the home folder, a git repository or a folder holding one of them.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output {out} exists and is not a folder; choose another --out")
    why = _protected(out)
    if why:
        raise OutputError(
            f"refusing to write the run folder {out}: it {why}, and a run folder is replaced "
            f"as a whole; choose a new folder, e.g. --out {out / 'circuit_run'}"
        )
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputError(
                f"output folder {out} exists and is not empty; pass --overwrite to replace it, or choose another --out"
            )
        found = _not_a_run_folder(out)
        if found:
            raise OutputError(
                f"--overwrite replaces only a run folder written by `circuits discover`, and {out} "
                f"is not one: it holds {found}; move those files away, or choose another --out"
            )
    _check_writable(out)


def _check_writable(out: Path) -> None:
    """OutputError unless a folder can be made where ``out`` (and its temporary sibling) go."""
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(
            f"cannot create {out}: {parent} is a file, not a folder; choose another --out"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {parent} (permission denied); choose another --out")
    # os.access says yes to root everywhere, and to /proc or a read-only mount; trying is sure
    probe = parent / f".circuits-probe-{secrets.token_hex(6)}"
    try:
        probe.mkdir()
    except OSError as err:
        raise OutputError(
            f"cannot write the run folder {out}: creating a folder in {parent} fails "
            f"({err.strerror or err}); choose a writable --out, e.g. --out ./circuit_run"
        ) from None
    probe.rmdir()


def _protected(out: Path) -> str:
    """Why ``out`` must never be replaced (``""`` when it may be)."""
    where = out.resolve()
    cwd = Path.cwd().resolve()
    try:
        home = Path.home().resolve()
    except RuntimeError:  # no home folder known
        home = None
    if where == cwd:
        return "is the current folder"
    if where in cwd.parents:
        return "contains the current folder"
    if home is not None and where == home:
        return "is your home folder"
    if home is not None and where in home.parents:
        return "contains your home folder"
    if (where / ".git").exists():
        return "is a git repository (it holds .git)"
    return ""


def _not_a_run_folder(out: Path) -> str:
    """What the non-empty folder ``out`` holds when it is not a run folder (``""`` when it is)."""
    try:
        record = json.loads((out / METRICS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        marker = f"no {METRICS_FILE}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        marker = f"a {METRICS_FILE} that is not JSON"
    else:
        if isinstance(record, dict) and record.get("format") == RUN_FORMAT:
            return ""
        marker = f'a {METRICS_FILE} without "format": "{RUN_FORMAT}"'
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"{', '.join(names[:5])}{more}, and {marker}"


def lock_path(out: str | os.PathLike[str]) -> Path:
    """The lock file of the output folder ``out``: beside it, since the folder itself is
    renamed into place (and an old one renamed away) at the end of the run."""
    out = Path(out).absolute()
    return out.parent.resolve() / f"{LOCK_PREFIX}{out.name}"


@contextmanager
def output_lock(out: str | os.PathLike[str], command: str | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of the output folder ``out`` for the ``with`` block (creating
    its parent folders); OutputLockedError at once, naming the holder, when another process
    holds it. The lock file is removed when the block ends."""
    path = lock_path(out)
    if fcntl is None:
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, Path(out))
    try:
        holder = {
            "pid": os.getpid(),
            "command": command,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        yield path
    finally:
        # unlink before unlocking: a process that opened the file meanwhile sees it is gone
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(fd)


def _acquire(path: Path, out: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive lock; OutputLockedError if taken."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_text(fd)
            os.close(fd)
            raise OutputLockedError(
                f"another run is writing {out} ({holder}; lock file {path}); wait for it to "
                "finish, or choose another --out"
            ) from None
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        mine = os.fstat(fd)
        if now is not None and (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev):
            return fd
        os.close(fd)  # the previous holder removed this file as it finished: lock the new one


def _holder_text(fd: int) -> str:
    """Who holds the lock, as its lock file says."""
    try:
        holder = json.loads(os.pread(fd, 65536, 0).decode("utf-8"))
        pid, started = holder["pid"], holder["started"]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError):
        return "a process that has not yet written its details"
    command = holder.get("command") or "circuits discover"
    host = holder.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f"pid {pid}{where}, `{command}`, started {started}"
