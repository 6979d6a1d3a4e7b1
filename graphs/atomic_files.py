"""Atomic file writes: write a temporary file beside the target, then rename it over the target."""

from __future__ import annotations

import errno
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a binary file that replaces ``path`` only once the ``with`` block succeeds.

    The temporary file lives in the target's directory because ``os.replace`` is atomic only
    within one filesystem; readers therefore see either the old file or the complete new one,
    never a half-written one. On any error the temporary file is removed and ``path`` is left
    as it was.
    """
    path = Path(path)
    directory = path.parent
    if not directory.is_dir():
        raise FileNotFoundError(errno.ENOENT, "directory does not exist", str(directory))
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open with mode 0o666 lets the umask decide permissions, as a plain open() would
    # (tempfile.mkstemp would leave the saved file readable by its owner only).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the data
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` that becomes ``path`` when the block succeeds.

    An existing non-empty ``path`` is an error unless ``overwrite``; it is then replaced only
    after the new folder is complete. On any error (or Ctrl-C) the temporary folder is removed
    and ``path`` is left as it was.
    """
    import shutil

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(path))
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(errno.EEXIST, "folder exists and is not empty", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    tmp.mkdir()
    try:
        yield tmp
        with _signals_held():  # a signal between the renames would strand the old folder
            if path.exists():
                old = path.parent / f".{path.name}.{secrets.token_hex(6)}.old"
                path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first that came, so the
    block's renames happen all or none. Handlers are swapped rather than the signals
    blocked: a blocked signal would go to one of torch's threads and still interrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread can set handlers, and Python runs them there
        return
    caught: list[int] = []
    names = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in names}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        if caught:
            signal.raise_signal(caught[0])
