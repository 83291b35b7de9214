"""Keeping the index in step with a folder as it changes (``qa ingest --watch``).

    watch the folder (watchfiles) ─> ingest it whole, as `qa ingest` does
        │ a batch of changes: files and folders added, edited, removed
        ▼
    drop what is no article: hidden, temporary (swap files, .partial, ~), other types
        │
        ▼
    under the ingest lock: read only those paths, write and delete their passages,
    rebuild the keyword index (:func:`qa.ingest.apply_changes`)
        │ the lock is busy, or the store fails: the batch waits and is tried again
        ▼
    one line per batch

The watch starts before the first ingest, so nothing changed during it is
missed. Passage ids are the same content hashes as a plain ingest, so the
index always ends as ``qa ingest FOLDER`` would leave it. If the folder itself
goes away (a drive unplugged), watching stops and the index keeps its articles.
Ctrl+C while a batch is being applied stops the watch once that batch is done and told (a second
Ctrl+C stops it at once). SIGTERM (``kill``, ``docker stop``, a service manager) stops it the same
way, which is how a watch running in the background is stopped: it gets no Ctrl+C from the
terminal, and a script's ``cmd &`` even starts it with SIGINT ignored.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .articles import SUFFIXES
from .chunking import DEFAULT_CHUNKING, Chunking
from .embedder import Embedder
from .errors import IndexBusyError, NoArticlesError, QAError
from .ingest import IngestReport, Progress, apply_changes, check_folder, ingest
from .store import ChromaStore

Change = tuple[int, str]  # watchfiles' (Change, path); Change.added == 1, modified == 2, deleted == 3
ADDED, DELETED = 1, 3
RETRY_S = 2.0  # how often a waiting batch is tried again

# editors' backups and autosaves (a.md~, #a.md#), office lock files (~$a), downloads and copies in progress
_TEMPORARY = re.compile(r"~$|^#.*#$|^~\$|\.(partial|part|tmp|temp|crdownload|download|swp|swx|bak)$", re.IGNORECASE)


def is_watched(folder: Path, change: int, path: Path) -> bool:
    """Is a change at ``path`` one that can change the index?

    Article files are; so are folders added (moved in) and any path deleted (it may have been a
    folder of articles). Hidden files and folders, temporary files and other types are not.

    >>> folder = Path("/nowhere/articles")
    >>> [is_watched(folder, 1, folder / name) for name in ("a.md", "2024/b.TXT", "c.pdf.partial", ".c.md.swp")]
    [True, True, False, False]
    >>> [is_watched(folder, 3, folder / name) for name in ("a.md~", "#a.md#", ".git/x.md", "old-folder")]
    [False, False, False, True]
    >>> [is_watched(folder, 2, folder / name) for name in ("#1 story.md", "photo.jpg", "notes.docx")]
    [True, False, False]
    """
    try:
        parts = path.relative_to(folder).parts
    except ValueError:
        return False
    if not parts or any(part.startswith(".") for part in parts) or _TEMPORARY.search(parts[-1]):
        return False
    if path.suffix.lower() in SUFFIXES:
        return True
    return change == DELETED or (change == ADDED and path.is_dir())


def changed_paths(folder: Path, changes: Iterable[Change]) -> set[Path]:
    """The paths of a batch of changes that can change the index (see :func:`is_watched`)."""
    return {Path(p) for change, p in changes if is_watched(folder, int(change), Path(p))}


def watch_changes(folder: Path) -> Iterator[set[Change]]:
    """Batches of changes below ``folder``, from watchfiles; an empty batch every :data:`RETRY_S` without one.

    Ctrl+C (or SIGTERM, under :func:`stop_on_term`) ends it with :class:`KeyboardInterrupt`.
    """
    from watchfiles import watch

    for batch in watch(folder, watch_filter=lambda change, path: is_watched(folder, change, Path(path)),
                       step=200, rust_timeout=int(RETRY_S * 1000), yield_on_timeout=True):
        yield {(int(change), path) for change, path in batch}


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""The signals that stop a watch: Ctrl+C, and the polite ``kill``."""


@contextmanager
def stop_on_term() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`KeyboardInterrupt`, as Ctrl+C does.

    Its default action ends the process at once, wherever a batch is. Only where SIGTERM has that
    default (a program's own handler is left to it), and only in the main thread (which alone
    receives signals); the handler before is put back after.
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL):
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def interrupt_after() -> Iterator[None]:
    """Hold Ctrl+C (SIGINT) and SIGTERM back until the block is done, then raise :class:`KeyboardInterrupt`.

    A second one raises at once. An error raised by the block goes on as it is. Only the main
    thread receives signals, and only a signal that raises :class:`KeyboardInterrupt` is held (see
    :func:`stop_on_term`): one that is ignored or handled elsewhere stays so.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = [s for s in STOP_SIGNALS if signal.getsignal(s) is signal.default_int_handler]
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if caught:
            raise KeyboardInterrupt
        caught.append(signum)

    try:
        for signum in held:  # within the try: a signal that raises while they are swapped still restores them
            signal.signal(signum, hold)
        yield
    finally:
        for signum in held:
            signal.signal(signum, signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


def _names(folder: Path, paths: Iterable[Path], most: int = 3) -> str:
    """
    >>> _names(Path("/f"), [Path("/f/b.md"), Path("/f/a.md")])
    'a.md, b.md'
    >>> _names(Path("/f"), [Path(f"/f/{n}.md") for n in range(5)])
    '0.md, 1.md, 2.md and 2 more'
    """
    names = sorted(p.relative_to(folder).as_posix() for p in paths)
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def what_changed(report: IngestReport) -> str:
    """One batch's changes, briefly.

    >>> what_changed(IngestReport(added=3, removed=1))
    '3 passages added, 1 removed.'
    >>> from qa.articles import Skipped
    >>> what_changed(IngestReport(replaced=1, skipped=[Skipped("b.pdf", "a scan, no text")]))
    '1 passage replaced; skipped b.pdf (a scan, no text).'
    """
    counts = [(n, verb) for n, verb in ((report.added, "added"), (report.replaced, "replaced"),
                                        (report.removed, "removed")) if n]
    line = ", ".join(f"{n} {'passage' if n == 1 else 'passages'} {verb}" if i == 0 else f"{n} {verb}"
                     for i, (n, verb) in enumerate(counts))
    if report.skipped:
        line += ("; " if line else "") + "skipped " + ", ".join(f"{s.source} ({s.reason})" for s in report.skipped)
    return line + "."


def follow_folder(folder: Path, store: ChromaStore, embedder: Embedder, data_dir: Path,
                  chunking: Chunking = DEFAULT_CHUNKING, *, say: Callable[[str], None] = print,
                  progress: Progress | None = None, rebuild: bool = False,
                  changes: Iterable[set[Change]] | None = None) -> IngestReport:
    """Ingest ``folder``, then apply its changes as they come, until Ctrl+C or SIGTERM (or ``changes`` ends).

    Called from the main thread, that is; SIGTERM only where the program has no handler of its own
    (:func:`stop_on_term`). ``say`` gets one line per applied batch; ``changes`` replaces the watch
    of the folder (for tests). Returns the report of the first ingest.
    """
    folder = folder.absolute()
    check_folder(folder)
    with stop_on_term():  # SIGTERM stops the watch as Ctrl+C does
        batches = iter(changes) if changes is not None else watch_changes(folder)
        pending = changed_paths(folder, next(batches, set()))  # watching from here on
        first = ingest(folder, store, embedder, data_dir, chunking, progress=progress, rebuild=rebuild)
        say(first.summary())
        say(f"Watching {folder} for changes (Ctrl+C or SIGTERM to stop).")
        waiting = ""
        for batch in batches:
            pending |= changed_paths(folder, batch)
            if not pending:
                continue
            if not folder.is_dir():
                raise NoArticlesError(f"{folder} is gone, so watching it stopped; the index keeps its articles.")
            with interrupt_after():  # a batch is applied and told whole
                try:
                    report = apply_changes(folder, pending, store, embedder, data_dir, chunking)
                except QAError as exc:
                    reason = "another ingest is writing to the index" if isinstance(exc, IndexBusyError) else str(exc)
                    if reason != waiting:  # said once, not at every try
                        say(f"{time.strftime('%H:%M:%S')} waiting: {reason} (trying again every {RETRY_S:g} s).")
                    waiting = reason
                    continue
                if report.added or report.replaced or report.removed or report.skipped:
                    say(f"{time.strftime('%H:%M:%S')} {_names(folder, pending)}: {what_changed(report)}")
                pending, waiting = set(), ""
        return first
