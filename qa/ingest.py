"""Bringing a folder of articles into the index.

Passage ids are content hashes of (article id, passage text), so ingesting
the same folder twice changes nothing, and an article whose passages are all
already stored is not even embedded again. For each article that changed, the
new passages are written first and the stale ones deleted after, so a run
killed at any point leaves at worst some extra passages, which the next run
removes; the keyword index is rebuilt whenever it does not cover exactly the
stored passages, so the next run repairs it too. Articles that disappeared
from the folder lose their passages. :func:`apply_changes` does the same for a
few changed paths of a folder, reading only those (``qa ingest --watch``).

One ingest at a time per index: a second one is refused with a message
rather than interleaving its writes. The lock is a file in the data
directory; for an index on a Chroma server it is named after the server, so it
keeps apart ingests started from this machine (ingests from several machines
into one server should be run from one place).

Articles added on the chat page live apart, in ``<data dir>/uploads/``, with
ids starting ``uploads/``; ingesting a folder leaves them alone (see
:mod:`qa.library`).

Articles added by their web address (:func:`ingest_link`) have their address as
id, and their pages kept in ``<data dir>/links/`` (:mod:`qa.links`). A folder
ingest reads those copies along with the folder, so it never removes a linked
article whose copy is kept, ``--rebuild`` included; adding a link touches no
other article.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .articles import Article, Skipped, load_folder, load_paths
from .chunking import DEFAULT_CHUNKING, Chunking, split_passages
from .embedder import Embedder
from .errors import IndexBusyError, NoArticlesError
from .fetch import AddressPolicy, fetch_page, is_public
from .links import is_link, links_dir, load_linked, read_page, stage_page
from .retrieval import KeywordIndex
from .store import ChromaStore, Passage

Progress = Callable[[int, int], None]
UPLOAD_PREFIX = "uploads/"  # article ids of files added on the chat page


def passage_id(article_id: str, text: str) -> str:
    """Content hash of a passage.

    >>> passage_id("a.txt", "Some text.")[:12]
    '8eaa900df2e8'
    """
    return hashlib.sha256(f"{article_id}\0{text}".encode()).hexdigest()[:32]


def article_passages(article: Article, chunking: Chunking = DEFAULT_CHUNKING) -> list[Passage]:
    """Cut one article into passages with their ids (duplicates within it dropped)."""
    seen: set[str] = set()
    out: list[Passage] = []
    for start, end in split_passages(article.text, chunking):
        text = article.text[start:end]
        pid = passage_id(article.id, text)
        if pid in seen:
            continue
        seen.add(pid)
        out.append(Passage(id=pid, text=text, article_id=article.id, title=article.title,
                           source=article.source, start=start, end=end, outlet=article.outlet,
                           author=article.author, date=article.date))
    return out


@dataclass
class IngestReport:
    """What an ingest did."""

    articles: int = 0
    links: int = 0  # of the articles, how many were added by their web address
    added: int = 0
    replaced: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> str:
        linked = f" ({self.links} of them added by link)" if self.links else ""
        line = (f"{self.articles} articles{linked}: {self.added} passages added, {self.replaced} replaced, "
                f"{self.removed} removed ({self.unchanged} articles unchanged)")
        if self.skipped:
            line += "; skipped " + ", ".join(f"{s.source} ({s.reason})" for s in self.skipped)
        return line + "."


def lock_name(url: str | None = None) -> str:
    """The lock file's name for the local index, or for the index on a server.

    >>> lock_name(), lock_name("http://10.0.0.5:8000")
    ('ingest.lock', 'ingest-10.0.0.5-8000.lock')
    """
    if not url:
        return "ingest.lock"
    return "ingest-" + re.sub(r"[^A-Za-z0-9.]+", "-", url.split("://", 1)[-1]).strip("-") + ".lock"


@contextmanager
def ingest_lock(data_dir: Path, url: str | None = None) -> Iterator[None]:
    """Hold the ingest lock of the index (local, or on the server at ``url``), or raise :class:`IndexBusyError`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / lock_name(url), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise IndexBusyError(
                f"Another ingest is writing to {url or data_dir}. Wait for it to finish, then run this again."
            ) from exc
        yield
    finally:
        os.close(fd)


@dataclass
class Plan:
    """What an ingest would change, worked out without embedding anything."""

    to_add: list[Passage] = field(default_factory=list)
    to_delete: list[str] = field(default_factory=list)
    report: IngestReport = field(default_factory=IngestReport)

    @property
    def is_noop(self) -> bool:
        return not self.to_add and not self.to_delete


def plan_ingest(articles: list[Article], stored: dict[str, set[str]], chunking: Chunking,
                prune: bool = True) -> Plan:
    """Compare the folder's passages with the stored ids.

    ``prune`` removes the passages of articles no longer in the folder.
    """
    plan = Plan()
    plan.report.articles = len(articles)
    for article in articles:
        passages = article_passages(article, chunking)
        new_ids = {p.id for p in passages}
        old_ids = stored.get(article.id, set())
        if new_ids == old_ids:
            plan.report.unchanged += 1
            continue
        plan.to_add.extend(p for p in passages if p.id not in old_ids)
        stale = old_ids - new_ids
        plan.to_delete.extend(sorted(stale))
        plan.report.added += len(new_ids - old_ids)
        plan.report.replaced += len(stale)
    if prune:
        present = {a.id for a in articles}
        for article_id, ids in sorted(stored.items()):
            if article_id not in present:
                plan.to_delete.extend(sorted(ids))
                plan.report.removed += len(ids)
    return plan


def ingest(folder: Path, store: ChromaStore, embedder: Embedder, data_dir: Path,
           chunking: Chunking = DEFAULT_CHUNKING, progress: Progress | None = None, rebuild: bool = False,
           batch_size: int = 64) -> IngestReport:
    """Make the index hold exactly the passages of the articles in ``folder``.

    The keyword index in ``data_dir`` is rebuilt from the store afterwards, so
    both always cover the same passages.
    """
    check_folder(folder)
    articles, skipped = load_folder(folder)
    if not articles:
        detail = f" ({'; '.join(f'{s.source}: {s.reason}' for s in skipped)})" if skipped else ""
        raise NoArticlesError(f"No readable .txt, .md, .html or .pdf article in {folder}{detail}. "
                              "Add article files there, or name another folder.")
    return _update(articles, skipped, lambda article_id: True, store, embedder, data_dir, chunking, progress,
                   batch_size, rebuild, with_links=True)


def apply_changes(folder: Path, paths: Iterable[Path], store: ChromaStore, embedder: Embedder, data_dir: Path,
                  chunking: Chunking = DEFAULT_CHUNKING, progress: Progress | None = None,
                  batch_size: int = 64) -> IngestReport:
    """Bring the index up to date with these changed ``paths`` below ``folder``.

    A path may be a file or a folder, added, edited or gone; the index ends as
    :func:`ingest` of the whole folder would leave it, but only these paths are
    read. A path that is not an article file (or a folder) changes nothing.
    """
    paths = list(paths)
    changed = {p.relative_to(folder).as_posix() for p in paths}
    articles, skipped = load_paths(folder, paths)
    return _update(articles, skipped, lambda article_id: is_below(article_id, changed), store, embedder,
                   data_dir, chunking, progress, batch_size)


def is_below(article_id: str, paths: Iterable[str]) -> bool:
    """Is the article at one of these relative paths, or in one of these folders (``.``: the whole folder)?

    >>> is_below("2024/a.txt", ["2024"]), is_below("2024b.txt", ["2024"]), is_below("b.txt", ["."])
    (True, False, True)
    """
    return any(p in (".", article_id) or article_id.startswith(p + "/") for p in paths)


def check_folder(folder: Path) -> None:
    """Raise :class:`NoArticlesError` unless ``folder`` is a folder."""
    if not folder.is_dir():
        raise NoArticlesError(f"{folder} is not a folder. Name a folder of .txt, .md, .html or .pdf articles.")


def _update(articles: list[Article], skipped: list[Skipped], covers: Callable[[str], bool], store: ChromaStore,
            embedder: Embedder, data_dir: Path, chunking: Chunking, progress: Progress | None, batch_size: int,
            rebuild: bool = False, with_links: bool = False) -> IngestReport:
    """Under the ingest lock: make the stored articles that ``covers`` selects hold exactly ``articles``
    (and, ``with_links``, the articles added by link, read again from their kept pages)."""
    with ingest_lock(data_dir, store.url):
        # under the lock: a link being added is whole
        linked, unreadable = load_linked(links_dir(data_dir)) if with_links else ([], [])
        if rebuild:
            store.reset()
        every = store.ids_by_article()
        stored = {a: ids for a, ids in every.items() if not a.startswith(UPLOAD_PREFIX) and covers(a)}
        if with_links:
            plan = plan_ingest(articles + linked, stored, chunking)
            plan.report.links = len(linked)
            plan.report.skipped = skipped + unreadable
        else:  # a batch of changed files: linked articles are not among them
            stored = {a: ids for a, ids in stored.items() if not is_link(a)}
            plan = plan_ingest(articles, stored, chunking)
            plan.report.skipped = skipped
        apply_plan(plan, store, embedder, progress, batch_size)
        stored_ids = [i for ids in every.values() for i in ids]
        if not plan.is_noop or not KeywordIndex(data_dir / "keyword").matches(stored_ids):
            sync_keyword(store, data_dir)
    return plan.report


def sync_keyword(store: ChromaStore, data_dir: Path) -> None:
    """Rebuild the keyword index of ``data_dir`` from the store (call after every change to it)."""
    KeywordIndex(data_dir / "keyword").build(store.all_passages())


def apply_plan(plan: Plan, store: ChromaStore, embedder: Embedder, progress: Progress | None = None,
               batch_size: int = 64) -> None:
    """Embed and write the new passages, then delete the stale ones."""
    total = len(plan.to_add)
    for i in range(0, total, batch_size):
        batch = plan.to_add[i:i + batch_size]
        store.add(batch, embedder.embed([f"{p.title}\n{p.text}" for p in batch]))
        if progress:
            progress(min(i + batch_size, total), total)
    store.delete(plan.to_delete)


@dataclass(frozen=True)
class LinkResult:
    """One article added by its web address."""

    article_id: str  # its canonical address
    title: str
    passages: int
    replaced: bool  # it was in the index already
    changed: bool  # its passages changed (False: added again as it was)

    def summary(self) -> str:
        if not self.changed:
            return f"Already in the index, unchanged: {self.title} ({self.article_id})."
        verb = "Updated" if self.replaced else "Added"
        return f"{verb} {self.title} ({self.passages} passages) as {self.article_id}."


def ingest_link(url: str, store: ChromaStore, embedder: Embedder, data_dir: Path,
                chunking: Chunking = DEFAULT_CHUNKING, progress: Progress | None = None, *,
                allowed: AddressPolicy = is_public) -> LinkResult:
    """Fetch the article at ``url`` and index it under its canonical address, keeping a copy of its page.

    A page that cannot be fetched or is not an article raises :class:`~qa.errors.LinkError` before
    anything is written. ``allowed`` decides which addresses may be fetched (:mod:`qa.fetch`).
    """
    page = fetch_page(url, allowed=allowed)
    article = read_page(page)
    with ingest_lock(data_dir, store.url):
        old = store.passage_ids(article.id)
        plan = plan_ingest([article], {article.id: old} if old else {}, chunking, prune=False)
        staged = stage_page(links_dir(data_dir), article.id, page)
        try:
            apply_plan(plan, store, embedder, progress)
            staged.commit()
        except BaseException:
            store.delete([p.id for p in plan.to_add])
            staged.discard()
            raise
        finally:
            if not plan.is_noop:
                sync_keyword(store, data_dir)
    passages = len(old) + plan.report.added - plan.report.replaced
    return LinkResult(article.id, article.title, passages, replaced=bool(old), changed=not plan.is_noop)
