"""Ingest against real Chroma in a temporary folder, with the real embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.chunking import Chunking
from qa.errors import IndexBusyError, NoArticlesError
from qa.ingest import article_passages, ingest, ingest_lock
from qa.store import ChromaStore


def _store(data: Path, embedder) -> ChromaStore:  # type: ignore[no-untyped-def]
    return ChromaStore(data / "chroma", embedder_name=embedder.name)


def test_ingest_is_idempotent_and_tracks_edits_and_deletions(articles_dir: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    store = _store(data, embedder)
    first = ingest(articles_dir, store, embedder, data)
    count = store.count()
    assert first.articles == 5 and first.added == count > 40 and first.replaced == first.removed == 0

    again = ingest(articles_dir, _store(data, embedder), embedder, data)
    assert (again.added, again.replaced, again.removed, again.unchanged) == (0, 0, 0, 5)
    assert store.count() == count

    before = store.ids_by_article()
    edited = articles_dir / "003_41e6e3ef6e8987f6.txt"
    edited.write_text(edited.read_text().replace("approval rating of about 7%", "approval rating of about 8%"))
    report = ingest(articles_dir, store, embedder, data)
    after = store.ids_by_article()
    assert report.unchanged == 4 and report.added >= 1 and report.replaced == report.added
    for article_id, ids in before.items():
        if article_id == edited.name:
            assert ids != after[article_id]
        else:
            assert ids == after[article_id], "other articles keep their passages"
    assert store.count() == count

    removed = articles_dir / "000_7764dd37c2a5a529.txt"
    n_removed = len(after[removed.name])
    removed.unlink()
    report = ingest(articles_dir, store, embedder, data)
    assert report.removed == n_removed and store.count() == count - n_removed


def test_stored_passages_map_back_to_the_article(articles_dir: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from qa.articles import load_folder

    data = tmp_path / "data"
    store = _store(data, embedder)
    ingest(articles_dir, store, embedder, data)
    articles = {a.id: a for a in load_folder(articles_dir)[0]}
    passages = store.all_passages()
    assert len({p.id for p in passages}) == len(passages)
    for p in passages:
        assert articles[p.article_id].text[p.start:p.end] == p.text
        assert p.title == articles[p.article_id].title


def test_passage_ids_are_content_hashes() -> None:
    from qa.articles import Article

    a = Article("a.txt", "T", "One fact. Two facts.\n\nThree facts.")
    ids = [p.id for p in article_passages(a, Chunking(max_chars=15, overlap=0))]
    assert ids == [p.id for p in article_passages(a, Chunking(max_chars=15, overlap=0))]
    b = Article("a.txt", "T", "Zero.\n\nOne fact. Two facts.\n\nThree facts.")
    assert set(ids) <= {p.id for p in article_passages(b, Chunking(max_chars=15, overlap=0))}


def test_folder_without_articles_is_a_clear_error(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.csv").write_text("x")
    with pytest.raises(NoArticlesError, match="No readable"):
        ingest(tmp_path / "in", _store(tmp_path, embedder), embedder, tmp_path)
    with pytest.raises(NoArticlesError, match="is not a folder"):
        ingest(tmp_path / "nope", _store(tmp_path, embedder), embedder, tmp_path)


def test_a_second_ingest_is_refused_while_one_runs(tmp_path: Path) -> None:
    with ingest_lock(tmp_path), pytest.raises(IndexBusyError, match="Another ingest"), ingest_lock(tmp_path):
        pass
