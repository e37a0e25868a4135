"""Files in and out: atomic writing (a temp file renamed into place), pairs of files that refer
to each other (:func:`publish_pair`), and checked JSON reading."""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from pydantic import ValidationError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    # The writer's pid is in the name so that a later run can tell the leftovers of a killed
    # writer (removed by remove_stale_temps) from the temp file of one still writing.
    return f".{path.name}.{os.getpid()}."


def write_temp(
    path: str | os.PathLike[str],
    chunks: Iterable[bytes],
    compress: bool = False,
    durable: bool = False,
) -> tuple[Path, str]:
    """Write ``chunks`` to a hidden temp file beside ``path``; return it and the sha256 of the
    uncompressed bytes. The caller renames it into place (``os.replace``) or removes it.

    With ``compress`` the file is gzip without name or timestamp, so equal content gives equal
    bytes; with ``durable`` it is fsynced (on disk before any rename makes it visible). If
    anything fails (including Ctrl-C), the temp file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as raw:
            out: IO[bytes] = raw
            if compress:
                out = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)  # type: ignore[assignment]
            for chunk in chunks:
                digest.update(chunk)
                out.write(chunk)
            if out is not raw:
                out.close()
            if durable:
                raw.flush()
                os.fsync(raw.fileno())
        # mkstemp creates 0600 files; give the usual permissions of a new file instead.
        os.chmod(tmp, 0o666 & ~_umask())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest()


def atomic_write(
    path: str | os.PathLike[str],
    chunks: Iterable[bytes],
    compress: bool = False,
    durable: bool = False,
) -> str:
    """Write ``chunks`` to ``path`` all-or-nothing; return the sha256 of the uncompressed bytes.

    A temp file renamed into place (:func:`write_temp`, whose ``compress`` and ``durable`` it
    takes): if anything fails (including Ctrl-C), ``path`` keeps its previous content.
    """
    tmp, sha = write_temp(path, chunks, compress=compress, durable=durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return sha


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temp files of ``path`` left by writers that were killed (their process is
    gone); return them. Temp files of a writer still running are kept."""
    path = Path(path)
    removed = []
    prefix = f".{path.name}."
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
            pid, _, _rest = tmp.name[len(prefix) :].partition(".")
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back until the block is done, then deliver it.

    For a few renames that must happen together. Outside the main thread, where Python
    cannot change signal handlers, the block runs as is.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is None  # a handler set outside Python: keep it
    ):
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            signal.raise_signal(signal.SIGINT)


def _fsync_dir(folder: Path) -> None:
    # Make the renames themselves durable; some file systems cannot open a folder to fsync it.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish_pair(data: tuple[Path, Path], record: tuple[Path, Path], durable: bool = True) -> None:
    """Move two finished temp files into place: ``data`` (temp, path), then ``record`` (temp,
    path), the file that names ``data`` and its hash (a result and its samples).

    The old record is removed first and the new one appears last, so an old record never sits
    beside new data, and a record is never visible before its data. Ctrl-C is held back until
    both are in place; a process killed outright (SIGKILL, power loss) can leave ``data``
    alone, with no record naming it, never a record that does not match its data. The temp
    files are removed if a rename fails.
    """
    (data_tmp, data_path), (record_tmp, record_path) = data, record
    try:
        with deferred_interrupt():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(record_path)
            os.replace(data_tmp, data_path)
            os.replace(record_tmp, record_path)
    finally:
        data_tmp.unlink(missing_ok=True)
        record_tmp.unlink(missing_ok=True)
    if durable:
        _fsync_dir(record_path.parent)


def read_json(path: Path, error: type[Exception] = ValueError) -> object:
    """The parsed JSON of ``path``; ``error`` naming the file when it is missing or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        # The stdlib decoder recurses once per nesting level, so a small hostile file (a few
        # hundred KB of "[[[[") exhausts the stack; no file this project reads nests that deep.
        raise error(f"{path}: not valid JSON (nested too deeply)") from None


def field_error(exc: ValidationError) -> str:
    """``field 'a.b': message`` for the first error of a pydantic validation."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "<root>"
    return f"field '{where}': {first['msg']}"
