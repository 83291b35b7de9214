"""The chat page's article library: uploads, removal, PDF reading (real Chroma, fake embedder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.articles import Skipped, load_folder, parse_pdf
from qa.errors import QAError, UploadError
from qa.ingest import ingest
from qa.library import Library, check_content, safe_name
from qa.store import ChromaStore

from .fakes import FakeEmbedder
from .pdfs import make_pdf

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
ZORBLAX = """---
title: Zorblax festival draws record crowds
outlet: Quimby Herald
---
The Zorblax festival in Quimby drew 12,345 visitors this year, organisers said on Monday.

The mayor of Quimby, Ada Fernsby, opened the festival with a speech about the town's history.
"""


@pytest.fixture()
def library(tmp_path: Path) -> Library:
    data = tmp_path / "data"
    embedder = FakeEmbedder()
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    ingest(SEEDS, store, embedder, data)
    return Library(store, embedder, data)


def _file(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / "incoming" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _state(library: Library) -> tuple[int, list[str]]:
    files = sorted(p.name for p in library.uploads_dir.iterdir()) if library.uploads_dir.is_dir() else []
    return library.store.count(), files


@pytest.mark.parametrize(("name", "expected"), [
    ("../../etc/cron.d/evil.txt", "evil.txt"),
    ("..\\..\\windows\\evil.md", "evil.md"),
    ("/abs/path/report.HTML", "report.html"),
    ("  spaces and (brackets) .txt", "spaces_and_brackets.txt"),
    ("Ünïcödé – Bericht.pdf", "Unicode_Bericht.pdf"),
    ("....txt", "article.txt"),
    ("-rf .md", "rf.md"),
    ("a" * 300 + ".txt", "a" * 100 + ".txt"),
])
def test_safe_name_never_leaves_the_folder(name: str, expected: str) -> None:
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["evil.exe", "archive.zip", "noext", "page.php", "x.txt.sh"])
def test_safe_name_refuses_other_kinds(name: str) -> None:
    with pytest.raises(UploadError, match=r"Add \.txt, \.md, \.html or \.pdf"):
        safe_name(name)


@pytest.mark.parametrize(("data", "suffix", "message"), [
    (b"", ".txt", "is empty"),
    (b"hello", ".pdf", "is named .pdf but is not a PDF file"),
    (b"%PDF-1.4\n...", ".md", "is a PDF file but is named .md"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ".txt", "not a text file \\(it holds a PNG image\\)"),
    (bytes(range(256)) * 4, ".html", "not a text file"),
    (b"PK\x03\x04\x14\x00\x06\x00", ".md", "ZIP archive"),
])
def test_content_must_match_the_suffix(data: bytes, suffix: str, message: str) -> None:
    with pytest.raises(UploadError, match=message):
        check_content(data, suffix, "f" + suffix)


@pytest.mark.parametrize("data", ["Plain UTF-8 – “quotes”.\n".encode(), "Caf\xe9 in cp1252.\r\n".encode("cp1252"),
                                  b"<html><body><p>Hi</p></body></html>"])
def test_text_passes_the_content_check(data: bytes) -> None:
    check_content(data, ".txt", "a.txt")


def test_pdf_text_and_title_are_read() -> None:
    data = make_pdf(["The Zorblax festival in Quimby drew 12,345 visitors in", "June, organisers said on Monday."],
                    title="Zorblax draws crowds")
    article = parse_pdf(data, "uploads/z.pdf")
    assert not isinstance(article, Skipped)
    assert article.title == "Zorblax draws crowds"
    assert article.text == "The Zorblax festival in Quimby drew 12,345 visitors in June, organisers said on Monday."


def test_pdf_without_text_or_broken_is_skipped_with_a_reason() -> None:
    assert "no text in the PDF" in getattr(parse_pdf(make_pdf([]), "s.pdf"), "reason", "")
    assert "unreadable PDF" in getattr(parse_pdf(b"%PDF-1.4 not really", "b.pdf"), "reason", "")


def test_a_folder_with_a_pdf_is_ingested(tmp_path: Path) -> None:
    _file(tmp_path, "report.pdf", make_pdf(["Heading", "The festival drew 12,345 visitors."]))
    articles, skipped = load_folder(tmp_path / "incoming")
    assert [a.source for a in articles] == ["report.pdf"] and not skipped


def test_upload_is_indexed_kept_and_replaceable(library: Library, tmp_path: Path) -> None:
    before = library.store.count()
    result = library.add_upload(_file(tmp_path, "x", ZORBLAX), "../Zorblax Festival.md")
    assert result.article_id == "uploads/Zorblax_Festival.md" and not result.replaced
    assert result.title == "Zorblax festival draws record crowds"
    assert (library.uploads_dir / "Zorblax_Festival.md").read_text() == ZORBLAX
    assert library.store.count() == before + result.passages
    row = next(r for r in library.articles() if r["id"] == result.article_id)
    assert row["outlet"] == "Quimby Herald" and row["passages"] == result.passages
    assert not list(library.uploads_dir.glob(".*")), "no temporary file is left behind"

    again = library.add_upload(_file(tmp_path, "y", ZORBLAX.replace("12,345", "23,456")), "Zorblax Festival.md")
    assert again.replaced and library.store.count() == before + again.passages
    texts = [p.text for p in library.store.all_passages() if p.article_id == again.article_id]
    assert any("23,456" in t for t in texts) and not any("12,345" in t for t in texts)


def test_pdf_upload(library: Library, tmp_path: Path) -> None:
    pdf = make_pdf(["Zorblax report", "The Zorblax festival in Quimby drew 12,345 visitors."])
    result = library.add_upload(_file(tmp_path, "z.pdf", pdf), "z.pdf")
    assert result.passages == 1 and result.title == "Zorblax report"


@pytest.mark.parametrize(("name", "data", "message"), [
    ("fake.pdf", b"just text", "not a PDF file"),
    ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(100), "not a text file"),
    ("program.exe", b"MZ\x90\x00", "is a .exe file"),
    ("blank.md", b"   \n\n", "is empty"),
    ("scan.pdf", make_pdf([]), "no text in the PDF"),
    ("furniture.txt", b"Subscribe\n\nShare\n\nNext", "no article text"),
])
def test_a_bad_upload_changes_nothing(library: Library, tmp_path: Path, name: str, data: bytes, message: str) -> None:
    before = _state(library)
    with pytest.raises(UploadError, match=message):
        library.add_upload(_file(tmp_path, "upload", data), name)
    assert _state(library) == before


def test_an_upload_over_the_size_limit_changes_nothing(library: Library, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qa.library.MAX_UPLOAD_BYTES", 1000)
    before = _state(library)
    with pytest.raises(UploadError, match=r"files are limited to"):
        library.add_upload(_file(tmp_path, "big.txt", "word " * 1000), "big.txt")
    assert _state(library) == before


def test_a_failure_while_indexing_rolls_back(library: Library, tmp_path: Path) -> None:
    class Broken(FakeEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            raise RuntimeError("embedder crashed")

    broken = Library(library.store, Broken(), library.data_dir)
    before = _state(library)
    with pytest.raises(RuntimeError):
        broken.add_upload(_file(tmp_path, "z.md", ZORBLAX), "z.md")
    assert _state(library) == before


def test_remove_an_upload_and_a_folder_article(library: Library, tmp_path: Path) -> None:
    result = library.add_upload(_file(tmp_path, "z.md", ZORBLAX), "z.md")
    total = library.store.count()
    assert library.remove(result.article_id) == result.passages
    assert not (library.uploads_dir / "z.md").exists() and library.store.count() == total - result.passages

    seed = "004_b78515448f06fa10.txt"
    n = len(library.store.passage_ids(seed))
    assert library.remove(seed) == n and seed not in {r["id"] for r in library.articles()}
    with pytest.raises(QAError, match="not in the index"):
        library.remove(seed)


def test_uploads_survive_folder_ingests_and_rebuilds(library: Library, tmp_path: Path) -> None:
    result = library.add_upload(_file(tmp_path, "z.md", ZORBLAX), "z.md")
    report = ingest(SEEDS, library.store, library.embedder, library.data_dir)
    assert report.removed == 0 and result.article_id in library.store.ids_by_article()

    ingest(SEEDS, library.store, library.embedder, library.data_dir, rebuild=True)
    assert result.article_id not in library.store.ids_by_article()
    synced = library.sync_uploads()
    assert synced.added == result.passages
    assert len(library.store.passage_ids(result.article_id)) == result.passages
    assert library.sync_uploads().added == 0, "syncing again changes nothing"

    (library.uploads_dir / "z.md").unlink()
    assert library.sync_uploads().removed == result.passages
