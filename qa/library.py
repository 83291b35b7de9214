"""The article library of the chat page: what is indexed, adding files, removing articles.

Files added on the page are kept in ``<data dir>/uploads/`` under a safe name,
and their article id is ``uploads/<name>``. ``qa ingest FOLDER`` leaves those
ids alone, and :meth:`Library.sync_uploads` (run when the page starts)
indexes that folder again, so an upload survives ``qa ingest --rebuild``.

An upload is checked completely before anything is written::

    size (20 MB at most) ─> safe file name ─> content matches the suffix ─> article text
        │ a check fails: UploadError with the reason; the index and the folder are untouched
        ▼
    under the ingest lock: passages embedded and written, then the file renamed into place
        │ writing fails: the new passages are deleted again and the file is not kept
        ▼
    UploadResult

An article added by its web address (:meth:`Library.add_link`, see
:mod:`qa.links`) is fetched and checked completely before anything is written,
the same way.

Removing an article deletes its passages (and, for an upload or a link, its
kept copy). An article of an ingested folder comes back when that folder is
ingested again.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .articles import MAX_FILE_BYTES, Skipped, article_from_bytes, load_folder
from .chunking import DEFAULT_CHUNKING, Chunking
from .embedder import Embedder
from .errors import QAError, UploadError
from .fetch import AddressPolicy, is_public
from .ingest import (
    UPLOAD_PREFIX,
    IngestReport,
    LinkResult,
    apply_plan,
    ingest_link,
    ingest_lock,
    plan_ingest,
    sync_keyword,
)
from .links import is_link, links_dir, remove_page
from .retrieval import KeywordIndex
from .store import ChromaStore

MAX_UPLOAD_BYTES = MAX_FILE_BYTES
UPLOAD_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
_MB = 1024 * 1024
_KINDS = [(b"%PDF-", "a PDF file"), (b"PK\x03\x04", "a ZIP archive (or a Word or OpenDocument file)"),
          (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"\x7fELF", "a program"), (b"MZ", "a Windows program"), (b"\x1f\x8b", "a gzip archive"),
          (b"\xd0\xcf\x11\xe0", "an old Microsoft Office file"), (b"Rar!", "a RAR archive"),
          (b"7z\xbc\xaf", "a 7-Zip archive"), (b"\xff\xfe", "UTF-16 text"), (b"\xfe\xff", "UTF-16 text")]
_SUFFIX_LIST = ".txt, .md, .html or .pdf"


def display_name(name: str) -> str:
    """The last part of a client-supplied file name, for messages.

    >>> display_name("C:\\\\Users\\\\me\\\\notes.txt"), display_name("")
    ('notes.txt', 'the file')
    """
    return re.split(r"[\\/]", name or "")[-1] or "the file"


def safe_name(name: str) -> str:
    """A file name that is safe to write: no folders, only ASCII letters, digits, ``.``, ``-`` and ``_``.

    >>> safe_name("../../etc/cron.d/evil.txt")
    'evil.txt'
    >>> safe_name("C:\\\\Users\\\\me\\\\Élection report (final).PDF")
    'Election_report_final.pdf'
    >>> safe_name(".md")
    'article.md'
    """
    base = unicodedata.normalize("NFKD", display_name(name)).encode("ascii", "ignore").decode()
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = f".{suffix.lower()}" if dot else ""
    if suffix not in UPLOAD_SUFFIXES:
        kind = f"a {suffix} file" if suffix else "a file without a suffix"
        raise UploadError(f"{display_name(name)} is {kind}. Add {_SUFFIX_LIST} articles.")
    stem = re.sub(r"[^A-Za-z0-9.-]+", "_", stem).strip("._-")
    stem = re.sub(r"([._-])[._-]+", r"\1", stem)[:100].rstrip("._-")
    return f"{stem or 'article'}{suffix}"


def _kind(data: bytes) -> str:
    return next((kind for magic, kind in _KINDS if data.startswith(magic)), "binary data")


def check_content(data: bytes, suffix: str, name: str) -> None:
    """Raise :class:`UploadError` unless the bytes are what the suffix says.

    >>> check_content(b"%PDF-1.7 ...", ".txt", "a.txt")
    Traceback (most recent call last):
    qa.errors.UploadError: a.txt is a PDF file but is named .txt. Rename it to .pdf and add it again.
    """
    if not data.strip():
        raise UploadError(f"{name} is empty.")
    if suffix == ".pdf":
        if not data.startswith(b"%PDF-"):
            raise UploadError(f"{name} is named .pdf but is not a PDF file (it holds {_kind(data)}).")
        return
    if data.startswith(b"%PDF-"):
        raise UploadError(f"{name} is a PDF file but is named {suffix}. Rename it to .pdf and add it again.")
    head = data[:65536]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(data) > len(head) and exc.start >= len(head) - 4:  # a character cut by the sample's end
            text = head[:exc.start].decode("utf-8", "replace")
        else:
            text = head.decode("cp1252", "replace")
    controls = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f\v")
    if "\x00" in text or controls > len(text) // 100:
        raise UploadError(f"{name} is not a text file (it holds {_kind(data)}). Add {_SUFFIX_LIST} articles; "
                          "text must be saved as UTF-8.")


@dataclass(frozen=True)
class UploadResult:
    """One file added to the index."""

    article_id: str
    title: str
    passages: int
    replaced: bool  # an earlier upload of the same name was replaced


class Library:
    """The indexed articles, and the files added on the page, over one store."""

    def __init__(self, store: ChromaStore, embedder: Embedder, data_dir: Path,
                 chunking: Chunking = DEFAULT_CHUNKING, allowed: AddressPolicy = is_public) -> None:
        self.store = store
        self.embedder = embedder
        self.data_dir = data_dir
        self.chunking = chunking
        self.allowed = allowed  # the addresses a link may be fetched from (qa.fetch)
        self._rows: list[dict[str, Any]] | None = None
        self._rows_stamp: tuple[int, ...] | None = None
        self._keyword = KeywordIndex(data_dir / "keyword")
        self._lock = threading.Lock()

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    def stamp(self) -> tuple[int, ...]:
        """A cheap sign of the index's state, which changes when any process changes the index: its passage
        count, and when its keyword index was last written (every ingest, upload or removal writes it)."""
        return self.store.count(), *self._keyword.stamp()

    def articles(self) -> list[dict[str, Any]]:
        """One row per indexed article, as :meth:`ChromaStore.articles` gives it (cached while unchanged)."""
        stamp = self.stamp()
        with self._lock:
            if self._rows is None or stamp != self._rows_stamp:
                self._rows, self._rows_stamp = self.store.articles(), stamp
            return list(self._rows)

    def _changed(self) -> None:
        with self._lock:
            self._rows = None

    def _upload_path(self, filename: str) -> Path:
        folder = self.uploads_dir.resolve()
        path = (folder / filename).resolve()
        if path.parent != folder:  # safe_name makes this impossible; checked all the same
            raise UploadError(f"{filename} is not a plain file name.")
        return path

    def add_upload(self, path: Path, name: str, progress: Callable[[int, int], None] | None = None) -> UploadResult:
        """Check, index and keep one uploaded file; ``name`` is the name the user gave it."""
        shown = display_name(name)
        try:
            size = path.stat().st_size
            if size > MAX_UPLOAD_BYTES:
                raise UploadError(f"{shown} is {size / _MB:.1f} MB; files are limited to "
                                  f"{MAX_UPLOAD_BYTES // _MB} MB.")
            filename = safe_name(name)
            data = path.read_bytes()
        except OSError as exc:
            raise UploadError(f"{shown} could not be read ({exc.strerror or exc}).") from exc
        suffix = Path(filename).suffix
        check_content(data, suffix, shown)
        article_id = UPLOAD_PREFIX + filename
        article = article_from_bytes(data, article_id, suffix)
        if isinstance(article, Skipped):
            raise UploadError(f"{shown} was not added: {article.reason}.")

        target = self._upload_path(filename)
        with ingest_lock(self.data_dir, self.store.url):
            old = self.store.passage_ids(article_id)
            plan = plan_ingest([article], {article_id: old} if old else {}, self.chunking, prune=False)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{filename}.partial")
            try:
                partial.write_bytes(data)
                apply_plan(plan, self.store, self.embedder, progress)
                os.replace(partial, target)
            except BaseException:
                self.store.delete([p.id for p in plan.to_add])
                partial.unlink(missing_ok=True)
                raise
            finally:
                sync_keyword(self.store, self.data_dir)
                self._changed()
        passages = len(old) + plan.report.added - plan.report.replaced
        return UploadResult(article_id, article.title, passages, replaced=bool(old))

    def add_link(self, url: str, progress: Callable[[int, int], None] | None = None) -> LinkResult:
        """Fetch, check and index the article at the web address ``url``, keeping a copy of its page."""
        try:
            return ingest_link(url, self.store, self.embedder, self.data_dir, self.chunking, progress,
                               allowed=self.allowed)
        finally:
            self._changed()

    def remove(self, article_id: str) -> int:
        """Delete an article's passages (and its kept copy, for an upload or a link); return how many went."""
        with ingest_lock(self.data_dir, self.store.url):
            removed = self.store.delete_article(article_id)
            file_removed = False
            if article_id.startswith(UPLOAD_PREFIX):
                path = self._upload_path(article_id[len(UPLOAD_PREFIX):])
                file_removed = path.is_file()
                path.unlink(missing_ok=True)
            elif is_link(article_id):
                file_removed = remove_page(links_dir(self.data_dir), article_id)
            if removed:
                sync_keyword(self.store, self.data_dir)
            self._changed()
        if not removed and not file_removed:
            raise QAError(f"{article_id} is not in the index; it may have been removed already.")
        return removed

    def sync_uploads(self, progress: Callable[[int, int], None] | None = None) -> IngestReport:
        """Make the index hold exactly the files of the uploads folder (under their ``uploads/`` ids)."""
        articles, skipped = load_folder(self.uploads_dir) if self.uploads_dir.is_dir() else ([], [])
        articles = [dataclasses.replace(a, source=UPLOAD_PREFIX + a.source) for a in articles]
        with ingest_lock(self.data_dir, self.store.url):
            stored = {a: ids for a, ids in self.store.ids_by_article().items() if a.startswith(UPLOAD_PREFIX)}
            plan = plan_ingest(articles, stored, self.chunking)
            plan.report.skipped = skipped
            apply_plan(plan, self.store, self.embedder, progress)
            if not plan.is_noop:
                sync_keyword(self.store, self.data_dir)
            self._changed()
        return plan.report
