"""Optional reranking of the fused candidates by a cross-encoder.

A cross-encoder reads the question and a passage together and scores how
well the passage answers it, which ranks better than comparing two separate
embeddings, at the cost of one model call per candidate. None ships with the
product (no model hub is reachable), so the default pipeline runs without
one; set ``QA_RERANKER`` to a sentence-transformers CrossEncoder folder (for
example a copy of ``cross-encoder/ms-marco-MiniLM-L6-v2``) to turn it on.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .errors import ModelNotFoundError
from .store import Passage


class Reranker(Protocol):
    """Scores passages for a question: higher is better."""

    def scores(self, question: str, passages: Sequence[Passage]) -> list[float]: ...


def rerank(reranker: Reranker, question: str, passages: Sequence[Passage]) -> list[Passage]:
    """``passages`` best first by the reranker; ties keep their earlier order.

    >>> from qa.store import Passage
    >>> class Length:
    ...     def scores(self, question, passages): return [len(p.text) for p in passages]
    >>> ps = [Passage(str(i), "x" * n, "a", "A", "a.txt", 0, n) for i, n in enumerate([3, 9, 3, 5])]
    >>> [p.id for p in rerank(Length(), "q", ps)]
    ['1', '3', '0', '2']
    """
    if not passages:
        return []
    scores = reranker.scores(question, passages)
    if len(scores) != len(passages):
        raise ValueError(f"the reranker scored {len(scores)} of {len(passages)} passages")
    order = sorted(range(len(passages)), key=lambda i: (-float(scores[i]), i))
    return [passages[i] for i in order]


class CrossEncoderReranker:
    """A sentence-transformers ``CrossEncoder`` loaded from a local folder, once, on first use."""

    def __init__(self, path: Path, batch_size: int = 16) -> None:
        self.path = Path(path)
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                if not (self.path / "config.json").is_file():
                    raise ModelNotFoundError(
                        f"No cross-encoder model in {self.path} (QA_RERANKER): it must be a folder with "
                        "config.json and the weights, as saved by sentence-transformers' CrossEncoder. "
                        "Unset QA_RERANKER to answer without reranking.")
                from sentence_transformers import CrossEncoder

                self._model = CrossEncoder(str(self.path), device="cpu", local_files_only=True)
            return self._model

    def scores(self, question: str, passages: Sequence[Passage]) -> list[float]:
        model = self._load()
        pairs = [(question, p.text) for p in passages]
        return [float(s) for s in model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False)]
