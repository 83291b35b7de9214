"""The passage store: Chroma, embedded by default.

Each passage is one Chroma record: its id is a content hash, its document is
the passage text, and its metadata holds the article id, title, outlet, author,
date, source file and the passage's character offsets into the article. The
date is ``YYYY-MM-DD`` in ``date`` (empty when the article has none) and, for
filters that compare (``{"date_int": {"$gte": 20240101}}``), the number
``YYYYMMDD`` in ``date_int``, left out when there is no date. We always
hand Chroma our own vectors (cosine space); its built-in embedding function,
which would download a model, is never used.

The collection records which embedder made its vectors (its model, and for
an ONNX export the variant and the file's hash) and the layout of its records
(``SCHEMA``); asking with another embedder, or opening a collection of another
layout, is refused with a message that says how to rebuild, or which setting
brings the original embedder back.

The local index is opened on first use, and any failure of Chroma on it (a
damaged or truncated database, files of another Chroma version, a missing
table) becomes :class:`~qa.errors.IndexNotReadyError` with the fix: ``qa ingest
--rebuild``. That rebuild deletes the index's files without reading them and
starts afresh, so it works on an index that no longer opens. (One kind of
damage cannot be caught: random bytes written over the vectors file crash
Chroma's native code; ``qa ingest --rebuild`` repairs that too.)

With a ``url`` the same collection lives on a Chroma server (``chroma run``),
which several processes and machines can share. Every call to a server can
fail on the network, so the methods below turn such failures into
:class:`~qa.errors.ServerError` (a message, not a traceback); and since another
process may rebuild the collection under us, a call that finds its collection
gone looks it up again once.

The embedded index keeps its vectors in memory once open, so what another
process writes to it (``qa ingest`` while ``qa serve`` runs) reaches its
records but not its nearest-neighbour search until :meth:`ChromaStore.refresh`
opens it anew; the retriever does so whenever the keyword index shows a change.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from urllib.parse import urlparse

from .embedder import embedder_fix
from .errors import IndexNotReadyError, QAError, ServerError
from .period import Period

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
    date: str = ""  # the article's date, YYYY-MM-DD, or ""
    score: float = 0.0  # similarity to the query, higher is better

    def metadata(self) -> dict[str, str | int]:
        """The Chroma metadata of this passage (Chroma holds no None: ``date_int`` only with a date).

        >>> Passage("p", "Text.", "a.md", "T", "a.md", 0, 5, date="2024-03-14").metadata()["date_int"]
        20240314
        """
        meta: dict[str, str | int] = {
            "article_id": self.article_id, "title": self.title, "source": self.source, "start": self.start,
            "end": self.end, "outlet": self.outlet, "author": self.author, "date": self.date}
        if self.date:
            meta["date_int"] = int(self.date.replace("-", ""))
        return meta

    @classmethod
    def from_record(cls, pid: str, text: str, meta: dict[str, Any], score: float = 0.0) -> Passage:
        return cls(id=pid, text=text, article_id=str(meta["article_id"]), title=str(meta["title"]),
                   source=str(meta["source"]), start=int(meta["start"]), end=int(meta["end"]),
                   outlet=str(meta.get("outlet") or ""), author=str(meta.get("author") or ""),
                   date=str(meta.get("date") or ""), score=score)


def where(articles: Sequence[str] | None = None, period: Period | None = None,
          **equal: str) -> dict[str, Any] | None:
    """The Chroma ``where`` filter for passages of ``articles`` (all when empty), dated in ``period``,
    whose metadata equals ``equal``; ``None`` for no filter.

    >>> where(["a.md"])
    {'article_id': 'a.md'}
    >>> from datetime import date
    >>> where(["a.md", "b.md"], Period(date(2024, 1, 1)))
    {'$and': [{'article_id': {'$in': ['a.md', 'b.md']}}, {'date_int': {'$gte': 20240101}}]}
    >>> where(None, None) is None, where(date="")
    (True, {'date': ''})
    """
    clauses: list[dict[str, Any]] = []
    if articles:
        ids = list(articles)
        clauses.append({"article_id": ids[0]} if len(ids) == 1 else {"article_id": {"$in": ids}})
    if period is not None:
        clauses += period.conditions()
    clauses += [{key: value} for key, value in equal.items()]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


P = ParamSpec("P")
R = TypeVar("R")


def _on_server(method: Callable[Concatenate[ChromaStore, P], R]) -> Callable[Concatenate[ChromaStore, P], R]:
    """Turn Chroma's failures into :class:`ServerError` (a server) or :class:`IndexNotReadyError` (the local index);
    on a server, retry once if the collection was replaced. :meth:`ChromaStore.refresh` waits for these calls."""

    @functools.wraps(method)
    def wrapper(self: ChromaStore, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._gate.call():
            return _call(self, *args, **kwargs)

    def _call(self: ChromaStore, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except QAError:
            raise
        except Exception as exc:
            if not self.url:
                if _from_chroma(exc):
                    raise self._damaged(exc) from exc
                raise
            if type(exc).__name__ == "NotFoundError" and self._collection is not None:
                self._collection = None  # rebuilt by another process: find the new one
                try:
                    return method(self, *args, **kwargs)
                except QAError:
                    raise
                except Exception as again:
                    raise self._server_error(again) from again
            raise self._server_error(exc) from exc

    return cast("Callable[Concatenate[ChromaStore, P], R]", wrapper)


class Gate:
    """Calls share it; one holder alone has it exclusively, once the calls in flight are done.

    A call made within a call (on the same thread) passes straight through.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls = 0
        self._exclusive = False
        self._depth = threading.local()

    @contextmanager
    def call(self) -> Iterator[None]:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            with self._cond:
                self._cond.wait_for(lambda: not self._exclusive)
                self._calls += 1
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                with self._cond:
                    self._calls -= 1
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        if getattr(self._depth, "n", 0):
            raise RuntimeError("Gate.exclusive() within a call would wait for itself")
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._cond.wait_for(lambda: self._calls == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


def _from_chroma(exc: BaseException) -> bool:
    """Did Chroma (or the disk under it) raise this, rather than our own code?"""
    import sqlite3

    return isinstance(exc, (OSError, sqlite3.Error)) or type(exc).__module__.split(".")[0] == "chromadb"


def _quiet_chroma() -> None:
    for name in ("chromadb", "chromadb.telemetry", "chromadb.telemetry.product.posthog"):
        logging.getLogger(name).setLevel(logging.ERROR)


class ChromaStore:
    """Passages in a Chroma collection, local (``path``) or on a server (``url``)."""

    def __init__(self, path: Path | None = None, url: str | None = None, embedder_name: str = "") -> None:
        _quiet_chroma()
        self.url = url.rstrip("/") if url else None
        self.path = path
        if not self.url and path is None:
            raise ValueError("ChromaStore needs a path or a url")
        self.embedder_name = embedder_name
        self._client_: Any = None
        self._collection: Any = None
        self._open_lock = threading.Lock()
        self._gate = Gate()

    def _settings(self) -> Any:
        from chromadb.config import Settings

        return Settings(anonymized_telemetry=False)

    @property
    def _client(self) -> Any:
        """The Chroma client, opened on first use."""
        with self._open_lock:
            if self._client_ is None:
                self._client_ = self._open()
            return self._client_

    def _open(self) -> Any:
        import chromadb

        try:
            if self.url:
                parts = urlparse(self.url)
                https = parts.scheme == "https"
                return chromadb.HttpClient(host=parts.hostname or "127.0.0.1",
                                           port=parts.port or (443 if https else 8000), ssl=https,
                                           settings=self._settings())
            assert self.path is not None
            self.path.mkdir(parents=True, exist_ok=True)
            return chromadb.PersistentClient(path=str(self.path), settings=self._settings())
        except Exception as exc:
            if self.url:
                raise self._server_error(exc) from exc
            self._forget_system()  # Chroma keeps the half-opened index for this path; never reuse it
            raise self._damaged(exc) from exc

    def _damaged(self, exc: BaseException) -> IndexNotReadyError:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        return IndexNotReadyError(
            f"The passage index at {self.path} cannot be used ({reason}). It may be damaged, or written by another "
            "version: rebuild it with `qa ingest --rebuild FOLDER` (articles added on the chat page come back "
            "when the page starts)."
        )

    def _forget_system(self) -> None:
        """Make Chroma forget its shared state for this path, so that the next client opens the files anew."""
        from chromadb.api.shared_system_client import SharedSystemClient

        key = str(self.path)
        system = SharedSystemClient._identifier_to_system.pop(key, None)
        SharedSystemClient._identifier_to_refcount.pop(key, None)
        if system is not None:
            try:
                system.stop()
            except Exception:  # noqa: BLE001 - it may never have started
                pass

    def _server_error(self, exc: Exception) -> ServerError:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        if isinstance(exc, OSError) or "connect" in f"{type(exc).__name__} {reason}".lower():
            return ServerError(
                f"Could not reach the Chroma server at {self.url} ({reason}). Start it with "
                "`chroma run --path DIR --host HOST --port PORT`, or unset QA_CHROMA_URL to use the local index.")
        return ServerError(f"The Chroma server at {self.url} failed ({reason}). Check that it is running and "
                           "its log, then try again.")

    @property
    def collection(self) -> Any:
        if self._collection is None:
            client = self._client
            try:
                self._collection = client.get_or_create_collection(
                    COLLECTION, embedding_function=None, configuration={"hnsw": {"space": "cosine"}},
                    metadata={"embedder": self.embedder_name or "unknown", "schema": SCHEMA},
                )
            except Exception as exc:
                if self.url:
                    raise self._server_error(exc) from exc
                raise self._damaged(exc) from exc
            metadata = self._collection.metadata or {}
            stored = metadata.get("embedder")
            if self.embedder_name and stored and stored != self.embedder_name and self.count() > 0:
                raise IndexNotReadyError(
                    f"The index was built with the embedder '{stored}' but '{self.embedder_name}' is configured. "
                    f"Rebuild it with `qa ingest --rebuild FOLDER`, or {embedder_fix(str(stored), self.embedder_name)}."
                )
            if metadata.get("schema") != SCHEMA and self.count() > 0:
                where = self.url or self.path
                raise IndexNotReadyError(
                    f"The index at {where} was written by another version of qa (layout {metadata.get('schema')}, "
                    f"this version reads {SCHEMA}). Rebuild it with `qa ingest --rebuild FOLDER`."
                )
        return self._collection

    def close(self) -> None:
        """Let go of the index (the next call opens it again)."""
        with self._open_lock:
            self._collection = None
            if self._client_ is not None and hasattr(self._client_, "close"):
                self._client_.close()
            self._client_ = None

    def refresh(self) -> None:
        """Open the local index anew, so that searches see what other processes wrote to it.

        Waits for the calls in flight. A server needs nothing. (Another store of this
        process on the same files keeps the old state open, and this one with it.)
        """
        if self.url:
            return
        with self._gate.exclusive():
            self.close()

    def reset(self) -> None:
        """Delete every passage (used by ``qa ingest --rebuild``).

        On a server the collection is deleted. The local index's files are deleted
        without being read, so this works on an index that no longer opens; if this
        process has the same index open elsewhere, only the collection is deleted.
        """
        self._collection = None
        if self.url:
            try:
                self._client.delete_collection(COLLECTION)
            except Exception:  # noqa: BLE001 - absent collection is fine
                pass
            return
        from chromadb.api.shared_system_client import SharedSystemClient

        self.close()
        with self._open_lock:
            if SharedSystemClient._identifier_to_refcount.get(str(self.path)):
                shared = True  # another store in this process uses the same files
            else:
                shared = False
                self._forget_system()
                assert self.path is not None
                if self.path.is_dir() and not self.path.is_symlink():
                    shutil.rmtree(self.path)
                else:
                    self.path.unlink(missing_ok=True)
        if shared:
            try:
                self._client.delete_collection(COLLECTION)
            except Exception as exc:  # noqa: BLE001
                if type(exc).__name__ != "NotFoundError":
                    raise self._damaged(exc) from exc

    @_on_server
    def count(self) -> int:
        return int(self.collection.count())

    @_on_server
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

    @_on_server
    def articles(self) -> list[dict[str, Any]]:
        """One row per article: id, title, outlet, author, date (YYYY-MM-DD or ""), source and passage count."""
        rows: dict[str, dict[str, Any]] = {}
        total = self.count()
        for offset in range(0, total, 5000):
            got = self.collection.get(include=["metadatas"], limit=5000, offset=offset)
            for meta in got["metadatas"]:
                row = rows.setdefault(str(meta["article_id"]), {
                    "id": meta["article_id"], "title": meta["title"], "outlet": meta.get("outlet", ""),
                    "author": meta.get("author", ""), "date": meta.get("date", ""), "source": meta["source"],
                    "passages": 0})
                row["passages"] += 1
        return sorted(rows.values(), key=lambda r: str(r["source"]))

    @_on_server
    def add(self, passages: Sequence[Passage], vectors: Sequence[Sequence[float]]) -> None:
        if not passages:
            return
        self.collection.upsert(ids=[p.id for p in passages], documents=[p.text for p in passages],
                               metadatas=[p.metadata() for p in passages], embeddings=[list(v) for v in vectors])

    @_on_server
    def delete(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        for i in range(0, len(ids), 5000):
            self.collection.delete(ids=ids[i:i + 5000])

    @_on_server
    def passage_ids(self, article_id: str) -> set[str]:
        """The ids of one article's passages."""
        return {str(i) for i in self.collection.get(where={"article_id": article_id}, include=[])["ids"]}

    @_on_server
    def delete_article(self, article_id: str) -> int:
        """Delete every passage of one article; return how many there were."""
        ids = sorted(self.passage_ids(article_id))
        self.delete(ids)
        return len(ids)

    @_on_server
    def get(self, ids: Sequence[str]) -> list[Passage]:
        if not ids:
            return []
        got = self.collection.get(ids=list(ids), include=["documents", "metadatas"])
        by_id = {pid: Passage.from_record(pid, doc, meta)
                 for pid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)}
        return [by_id[i] for i in ids if i in by_id]

    @_on_server
    def all_passages(self) -> list[Passage]:
        out: list[Passage] = []
        total = self.count()
        for offset in range(0, total, 5000):
            got = self.collection.get(include=["documents", "metadatas"], limit=5000, offset=offset)
            out.extend(Passage.from_record(pid, doc, meta)
                       for pid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True))
        return out

    @_on_server
    def ids_in(self, articles: Sequence[str] | None = None, period: Period | None = None) -> set[str]:
        """The ids of the passages of ``articles`` (all when empty) dated in ``period``."""
        return {str(i) for i in self._pages(where(articles, period), [])["ids"]}

    @_on_server
    def undated_articles(self, articles: Sequence[str] | None = None) -> set[str]:
        """The ids of the articles among ``articles`` (all when empty) that have no date."""
        return {str(m["article_id"]) for m in self._pages(where(articles, date=""), ["metadatas"])["metadatas"]}

    def _pages(self, filter_: dict[str, Any] | None, include: list[str], page: int = 5000) -> dict[str, list[Any]]:
        """Every record that ``filter_`` selects, fetched ``page`` at a time: its ids and ``include``."""
        out: dict[str, list[Any]] = {"ids": [], **{key: [] for key in include}}
        offset = 0
        while True:
            got = self.collection.get(where=filter_, include=include, limit=page, offset=offset)
            for key in out:
                out[key] += got[key]
            if len(got["ids"]) < page:
                return out
            offset += page

    @_on_server
    def query(self, vector: Sequence[float], k: int, articles: Sequence[str] | None = None,
              period: Period | None = None) -> list[Passage]:
        """The ``k`` passages nearest to ``vector``, optionally only from ``articles`` and dated in ``period``.

        One call to Chroma per question (it returns fewer than ``k`` passages when
        it holds fewer); the index is counted only when nothing came back.
        """
        got = self.collection.query(query_embeddings=[list(vector)], n_results=k, where=where(articles, period),
                                    include=["documents", "metadatas", "distances"])
        if not got["ids"][0] and self.count() == 0:
            raise IndexNotReadyError("The index is empty. Add articles with `qa ingest FOLDER` first.")
        return [Passage.from_record(pid, doc, meta, score=1.0 - float(dist))
                for pid, doc, meta, dist in zip(got["ids"][0], got["documents"][0], got["metadatas"][0],
                                                got["distances"][0], strict=True)]
