"""Reading corpus text safely and writing files atomically.

Corpus files are UTF-8, one sentence per line, plain or gzip-compressed. Bad
bytes are reported with file and line number; output files are written to a
temporary name in the same directory and renamed only when complete, so a
crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterator

from nmt.errors import NmtError


def resolve_split(prefix: str, lang: str) -> Path:
    """The file for split `prefix` in language `lang`: PREFIX.LANG or PREFIX.LANG.gz."""
    for candidate in (Path(f"{prefix}.{lang}"), Path(f"{prefix}.{lang}.gz")):
        if candidate.is_file():
            return candidate
    raise NmtError(f"{prefix}.{lang}: corpus file not found (also tried {prefix}.{lang}.gz)")


def read_lines(path: str | Path, replace_invalid: bool = False) -> Iterator[str]:
    """Yield the lines of a text file (plain or .gz) without their line endings.

    Invalid UTF-8 raises `NmtError` naming file and line, unless `replace_invalid`,
    which substitutes U+FFFD instead. "-" reads standard input.
    """
    errors = "replace" if replace_invalid else "strict"
    with _open_binary(path) as stream:
        try:
            for number, raw in enumerate(stream, start=1):
                try:
                    line = raw.decode("utf-8", errors=errors)
                except UnicodeDecodeError as error:
                    raise NmtError(f"{path}:{number}: invalid UTF-8 at byte {error.start} "
                                   "(fix the file, or pass --replace-invalid)") from None
                yield line.rstrip("\r\n")
        except (OSError, EOFError) as error:  # truncated or corrupt gzip
            raise NmtError(f"{path}: cannot read: {error}") from None


@contextlib.contextmanager
def _open_binary(path: str | Path) -> Iterator[IO[bytes]]:
    if str(path) == "-":
        yield sys.stdin.buffer
        return
    path = Path(path)
    try:
        if path.suffix == ".gz":
            stream = gzip.open(path, "rb")
        else:
            stream = open(path, "rb")
    except FileNotFoundError:
        raise NmtError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise NmtError(f"{path}: is a directory, expected a file") from None
    except OSError as error:
        raise NmtError(f"{path}: cannot open: {error.strerror}") from None
    with stream:
        yield stream


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success fsync and rename it to `path`.

    On any exception the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise NmtError(f"{path}: cannot write: {error.strerror}") from None
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp_name, 0o666 & ~_umask())  # mkstemp's 0600 would surprise users
        os.replace(temp_name, path)
        _fsync_directory(directory)  # make the rename itself durable
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
