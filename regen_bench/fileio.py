"""Files in and out: atomic writing (a temp file renamed into place) and checked JSON reading."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from pydantic import ValidationError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(
    path: str | os.PathLike[str], chunks: Iterable[bytes], compress: bool = False
) -> str:
    """Write ``chunks`` to ``path`` all-or-nothing; return the sha256 of the uncompressed bytes.

    With ``compress`` the file is gzip without name or timestamp, so equal content gives equal
    bytes. If anything fails (including Ctrl-C), the temp file is removed and ``path`` keeps
    its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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
        # mkstemp creates 0600 files; give the usual permissions of a new file instead.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


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
