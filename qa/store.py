"""The passage store: Chroma, embedded by default.

Each passage is one Chroma record: its id is a content hash, its document is
the passage text, and its metadata holds the article id, title, outlet,
source file and the passage's character offsets into the article. We always
hand Chroma our own vectors (cosine space); its built-in embedding function,
which would download a model, is never used.

The collection records which embedder made its vectors; asking with another
embedder is refused with a message that says how to rebuild.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import IndexNotReadyError

COLLECTION = "qa-passages"
SCHEMA = 1


@dataclass(frozen=True)
class Passage:
    """A stored passage; ``text == article_text[start:end]``."""

    id: str
    text: str
    article_id: str
    title: str
    source: str
    start: int
    end: int
    outlet: str = ""
    author: str = ""
    score: float = 0.0  # similarity to the query, higher is better

    def metadata(self) -> dict[str, str | int]:
        return {"article_id": self.article_id, "title": self.title, "source": self.source,
                "start": self.start, "end": self.end, "outlet": self.outlet, "author": self.author}

    @classmethod
    def from_record(cls, pid: str, text: str, meta: dict[str, Any], score: float = 0.0) -> Passage:
        return cls(id=pid, text=text, article_id=str(meta["article_id"]), title=str(meta["title"]),
                   source=str(meta["source"]), start=int(meta["start"]), end=int(meta["end"]),
                   outlet=str(meta.get("outlet") or ""), author=str(meta.get("author") or ""), score=score)


def _quiet_chroma() -> None:
    for name in ("chromadb", "chromadb.telemetry", "chromadb.telemetry.product.posthog"):
        logging.getLogger(name).setLevel(logging.ERROR)


class ChromaStore:
    """Passages in a Chroma collection, local (``path``) or on a server (``url``)."""

    def __init__(self, path: Path | None = None, url: str | None = None, embedder_name: str = "") -> None:
        _quiet_chroma()
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        try:
            if url:
                from urllib.parse import urlparse

                parts = urlparse(url)
                self._client: Any = chromadb.HttpClient(host=parts.hostname or "127.0.0.1",
                                                        port=parts.port or 8000,
                                                        ssl=parts.scheme == "https", settings=settings)
            else:
                assert path is not None
                path.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(path), settings=settings)
        except IndexNotReadyError:
            raise
        except Exception as exc:
            where = url or path
            raise IndexNotReadyError(
                f"Could not open the passage index at {where} ({exc}). If the data directory is damaged, "
                "rebuild it with `qa ingest --rebuild`."
            ) from exc
        self.embedder_name = embedder_name
        self._collection: Any = None

    @property
    def collection(self) -> Any:
        if self._collection is None:
            try:
                self._collection = self._client.get_or_create_collection(
                    COLLECTION, embedding_function=None, configuration={"hnsw": {"space": "cosine"}},
                    metadata={"embedder": self.embedder_name or "unknown", "schema": SCHEMA},
                )
            except Exception as exc:
                raise IndexNotReadyError(
                    f"Could not open the passage collection ({exc}). Rebuild it with `qa ingest --rebuild`."
                ) from exc
            stored = (self._collection.metadata or {}).get("embedder")
            if self.embedder_name and stored and stored != self.embedder_name and self.count() > 0:
                raise IndexNotReadyError(
                    f"The index was built with the embedder '{stored}' but '{self.embedder_name}' is configured. "
                    "Rebuild it with `qa ingest --rebuild`, or configure the original embedder."
                )
        return self._collection

    def reset(self) -> None:
        """Delete every passage (used by ``qa ingest --rebuild``)."""
        try:
            self._client.delete_collection(COLLECTION)
        except Exception:  # noqa: BLE001 - absent collection is fine
            pass
        self._collection = None

    def count(self) -> int:
        return int(self.collection.count())

    def ids_by_article(self) -> dict[str, set[str]]:
        """Every stored passage id, grouped by article id."""
        found: dict[str, set[str]] = {}
        total = self.count()
        page = 5000
        for offset in range(0, total, page):
            got = self.collection.get(include=["metadatas"], limit=page, offset=offset)
            for pid, meta in zip(got["ids"], got["metadatas"], strict=True):
                found.setdefault(str(meta["article_id"]), set()).add(pid)
        return found

    def articles(self) -> list[dict[str, Any]]:
        """One row per article: id, title, outlet, source and passage count."""
        rows: dict[str, dict[str, Any]] = {}
        total = self.count()
        for offset in range(0, total, 5000):
            got = self.collection.get(include=["metadatas"], limit=5000, offset=offset)
            for meta in got["metadatas"]:
                row = rows.setdefault(str(meta["article_id"]), {
                    "id": meta["article_id"], "title": meta["title"], "outlet": meta.get("outlet", ""),
                    "source": meta["source"], "passages": 0})
                row["passages"] += 1
        return sorted(rows.values(), key=lambda r: str(r["source"]))

    def add(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        if not passages:
            return
        self.collection.upsert(ids=[p.id for p in passages], documents=[p.text for p in passages],
                               metadatas=[p.metadata() for p in passages], embeddings=[list(v) for v in vectors])

    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        for i in range(0, len(ids), 5000):
            self.collection.delete(ids=ids[i:i + 5000])

    def passage_ids(self, article_id: str) -> set[str]:
        """The ids of one article's passages."""
        return {str(i) for i in self.collection.get(where={"article_id": article_id}, include=[])["ids"]}

    def delete_article(self, article_id: str) -> int:
        """Delete every passage of one article; return how many there were."""
        ids = sorted(self.passage_ids(article_id))
        self.delete(ids)
        return len(ids)

    def get(self, ids: Sequence[str]) -> list[Passage]:
        if not ids:
            return []
        got = self.collection.get(ids=list(ids), include=["documents", "metadatas"])
        by_id = {pid: Passage.from_record(pid, doc, meta)
                 for pid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)}
        return [by_id[i] for i in ids if i in by_id]

    def all_passages(self) -> list[Passage]:
        out: list[Passage] = []
        total = self.count()
        for offset in range(0, total, 5000):
            got = self.collection.get(include=["documents", "metadatas"], limit=5000, offset=offset)
            out.extend(Passage.from_record(pid, doc, meta)
                       for pid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True))
        return out

    def query(self, vector: Sequence[float], k: int, articles: Sequence[str] | None = None) -> list[Passage]:
        """The ``k`` passages nearest to ``vector``, optionally only from ``articles``."""
        total = self.count()
        if total == 0:
            raise IndexNotReadyError("The index is empty. Add articles with `qa ingest FOLDER` first.")
        where: dict[str, Any] | None = None
        if articles:
            ids = list(articles)
            where = {"article_id": ids[0]} if len(ids) == 1 else {"article_id": {"$in": ids}}
        got = self.collection.query(query_embeddings=[list(vector)], n_results=min(k, total), where=where,
                                    include=["documents", "metadatas", "distances"])
        return [Passage.from_record(pid, doc, meta, score=1.0 - float(dist))
                for pid, doc, meta, dist in zip(got["ids"][0], got["documents"][0], got["metadatas"][0],
                                                got["distances"][0], strict=True)]
