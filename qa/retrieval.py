"""Finding the passages for a question: dense + keyword search, fused.

Dense retrieval (sentence embeddings in Chroma) finds passages that mean the
same as the question; keyword retrieval (BM25, from the bm25s library) finds
the passages that share its rare words, names and numbers, which small
embedders blur. The two rankings are fused by reciprocal rank fusion, passages
that repeat one another are dropped, and the first ``k`` are returned.

The keyword index is derived data: every change to the store (ingest,
upload, removal) rebuilds it and saves it beside the store with a fingerprint
of the passage ids it covers and of the way they were cut into tokens
(:func:`qa.text.tokens`: stemmed words and numbers, no stop words). It is written into a new folder, and
``meta.json``, replaced in one step, names the folder, so a process killed
while saving leaves the previous index whole. A retriever reloads it when the
saved file changes or the store's passage count no longer matches, and then
has the store opened anew too (:meth:`ChromaStore.refresh`), since another
process may have written both; if the fingerprint does not match the store
(an ingest was interrupted, or the store is a shared server that someone else
updated), or the saved files cannot be read, it is rebuilt from the store on
load. The saved file's :meth:`KeywordIndex.stamp` is a cheap sign that the
index changed: the chat page polls it to refresh its library.

Filters: a question may be kept to some articles and to a period of article dates
(:mod:`qa.period`). Dense search filters in Chroma; keyword search keeps only the
passages of those articles, and for a period the passage ids Chroma finds dated in
it. The articles a period leaves out for having no date are counted.

Follow-ups: a question such as "And the year before?" names nothing by itself;
when a question looks like a follow-up, the previous question is added to the
search text so the topic carries over.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .embedder import Embedder
from .llm import Message
from .period import Period
from .rerank import Reranker, rerank
from .store import ChromaStore, Passage
from .text import OPENERS, tokens, tokens_signature

RRF_K = 60
_FOLLOW_UP = re.compile(r"\b(they|them|their|it|its|he|she|his|her|him|that|those|this|these|there|the same)\b",
                        re.IGNORECASE)


def is_follow_up(question: str) -> bool:
    """Does the question lean on the conversation before it?

    A short question, one that opens with "and"/"what about", or one with a
    pronoun that no name before it in the question explains, leans on what
    came before.

    >>> is_follow_up("And the year before?"), is_follow_up("Why was it delayed?")
    (True, True)
    >>> is_follow_up("When did she move back to Norvale?")
    True
    >>> is_follow_up("Who led the chess club in Norvale?"), is_follow_up("What did Ruiz say she would do?")
    (False, False)
    """
    words = question.split()
    if len(words) <= 4 or re.match(rf"(?:{OPENERS}|what about|how about)\b", question, re.IGNORECASE):
        return True
    pronoun = _FOLLOW_UP.search(question)
    if not pronoun:
        return False
    before = question[:pronoun.start()].split()
    return not any(w[:1].isupper() for w in before[1:])


def search_text(question: str, history: Sequence[Message]) -> str:
    """The text to search with: the question, preceded by the previous one for a follow-up.

    >>> search_text("And the year before?", [{"role": "user", "content": "Ridership of the ferry?"}])
    'Ridership of the ferry? And the year before?'
    """
    previous = [m["content"] for m in history if m["role"] == "user"]
    return f"{previous[-1]} {question}" if previous and is_follow_up(question) else question


def fingerprint(ids: Sequence[str]) -> str:
    """What a saved keyword index covers: these passage ids, cut into tokens by this
    :func:`qa.text.tokens` (:func:`qa.text.tokens_signature`)."""
    return hashlib.sha256("\n".join([tokens_signature(), *sorted(ids)]).encode()).hexdigest()


class KeywordIndex:
    """BM25 over the stored passages, persisted in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._bm25: Any = None
        self._ids: list[str] = []
        self._articles: list[str] = []
        self._loaded_stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def build(self, passages: Sequence[Passage]) -> None:
        """Index ``passages`` and save the index (written aside, then swapped in)."""
        import bm25s

        with self._lock:
            bm25: Any = None
            if passages:
                bm25 = bm25s.BM25()
                bm25.index([tokens(f"{p.title} {p.text}") or ["_"] for p in passages], show_progress=False)
            self._bm25, self._ids = bm25, [p.id for p in passages]
            self._articles = [p.article_id for p in passages]
            self.directory.mkdir(parents=True, exist_ok=True)
            folder = f"bm25-{uuid.uuid4().hex[:12]}"
            meta = {"ids": self._ids, "articles": self._articles, "fingerprint": fingerprint(self._ids),
                    "bm25": folder if bm25 is not None else None}
            if bm25 is not None:
                bm25.save(str(self.directory / folder), show_progress=False)
            tmp = self.directory / f"meta.json.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(meta))
            tmp.replace(self.directory / "meta.json")
            self._remove_old_folders(folder)

    def _remove_old_folders(self, keep: str) -> None:
        """Delete saved indexes that ``meta.json`` no longer names."""
        try:
            named = json.loads((self.directory / "meta.json").read_text()).get("bm25")
        except (OSError, ValueError, AttributeError):
            return
        for old in self.directory.glob("bm25*"):
            if old.name not in (keep, named) and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    def matches(self, ids: Sequence[str]) -> bool:
        """Does the saved index cover exactly these passage ids?"""
        try:
            meta = json.loads((self.directory / "meta.json").read_text())
            return bool(meta["fingerprint"] == fingerprint(ids))
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def stamp(self) -> tuple[int, int]:
        """When the saved index was last written, and its file (each save is a new one); ``(-1, -1)`` when
        there is none. It is saved after every change to the store."""
        try:
            info = (self.directory / "meta.json").stat()
        except OSError:
            return -1, -1
        return info.st_mtime_ns, info.st_ino

    def ensure_current(self, store: ChromaStore) -> bool:
        """Reload when the saved index changed or no longer matches the store's size.

        True when an index loaded before was replaced: the store changed since.
        """
        if self.stamp() != self._loaded_stamp or store.count() != len(self._ids):
            changed = self._loaded_stamp is not None
            self.load(store)
            return changed
        return False

    def load(self, store: ChromaStore) -> None:
        """Load the saved index, or rebuild it when it does not match ``store`` or cannot be read."""
        import bm25s

        meta_path = self.directory / "meta.json"
        stored_ids = sorted(i for ids in store.ids_by_article().values() for i in ids)
        try:
            meta = json.loads(meta_path.read_text())
            if meta["fingerprint"] != fingerprint(stored_ids) or len(meta["ids"]) != len(meta["articles"]):
                raise ValueError("stale")
            folder = meta.get("bm25", "bm25")
            bm25 = bm25s.BM25.load(str(self.directory / folder), show_progress=False) if meta["ids"] else None
            with self._lock:
                self._ids, self._articles, self._bm25 = meta["ids"], meta["articles"], bm25
        except Exception:  # noqa: BLE001 - derived data: whatever is wrong with it, build it again
            self.build(store.all_passages())
        self._loaded_stamp = self.stamp()

    @property
    def loaded(self) -> bool:
        return bool(self._ids) or self._bm25 is not None

    def search(self, query: str, k: int, articles: Sequence[str] | None = None,
               ids: Collection[str] | None = None) -> list[str]:
        """Ids of the best ``k`` passages for ``query`` (only those with some keyword match), optionally
        only of ``articles`` and only among the passage ``ids`` allowed (such as those of a period)."""
        import numpy as np

        query_tokens = tokens(query)
        with self._lock:
            if self._bm25 is None or not query_tokens or not self._ids or (ids is not None and not ids):
                return []
            mask = None
            if articles or ids is not None:
                wanted = set(articles or ())
                allowed = set(ids) if ids is not None else None
                mask = np.array([(not wanted or a in wanted) and (allowed is None or i in allowed)
                                 for i, a in zip(self._ids, self._articles, strict=True)], dtype=np.float32)
            k = min(k, len(self._ids))
            docs, scores = self._bm25.retrieve([query_tokens], k=k, show_progress=False, weight_mask=mask)
            return [self._ids[int(d)] for d, s in zip(docs[0], scores[0], strict=True) if float(s) > 0]


def rrf(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[str]:
    """Reciprocal rank fusion of several rankings of ids.

    >>> rrf([["a", "b", "c"], ["c", "a"]])
    ['a', 'c', 'b']
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank + 1)
    return sorted(scores, key=lambda item: -scores[item])


def _overlap(a: Passage, b: Passage, words: Callable[[Passage], set[str]]) -> float:
    if a.article_id == b.article_id:
        shared = min(a.end, b.end) - max(a.start, b.start)
        if shared > 0:
            return shared / min(a.end - a.start, b.end - b.start)
    wa, wb = words(a), words(b)
    return len(wa & wb) / (min(len(wa), len(wb)) or 1)


def drop_near_duplicates(passages: Sequence[Passage], threshold: float = 0.8,
                         limit: int | None = None) -> list[Passage]:
    """Keep passages in order, skipping any that mostly repeats one already kept; stop at ``limit`` kept.

    Each passage's words are read once, and only when it is compared with a passage whose span it
    does not share (of another article, or of another part of its own).
    """
    read: dict[int, set[str]] = {}  # by object: an excerpt may share its passage's id

    def words(passage: Passage) -> set[str]:
        if id(passage) not in read:
            read[id(passage)] = set(tokens(passage.text))
        return read[id(passage)]

    kept: list[Passage] = []
    for passage in passages:
        if limit is not None and len(kept) >= limit:
            break
        if all(_overlap(passage, other, words) < threshold for other in kept):
            kept.append(passage)
    return kept


@dataclass
class Found:
    """What a search found: the passages, how close the best dense match is, and the query's vector."""

    passages: list[Passage]
    best_similarity: float  # cosine similarity of the best dense match
    query: str
    vector: list[float] = field(default_factory=list)  # the query's embedding
    undated: int = 0  # articles a period left out for having no date
    embed_s: float = 0.0  # the time spent embedding the query


class Retriever:
    """Dense (Chroma) and keyword (BM25) search, fused; optionally reranked by a cross-encoder.

    With a ``reranker``, the first ``rerank_candidates`` fused passages are
    reordered by it before the first ``k`` are kept.
    """

    def __init__(self, store: ChromaStore, embedder: Embedder, keyword: KeywordIndex | None,
                 candidates: int = 20, reranker: Reranker | None = None, rerank_candidates: int = 12) -> None:
        self.store = store
        self.embedder = embedder
        self.keyword = keyword
        self.candidates = candidates
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates
        self._lock = threading.Lock()

    def retrieve(self, question: str, history: Sequence[Message], k: int, mode: str = "hybrid",
                 articles: Sequence[str] | None = None, period: Period | None = None) -> Found:
        """The ``k`` best passages for the question, optionally only of ``articles`` and of articles
        dated in ``period`` (which leaves out the undated ones and counts them in ``undated``)."""
        query = search_text(question, history)
        started = time.perf_counter()
        vector = self.embedder.embed([query])[0]
        embed_s = time.perf_counter() - started
        if self.keyword is not None:
            with self._lock:
                if self.keyword.ensure_current(self.store):
                    self.store.refresh()  # another process may have written it: search what it holds now
        undated = len(self.store.undated_articles(articles)) if period is not None else 0
        if mode == "dense" or self.keyword is None:
            if self.reranker is None:
                dense = self.store.query(vector, k, articles=articles, period=period)
                return Found(dense, dense[0].score if dense else 0.0, query, vector, undated, embed_s)
            dense = self.store.query(vector, max(k, self.rerank_candidates), articles=articles, period=period)
            chosen = rerank(self.reranker, query, dense)[:k]
            return Found(chosen, dense[0].score if dense else 0.0, query, vector, undated, embed_s)
        dense = self.store.query(vector, self.candidates, articles=articles, period=period)
        allowed = self.store.ids_in(articles, period) if period is not None else None
        keyword_ids = self.keyword.search(query, self.candidates, articles=articles, ids=allowed)
        by_id = {p.id: p for p in dense}
        missing = [i for i in keyword_ids if i not in by_id]
        by_id.update({p.id: p for p in self.store.get(missing)})
        wanted = k if self.reranker is None else max(k, self.rerank_candidates)
        fused = drop_near_duplicates([by_id[i] for i in rrf([[p.id for p in dense], keyword_ids]) if i in by_id],
                                     limit=wanted)
        if self.reranker is not None:
            fused = rerank(self.reranker, query, fused)
        chosen = fused[:k]
        return Found([replace(p) for p in chosen], dense[0].score if dense else 0.0, query, vector, undated,
                     embed_s)
