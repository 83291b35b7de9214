"""The optional cross-encoder reranker: off by default, and on when a model folder is configured."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from qa.api import build_pipeline
from qa.config import Settings
from qa.errors import ModelNotFoundError
from qa.ingest import ingest
from qa.pipeline import Pipeline
from qa.rerank import CrossEncoderReranker, rerank
from qa.retrieval import KeywordIndex, Retriever
from qa.store import ChromaStore, Passage

from .fakes import FakeEmbedder, FakeLLM


class MentionsReranker:
    """Scores a passage by whether it mentions a word: a stand-in with a known, checkable order."""

    def __init__(self, word: str) -> None:
        self.word = word
        self.seen: list[int] = []

    def scores(self, question: str, passages: Sequence[Passage]) -> list[float]:
        self.seen.append(len(passages))
        return [1.0 if self.word in p.text else 0.0 for p in passages]


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CrossEncoder folder, small and local: MiniLM with a fresh (untrained) scoring head."""
    import torch
    from sentence_transformers import CrossEncoder

    from qa.embedder import default_embedder_path

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cross-encoder")
    CrossEncoder(str(default_embedder_path()), num_labels=1, local_files_only=True, device="cpu").save(str(folder))
    return folder


def test_the_default_pipeline_has_no_reranker(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", llm_url="http://127.0.0.1:9/v1")
    assert settings.reranker_path is None
    pipeline = build_pipeline(settings)
    assert pipeline.retriever is not None and pipeline.retriever.reranker is None


def test_the_reranker_reorders_the_fused_candidates(articles_dir: Path, tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    data = tmp_path / "data"
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    ingest(articles_dir, store, embedder, data)
    plain = Retriever(store, embedder, KeywordIndex(data / "keyword"))
    judge = MentionsReranker("Kaliman")
    reranked = Retriever(store, embedder, KeywordIndex(data / "keyword"), reranker=judge, rerank_candidates=12)
    question = "Which former commanders face trial?"  # the fused search ranks Kaliman's passage second
    before = plain.retrieve(question, [], k=4).passages
    after = reranked.retrieve(question, [], k=4).passages
    assert judge.seen == [12]
    assert len(after) == 4 and "Kaliman" in after[0].text
    assert [p.id for p in before] != [p.id for p in after]
    # Dense-only retrieval is reranked too: the reranker sees the dense candidates.
    assert len(reranked.retrieve(question, [], k=4, mode="dense").passages) == 4
    assert judge.seen == [12, 12]


def test_the_pipeline_prompts_with_the_reranked_order(articles_dir: Path, tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    settings = Settings(data_dir=tmp_path / "data")
    store = ChromaStore(settings.chroma_dir, embedder_name=embedder.name)
    ingest(articles_dir, store, embedder, settings.data_dir)
    llm = FakeLLM("NOT FOUND")
    pipeline = Pipeline(store, embedder, llm, settings, reranker=MentionsReranker("Kaliman"))
    pipeline.ask("Which commanders told Morales to resign?")
    prompt = llm.calls[0][-1]["content"]
    assert "Kaliman" in prompt.split("[2]")[0]


def test_a_real_cross_encoder_scores_and_orders_passages(tiny_cross_encoder: Path) -> None:
    reranker = CrossEncoderReranker(tiny_cross_encoder)
    passages = [Passage(str(i), text, "a", "A", "a.txt", 0, len(text)) for i, text in enumerate(
        ["Turnout was 88.4 percent.", "The bridge opened in May.", "Luis Arce won the election.", "It rained."])]
    scores = reranker.scores("What was the turnout?", passages)
    assert len(scores) == 4 and all(isinstance(s, float) for s in scores)
    assert scores == reranker.scores("What was the turnout?", passages)  # deterministic, loaded once
    ordered = rerank(reranker, "What was the turnout?", passages)
    assert [p.id for p in ordered] == [str(i) for i in sorted(range(4), key=lambda i: -scores[i])]


def test_a_configured_cross_encoder_is_used_by_the_pipeline(tiny_cross_encoder: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_RERANKER", str(tiny_cross_encoder))
    settings = Settings(data_dir=tmp_path / "data", llm_url="http://127.0.0.1:9/v1")
    pipeline = build_pipeline(settings)
    assert pipeline.retriever is not None
    assert isinstance(pipeline.retriever.reranker, CrossEncoderReranker)
    assert pipeline.retriever.reranker.path == tiny_cross_encoder


def test_a_missing_cross_encoder_folder_says_what_to_do(tmp_path: Path) -> None:
    reranker = CrossEncoderReranker(tmp_path / "nowhere")
    passage = Passage("1", "text", "a", "A", "a.txt", 0, 4)
    with pytest.raises(ModelNotFoundError, match="QA_RERANKER"):
        reranker.scores("q", [passage])
