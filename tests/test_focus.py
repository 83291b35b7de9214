"""Passages put in order by their best sentence (qa.focus)."""

from __future__ import annotations

from pathlib import Path

from qa.config import Settings
from qa.focus import SentenceRanker, fuse_orders
from qa.pipeline import Pipeline
from qa.store import ChromaStore, Passage

from .fakes import FakeEmbedder, FakeLLM


def _passage(n: int, text: str) -> Passage:
    return Passage(f"p{n}", text, "a", "Article", "a.txt", 0, len(text))


LONG = ("The minister met the unions in La Paz. The unions asked the minister for a meeting. "
        "Elections were held in October. The minister of communications spoke to the press.")
ANSWER = ("The weather was cold all week in the capital. Coffee was served in the hallways of the senate. "
          "Radio stations of the movements kept the minister of communications busy for hours.")
OTHER = "Turnout was high in the countryside. Parties campaigned in every province of the country."


def test_a_passage_whose_one_sentence_answers_moves_up_and_the_set_stays() -> None:
    embedder = FakeEmbedder()
    ranker = SentenceRanker(embedder)
    question = "Which radio stations kept the minister of communications busy for hours?"
    passages = [_passage(0, LONG), _passage(1, OTHER), _passage(2, ANSWER), _passage(3, OTHER + " Again.")]
    vector = embedder.embed([question])[0]
    ordered = ranker.order(vector, passages)
    assert [p.id for p in ordered][:2] == ["p0", "p2"]
    assert sorted(p.id for p in ordered) == sorted(p.id for p in passages)


def test_sentence_vectors_are_embedded_once_and_the_least_used_go_first() -> None:
    embedder = FakeEmbedder()
    ranker = SentenceRanker(embedder, cache_size=100)
    passages = [_passage(0, LONG), _passage(1, ANSWER)]
    vector = embedder.embed(["radio stations"])[0]
    first = ranker.order(vector, passages)
    calls = len(embedder.calls)
    assert ranker.order(vector, passages) == first
    assert len(embedder.calls) == calls  # all from the cache
    small = SentenceRanker(embedder, cache_size=2)
    small._vectors(["a", "b"])
    small._vectors(["a"])  # used again: "b" is now the oldest
    small._vectors(["c"])
    assert list(small._cache) == ["a", "c"]


def test_fewer_than_two_passages_or_no_vector_keep_their_order() -> None:
    ranker = SentenceRanker(FakeEmbedder())
    one = [_passage(0, LONG)]
    assert ranker.order([1.0], one) == one
    two = [_passage(0, OTHER), _passage(1, ANSWER)]
    assert ranker.order([], two) == two


def test_fusion_keeps_retrieval_order_on_ties() -> None:
    assert fuse_orders([]) == []
    assert fuse_orders([0.1, 0.9]) == [0, 1]  # ranks (0, 1) and (1, 0) tie: the retrieval order stands
    assert fuse_orders([0.1, 0.2, 0.9]) == [0, 2, 1]  # the best sentence, last retrieved, passes the second


def test_the_pipeline_orders_by_sentence_unless_told_not_to(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    question = "What are the RPOs that kept the Minister of Communications busy for hours?"
    pipeline, _ = fake_pipeline("placeholder")
    assert pipeline.settings.sentence_order
    by_sentence = pipeline.retrieve(question)
    plain = Pipeline(pipeline.store, pipeline.embedder, FakeLLM("x"),
                     Settings(data_dir=pipeline.settings.data_dir, sentence_order=False))
    by_passage = plain.retrieve(question)
    assert sorted(p.id for p in by_sentence) == sorted(p.id for p in by_passage)
    assert [p.id for p in by_sentence] != [p.id for p in by_passage], "the order moved"
    rpo = next(i for i, p in enumerate(by_sentence) if "radio stations" in p.text)
    assert rpo < pipeline.settings.narrow_k, "the passage that answers is read first"


def test_with_the_real_embedder_the_answering_passage_is_read_first(seeded_dir: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    # Ranked fourth by the fused retrieval, the passage whose one sentence names the RPOs (radio
    # stations) is among the three the model reads first once its best sentence counts.
    question = "What are the RPOs that kept the Minister of Communications busy for hours?"
    settings = Settings(data_dir=seeded_dir)
    store = ChromaStore(settings.chroma_dir, embedder_name=embedder.name)
    on = Pipeline(store, embedder, FakeLLM("x"), settings).retrieve(question)
    unordered = Settings(data_dir=seeded_dir, sentence_order=False)
    off = Pipeline(store, embedder, FakeLLM("x"), unordered).retrieve(question)
    assert [p.id for p in on] != [p.id for p in off]
    assert sorted(p.id for p in on) == sorted(p.id for p in off)
    assert any("radio stations" in p.text for p in on[:settings.narrow_k])
    assert not any("radio stations" in p.text for p in off[:settings.narrow_k])


def test_a_sentence_evicted_by_another_thread_meanwhile_is_no_error() -> None:
    class Busy(FakeEmbedder):
        """Fills the cache from "another thread" while it embeds."""

        def __init__(self) -> None:
            super().__init__()
            self.ranker: SentenceRanker | None = None

        def embed(self, texts):  # type: ignore[no-untyped-def]
            if self.ranker is not None and texts == ["B."]:
                self.ranker._vectors(["X.", "Y."])  # evicts "A."
            return super().embed(texts)

    embedder = Busy()
    ranker = SentenceRanker(embedder, cache_size=2)
    ranker._vectors(["A."])
    embedder.ranker = ranker
    assert len(ranker._vectors(["A.", "B."])) == 2
