"""Download the Multi30k corpus (task 1, raw text) from its public source or a local mirror."""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import sys
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Sequence

from nmt.errors import NmtError

MULTI30K_URL = "https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
TIMEOUT_S = 60

# split -> (number of lines, languages it exists in)
MULTI30K_SPLITS: dict[str, tuple[int, tuple[str, ...]]] = {
    "train": (29000, ("en", "de", "fr", "cs")),
    "val": (1014, ("en", "de", "fr", "cs")),
    "test_2016_flickr": (1000, ("en", "de", "fr", "cs")),
    "test_2017_flickr": (1000, ("en", "de", "fr")),
    "test_2017_mscoco": (461, ("en", "de", "fr")),
}
MULTI30K_LANGUAGES = ("cs", "de", "en", "fr")


def download_multi30k(
    dest: Path,
    languages: Sequence[str] = ("en", "de"),
    source: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """Fetch `{split}.{lang}.gz` into `dest` for every split that has all `languages`.

    `source` is the public URL base when None, else a local directory or another
    http(s) base URL holding the same file names. Each file is checked to
    decompress to the expected number of lines before it appears in `dest`;
    files already there that pass the check are kept. With `progress`, one line
    per file goes to stderr. Returns the paths of all files, fetched or kept.
    """
    languages = list(dict.fromkeys(languages))
    valid = ", ".join(MULTI30K_LANGUAGES)
    if not languages:
        raise NmtError(f"no Multi30k language given (valid: {valid})")
    for lang in languages:
        if lang not in MULTI30K_LANGUAGES:
            raise NmtError(f"unknown Multi30k language {lang!r} (valid: {valid})")
    source = MULTI30K_URL if source is None else source
    if not _is_url(source) and not Path(source).is_dir():
        raise NmtError(f"{source}: Multi30k source is neither a directory nor an http(s) URL")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NmtError(f"{dest}: cannot create directory: {e.strerror or e}") from e

    paths = []
    for split, (expected, split_languages) in MULTI30K_SPLITS.items():
        if not set(languages) <= set(split_languages):
            continue
        for lang in languages:
            path = dest / f"{split}.{lang}.gz"
            if path.is_file() and _line_count(path) == expected:
                message = f"{path}: already present, {expected} lines, skipped"
            else:
                origin = _fetch_verified(source, path, expected)
                message = f"{path}: {expected} lines from {origin}"
            if progress:
                print(message, file=sys.stderr)
            paths.append(path)
    return paths


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _fetch_verified(source: str, path: Path, expected: int) -> str:
    """Fetch `path.name` from `source` into `path` via a temporary file; return where from."""
    data, origin = _read(source, path.name)
    part = path.with_name(path.name + ".part")
    try:
        part.write_bytes(data)
        count = _line_count(part)
        if count is None:
            raise NmtError(f"{origin}: not a valid gzip file")
        if count != expected:
            raise NmtError(f"{origin}: expected {expected} lines, got {count}")
        os.replace(part, path)
    except OSError as e:
        raise NmtError(f"{part}: cannot write: {e.strerror or e}") from e
    finally:
        part.unlink(missing_ok=True)
    return origin


def _read(source: str, name: str) -> tuple[bytes, str]:
    """Contents of file `name` in `source` (http(s) base URL or directory), and its URL or path."""
    if not _is_url(source):
        path = Path(source) / name
        try:
            return path.read_bytes(), str(path)
        except OSError as e:
            raise NmtError(f"cannot read {path}: {e.strerror or e}") from e

    url = f"{source.rstrip('/')}/{name}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read(), url
    except urllib.error.HTTPError as e:
        raise _network_error(url, f"HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise _network_error(url, e.reason) from e
    except (OSError, http.client.HTTPException) as e:  # timeouts, dropped connections
        raise _network_error(url, e) from e


def _network_error(url: str, reason: object) -> NmtError:
    return NmtError(
        f"cannot download {url}: {reason} "
        "(check the connection, or fetch the files another way and use --from DIR)"
    )


def _line_count(path: Path) -> int | None:
    """Number of lines in gzip file `path`, or None if it does not decompress."""
    try:
        with gzip.open(path, "rb") as f:
            return sum(1 for _ in f)
    except (OSError, EOFError, zlib.error):
        return None


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of `nmt download` to `parser`."""
    parser.add_argument("corpus", choices=["multi30k"], help="corpus to download")
    parser.add_argument(
        "--dest", metavar="DIR", default="data/multi30k", help="where to put the files (default: %(default)s)"
    )
    parser.add_argument(
        "--langs", default="en,de", help="comma-separated languages: en, de, fr, cs (default: %(default)s)"
    )
    parser.add_argument(
        "--from",
        dest="source",
        metavar="SOURCE",
        help="local directory or base URL with the .gz files (default: the public Multi30k repository)",
    )


def run_download(args: argparse.Namespace) -> int:
    """Run `nmt download`: fetch the corpus, printing one line per file to stderr."""
    languages = [lang.strip() for lang in args.langs.split(",") if lang.strip()]
    download_multi30k(Path(args.dest), languages, source=args.source, progress=True)
    return 0
