"""Tests for nmt.download: a fake Multi30k source on disk and over loopback HTTP, no network."""

import argparse
import functools
import gzip
import http.server
import re
import shutil
import threading
from pathlib import Path

import pytest

from nmt.download import (
    MULTI30K_SPLITS,
    add_download_arguments,
    download_multi30k,
    run_download,
)
from nmt.errors import NmtError

EN_DE_FILES = sorted(
    f"{split}.{lang}.gz" for split in MULTI30K_SPLITS for lang in ("en", "de")
)


def write_gz(path: Path, lines: int) -> None:
    """Write a gzip file of `lines` short text lines."""
    path.write_bytes(gzip.compress("".join(f"{path.name} {i}\n" for i in range(lines)).encode()))


@pytest.fixture(scope="session")
def full_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory laid out like the public source, with the real line counts."""
    source = tmp_path_factory.mktemp("multi30k_source")
    for split, (lines, languages) in MULTI30K_SPLITS.items():
        for lang in languages:
            write_gz(source / f"{split}.{lang}.gz", lines)
    return source


@pytest.fixture
def source(full_source: Path, tmp_path: Path) -> Path:
    """A private copy of the fake source that a test may spoil."""
    return Path(shutil.copytree(full_source, tmp_path / "source"))


def test_copies_en_de_from_local_directory(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    paths = download_multi30k(dest, ("en", "de"), source=str(source), progress=False)
    assert sorted(p.name for p in paths) == EN_DE_FILES
    assert sorted(p.name for p in dest.iterdir()) == EN_DE_FILES
    for path in paths:
        assert path.read_bytes() == (source / path.name).read_bytes()


def test_czech_only_gets_splits_that_have_it(source: Path, tmp_path: Path) -> None:
    paths = download_multi30k(tmp_path / "dest", ("en", "cs"), source=str(source), progress=False)
    assert {p.name.split(".")[0] for p in paths} == {"train", "val", "test_2016_flickr"}
    assert len(paths) == 6


def test_wrong_line_count_names_file_and_counts_and_leaves_nothing(source: Path, tmp_path: Path) -> None:
    write_gz(source / "train.en.gz", 28999)
    dest = tmp_path / "dest"
    with pytest.raises(NmtError, match=r"train\.en\.gz: expected 29000 lines, got 28999"):
        download_multi30k(dest, source=str(source), progress=False)
    assert list(dest.iterdir()) == []


def test_file_that_is_not_gzip_is_rejected(source: Path, tmp_path: Path) -> None:
    (source / "train.en.gz").write_text("<html>not found</html>\n")
    dest = tmp_path / "dest"
    with pytest.raises(NmtError, match=r"train\.en\.gz: not a valid gzip file"):
        download_multi30k(dest, source=str(source), progress=False)
    assert list(dest.iterdir()) == []


def test_valid_existing_file_is_skipped_and_bad_one_replaced(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    shutil.move(source / "train.en.gz", dest / "train.en.gz")  # gone from the source: must not be fetched
    (dest / "val.de.gz").write_bytes(b"truncated")
    download_multi30k(dest, source=str(source))
    err = capsys.readouterr().err
    assert f"{dest / 'train.en.gz'}: already present, 29000 lines, skipped" in err
    assert (dest / "val.de.gz").read_bytes() == (source / "val.de.gz").read_bytes()
    assert len(err.splitlines()) == len(EN_DE_FILES)


def test_unknown_language_lists_valid_ones(source: Path, tmp_path: Path) -> None:
    with pytest.raises(NmtError, match=r"unknown Multi30k language 'es' \(valid: cs, de, en, fr\)"):
        download_multi30k(tmp_path / "dest", ("en", "es"), source=str(source))


def test_missing_file_in_source_names_it(source: Path, tmp_path: Path) -> None:
    (source / "val.de.gz").unlink()
    with pytest.raises(NmtError, match=r"cannot read .*val\.de\.gz: No such file"):
        download_multi30k(tmp_path / "dest", source=str(source), progress=False)


def test_source_that_is_neither_directory_nor_url(tmp_path: Path) -> None:
    with pytest.raises(NmtError, match="neither a directory nor an http"):
        download_multi30k(tmp_path / "dest", source=str(tmp_path / "nowhere"))


@pytest.fixture
def http_base(source: Path):
    """Serve the fake source on 127.0.0.1 and yield its base URL."""
    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(source))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    thread.join()


def test_downloads_over_http(http_base: str, source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    paths = download_multi30k(dest, ("de", "en"), source=http_base, progress=False)
    assert sorted(p.name for p in paths) == EN_DE_FILES
    for path in paths:
        assert path.read_bytes() == (source / path.name).read_bytes()


def test_http_error_names_url_and_hints_at_from(http_base: str, source: Path, tmp_path: Path) -> None:
    (source / "val.en.gz").unlink()
    with pytest.raises(NmtError, match=re.escape(f"{http_base}val.en.gz: HTTP 404") + ".*--from DIR"):
        download_multi30k(tmp_path / "dest", source=http_base, progress=False)
    assert not (tmp_path / "dest" / "val.en.gz.part").exists()


def test_cli_arguments_and_run(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_download_arguments(parser)
    dest = tmp_path / "dest"
    args = parser.parse_args(["multi30k", "--dest", str(dest), "--langs", "fr, en", "--from", str(source)])
    assert run_download(args) == 0
    assert len(list(dest.iterdir())) == 10
    assert len(capsys.readouterr().err.splitlines()) == 10

    defaults = parser.parse_args(["multi30k"])
    assert (defaults.dest, defaults.langs, defaults.source) == ("data/multi30k", "en,de", None)
