"""Hybrid retrieval: keyword index kept in step with Chroma, fusion, de-duplication, filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import retrieval
from qa.ingest import ingest
from qa.retrieval import KeywordIndex, Retriever, drop_near_duplicates, rrf, search_text
from qa.store import ChromaStore, Passage

from .fakes import FakeEmbedder

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def test_rrf_rewards_agreement() -> None:
    assert rrf([["a", "b"], ["b", "c"]])[0] == "b"


def test_near_duplicates_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    a = Passage("1", "One two three four five.", "x", "T", "x", 0, 24)
    overlapping = Passage("2", "two three four five. Six.", "x", "T", "x", 4, 28)
    copy = Passage("3", "One two three four five.", "y", "T", "y", 0, 24)
    other = Passage("4", "Lithium batteries.", "y", "T", "y", 30, 48)
    assert [p.id for p in drop_near_duplicates([a, overlapping, copy, other])] == ["1", "4"]
    # with a limit it stops once that many are kept, with the same passages first
    more = Passage("5", "Salt flats.", "z", "T", "z", 0, 11)
    assert [p.id for p in drop_near_duplicates([a, overlapping, copy, other, more], limit=2)] == ["1", "4"]
    assert [p.id for p in drop_near_duplicates([a, overlapping, copy, other, more], limit=9)] == ["1", "4", "5"]
    # and it reads each passage's words once, however many passages it is compared with
    read: list[str] = []

    def counted(text: str) -> list[str]:
        read.append(text)
        return text.split()

    monkeypatch.setattr(retrieval, "tokens", counted)
    drop_near_duplicates([a, overlapping, copy, other, more])
    assert sorted(read) == sorted(p.text for p in (a, copy, other, more))  # `overlapping` shares a's span


def test_follow_ups_carry_the_topic() -> None:
    history = [{"role": "user", "content": "How many seats did the MAS win in the lower house?"}]
    assert search_text("And in the Senate?", history).startswith("How many seats")
    assert search_text("Who is Luis Arce and what did he do as economy minister?", history).startswith("Who")


def _indexed(articles_dir: Path, tmp_path: Path) -> tuple[ChromaStore, KeywordIndex]:
    """The articles ingested into a new store (fake embedder), and its loaded keyword index."""
    embedder = FakeEmbedder()
    data = tmp_path / "data"
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    ingest(articles_dir, store, embedder, data)
    keyword = KeywordIndex(data / "keyword")
    keyword.load(store)
    return store, keyword


def test_keyword_index_follows_every_ingest(articles_dir: Path, tmp_path: Path) -> None:
    store, keyword = _indexed(articles_dir, tmp_path)
    embedder, data = FakeEmbedder(), tmp_path / "data"
    hits = keyword.search("Salvador Romero TSE president", 3)
    assert hits and "Salvador Romero" in store.get(hits[:1])[0].text

    (articles_dir / "002_91029d526ce3fca8.txt").unlink()
    ingest(articles_dir, store, embedder, data)
    fresh = KeywordIndex(data / "keyword")
    fresh.load(store)
    assert all("Salvador Romero" not in p.text for p in store.get(fresh.search("Salvador Romero", 5)))
    assert sorted(fresh._ids) == sorted(i for ids in store.ids_by_article().values() for i in ids)


def test_a_stale_keyword_index_is_rebuilt_from_the_store(articles_dir: Path, tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    data = tmp_path / "data"
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    ingest(articles_dir, store, embedder, data)
    store.delete(sorted(store.ids_by_article()["003_41e6e3ef6e8987f6.txt"]))  # as if an ingest died half way
    keyword = KeywordIndex(data / "keyword")
    keyword.load(store)
    assert len(keyword._ids) == store.count()


def test_hybrid_retrieval_finds_rare_names_and_respects_the_filter(articles_dir: Path, tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    data = tmp_path / "data"
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    ingest(articles_dir, store, embedder, data)
    retriever = Retriever(store, embedder, KeywordIndex(data / "keyword"))
    found = retriever.retrieve("Who is Kaliman?", [], k=4)
    assert any("Kaliman" in p.text for p in found.passages)
    assert len({p.id for p in found.passages}) == len(found.passages) <= 4
    only = retriever.retrieve("Who is Kaliman?", [], k=4, articles=["004_b78515448f06fa10.txt"])
    assert only.passages and {p.source for p in only.passages} == {"004_b78515448f06fa10.txt"}


@pytest.mark.parametrize("change", ["version", "stop words"])
def test_an_index_saved_with_other_tokens_is_rebuilt(articles_dir: Path, tmp_path: Path, monkeypatch,  # type: ignore[no-untyped-def]
                                                     change: str) -> None:
    import qa.text

    store, keyword = _indexed(articles_dir, tmp_path)
    ids = sorted(i for ids in store.ids_by_article().values() for i in ids)
    assert keyword.matches(ids)
    if change == "version":
        monkeypatch.setattr(qa.text, "TOKENS_VERSION", qa.text.TOKENS_VERSION + 1)  # tokens() changed
    else:
        monkeypatch.setattr(qa.text, "STOP_WORDS", qa.text.STOP_WORDS | {"ferry"})  # a word more is left out
    assert not keyword.matches(ids)
    keyword.load(store)  # rebuilt with the tokens of now, not loaded
    assert keyword.matches(ids)


def test_a_decade_matches_however_it_is_written(articles_dir: Path, tmp_path: Path) -> None:
    # the article says "in the 90s"; the question "in the 1990s", which is not the year 1990
    store, keyword = _indexed(articles_dir, tmp_path)
    hits = store.get(keyword.search("1990s", 3))
    assert hits and all("90s" in p.text for p in hits)
