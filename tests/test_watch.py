"""Folders kept in step with the index: the batch logic on plain files (real Chroma, the fake embedder),
`qa ingest --watch` as a real process, and a running chat page that sees another process's ingest."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qa.articles import load_folder
from qa.config import Settings
from qa.errors import NoArticlesError
from qa.ingest import apply_changes, article_passages, ingest, ingest_lock
from qa.pipeline import Pipeline
from qa.store import ChromaStore
from qa.watch import ADDED, DELETED, Change, changed_paths, follow_folder, interrupt_after, stop_on_term
from qa.web import ChatPage

from .conftest import SEEDS
from .fakes import FakeEmbedder, FakeLLM

ROOT = Path(__file__).resolve().parent.parent
MODIFIED = 2
ARTICLES = {
    "ferry.txt": "Ferry line reopens\n\nThe ferry line to Norvale reopened on Monday after winter repairs, "
                 "the harbour office said. Crossings run every forty minutes.\n",
    "bakery.md": "---\ntitle: Bakery wins the rye prize\noutlet: Quimby Herald\n---\nThe corner bakery in Quimby won "
                 "the regional bread prize for its rye loaf, judges said on Friday.\n",
    "2024/chess.md": "Chess club finds a new hall\n\nThe Norvale chess club moved its Thursday evenings to the old "
                     "fire station, which the council lent it for a year.\n",
}


def _write(folder: Path, files: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        paths.append(path)
    return paths


def _index(data: Path, embedder: Any) -> dict[str, Any]:
    """What an index holds: passage ids with their texts and places, the article list, the keyword index's ids."""
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    try:
        passages = {p.id: (p.text, p.article_id, p.start, p.end, p.title) for p in store.all_passages()}
        keyword = json.loads((data / "keyword" / "meta.json").read_text())
        return {"passages": passages, "articles": store.articles(), "keyword": sorted(keyword["ids"])}
    finally:
        store.close()


def _clean(folder: Path, data: Path, embedder: Any) -> dict[str, Any]:
    """The index a plain ingest of ``folder`` makes in a fresh data directory."""
    ingest(folder, ChromaStore(data / "chroma", embedder_name=embedder.name), embedder, data)
    return _index(data, embedder)


# --- the batch logic, on plain files -----------------------------------------------------------------------

def test_only_changes_that_can_change_the_index_are_kept(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    _write(folder, {"a.md": "A\n\nText.", "sub/b.txt": "B\n\nText.", "notes.docx": "x", ".a.md.swp": "x",
                    "a.md.partial": "x", "a.md~": "x", ".hidden/c.md": "C\n\nText."})
    events: list[Change] = [
        (MODIFIED, str(folder / "a.md")), (ADDED, str(folder / "sub")), (ADDED, str(folder / "sub/b.txt")),
        (MODIFIED, str(folder / "sub")),  # a folder's own change says nothing of its articles
        (ADDED, str(folder / "notes.docx")), (ADDED, str(folder / ".a.md.swp")), (ADDED, str(folder / "a.md.partial")),
        (ADDED, str(folder / "a.md~")), (ADDED, str(folder / ".hidden/c.md")), (MODIFIED, str(folder)),
        (DELETED, str(folder / "old-folder")), (DELETED, str(folder / "gone.pdf")),
        (ADDED, str(tmp_path / "elsewhere.md")),
    ]
    kept = changed_paths(folder, events)
    assert {p.relative_to(folder).as_posix() for p in kept} == {"a.md", "sub", "sub/b.txt", "old-folder", "gone.pdf"}


def test_a_batch_of_changes_leaves_the_index_a_clean_ingest_would(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    folder, data = tmp_path / "articles", tmp_path / "data"
    _write(folder, ARTICLES)
    _write(folder, {"old/one.md": "Old one\n\nThe old pier was closed in the spring for repairs.",
                    "quiet.md": "Quiet street\n\nNothing changed on the quiet street this week."})
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    ingest(folder, store, embedder, data)

    events: list[Change] = []
    added = _write(folder, {"new/library.txt": "Library hours\n\nThe town library stays open until nine on "
                                               "weekdays from April.\n"})
    events += [(ADDED, str(folder / "new")), (ADDED, str(added[0]))]
    (folder / "ferry.txt").write_text(ARTICLES["ferry.txt"].replace("forty", "thirty"))
    events.append((MODIFIED, str(folder / "ferry.txt")))
    (folder / "bakery.md").unlink()
    events.append((DELETED, str(folder / "bakery.md")))
    shutil.rmtree(folder / "old")  # a folder moved away: only the folder is told
    events.append((DELETED, str(folder / "old")))
    (folder / "2024" / "chess.md").write_text("")  # now empty: skipped, so its passages go
    events.append((MODIFIED, str(folder / "2024" / "chess.md")))
    _write(folder, {".library.txt.swp": "Swap\n\nNot an article.", "draft.md.partial": "Half\n\nOf a file."})
    events += [(ADDED, str(folder / ".library.txt.swp")), (ADDED, str(folder / "draft.md.partial"))]

    calls = len(embedder.calls)
    report = apply_changes(folder, changed_paths(folder, events), store, embedder, data)
    embedded = [t for call in embedder.calls[calls:] for t in call]
    assert report.removed >= 2 and report.replaced >= 1 and [s.source for s in report.skipped] == ["2024/chess.md"]
    assert any("thirty" in t for t in embedded) and any("library stays open" in t for t in embedded)
    assert not any("quiet street" in t for t in embedded), "an article left alone is not read or embedded again"
    assert _index(data, embedder) == _clean(folder, tmp_path / "clean", embedder)

    again = apply_changes(folder, changed_paths(folder, events), store, embedder, data)
    assert (again.added, again.replaced, again.removed) == (0, 0, 0), "the same batch twice changes nothing"


def test_the_watch_waits_while_another_ingest_writes_and_then_applies(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    folder, data = tmp_path / "articles", tmp_path / "data"
    _write(folder, ARTICLES)
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)

    def changes() -> Iterator[set[Change]]:
        yield set()  # the watch has started
        (folder / "pier.md").write_text("Pier reopens\n\nThe old pier reopened to walkers on Sunday.")
        yield {(ADDED, str(folder / "pier.md"))}
        with ingest_lock(data):  # another ingest holds the index
            (folder / "bakery.md").unlink()
            yield {(DELETED, str(folder / "bakery.md"))}
            yield set()
        yield set()  # it has finished: the waiting change is applied now

    lines: list[str] = []
    first = follow_folder(folder, store, embedder, data, say=lines.append, changes=changes())
    assert first.articles == 3
    assert lines[1] == f"Watching {folder} for changes (Ctrl+C or SIGTERM to stop)."
    assert [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in lines[2:]] == [
        "pier.md: 1 passage added.",
        "waiting: another ingest is writing to the index (trying again every 2 s).",
        "bakery.md: 1 passage removed.",
    ]
    assert _index(data, embedder) == _clean(folder, tmp_path / "clean", embedder)


@pytest.fixture
def default_signals() -> Iterator[None]:
    """Ctrl+C raising KeyboardInterrupt and SIGTERM at its default action (which ends the process), as
    in a terminal, whatever started pytest (a background job of a script has SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler), signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGINT, previous[0])
    signal.signal(signal.SIGTERM, previous[1])


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_during_a_batch_stops_the_watch_after_the_batch_is_applied_whole(
        tmp_path: Path, stop: signal.Signals, default_signals: None) -> None:
    import os

    class InterruptedEmbedder(FakeEmbedder):
        """Ctrl+C or SIGTERM arrives while a batch's passages are being embedded."""

        def embed(self, texts):  # type: ignore[no-untyped-def]
            if any("pier" in t for t in texts):
                assert callable(signal.getsignal(stop)), "the signal would end (or miss) the process"
                os.kill(os.getpid(), stop)
            return super().embed(texts)

    embedder = InterruptedEmbedder()
    folder, data = tmp_path / "articles", tmp_path / "data"
    _write(folder, ARTICLES)
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)

    def changes() -> Iterator[set[Change]]:
        yield set()
        _write(folder, {"pier.md": "Pier reopens\n\nThe old pier reopened to walkers on Sunday."})
        (folder / "bakery.md").unlink()
        yield {(ADDED, str(folder / "pier.md")), (DELETED, str(folder / "bakery.md"))}
        raise AssertionError("the watch goes on after Ctrl+C")

    lines: list[str] = []
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        follow_folder(folder, store, embedder, data, say=lines.append, changes=changes())
    assert signal.getsignal(signal.SIGINT) is before, "Ctrl+C is Ctrl+C again"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, "and SIGTERM ends the process again"
    assert re.sub(r"^\d\d:\d\d:\d\d ", "", lines[-1]) == "bakery.md, pier.md: 1 passage added, 1 removed."
    assert _index(data, embedder) == _clean(folder, tmp_path / "clean", FakeEmbedder())


def test_a_second_ctrl_c_stops_at_once_and_an_ignored_one_stays_ignored(default_signals: None) -> None:
    import os

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupt_after():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after the first")
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("after the second")
    assert reached == ["after the first"]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupt_after():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    with pytest.raises(OSError, match="disk full"), interrupt_after():
        os.kill(os.getpid(), signal.SIGINT)
        raise OSError("disk full")


def test_sigterm_stops_like_ctrl_c_and_a_handler_of_its_own_stays(default_signals: None) -> None:
    import os

    reached = []
    with pytest.raises(KeyboardInterrupt), stop_on_term(), interrupt_after():
        assert callable(signal.getsignal(signal.SIGTERM)), "SIGTERM would end the process"
        os.kill(os.getpid(), signal.SIGTERM)
        reached.append("the block goes on")
    assert reached == ["the block goes on"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with pytest.raises(KeyboardInterrupt), stop_on_term(), interrupt_after():
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("after Ctrl+C")
        assert callable(signal.getsignal(signal.SIGTERM)), "SIGTERM would end the process"
        os.kill(os.getpid(), signal.SIGTERM)
        reached.append("after SIGTERM as well")
    assert reached[1:] == ["after Ctrl+C"], "a second stop, of either kind, stops at once"
    terms: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: terms.append(signum))
    with stop_on_term(), interrupt_after():
        os.kill(os.getpid(), signal.SIGTERM)
    assert terms == [signal.SIGTERM], "a program's own SIGTERM handler is left to it"


def test_a_bad_or_vanished_folder_is_a_clear_message(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    store = ChromaStore(tmp_path / "data" / "chroma", embedder_name=embedder.name)
    with pytest.raises(NoArticlesError, match="is not a folder"):
        follow_folder(tmp_path / "missing", store, embedder, tmp_path / "data", changes=[])
    folder = tmp_path / "articles"
    _write(folder, ARTICLES)

    def changes() -> Iterator[set[Change]]:
        yield set()
        shutil.rmtree(folder)
        yield {(DELETED, str(folder / "ferry.txt"))}

    with pytest.raises(NoArticlesError, match="is gone, so watching it stopped; the index keeps its articles"):
        follow_folder(folder, store, embedder, tmp_path / "data", say=lambda line: None, changes=changes())
    assert len(store.articles()) == 3


def test_the_page_lists_the_library_again_only_when_the_index_changed(tmp_path: Path) -> None:
    import gradio as gr

    embedder = FakeEmbedder()
    folder = tmp_path / "articles"
    _write(folder, ARTICLES)
    settings = Settings(data_dir=tmp_path / "data")
    pipeline = Pipeline(ChromaStore(settings.chroma_dir, embedder_name=embedder.name), embedder, FakeLLM(), settings)
    ingest(folder, pipeline.store, embedder, settings.data_dir)
    page = ChatPage(lambda: pipeline)
    seen = page.seen()
    assert page.poll_library(["ferry.txt"], seen) == (gr.skip(),) * 4

    _write(folder, {"pier.md": "Pier reopens\n\nThe old pier reopened to walkers on Sunday."})
    apply_changes(folder, [folder / "pier.md"], pipeline.store, embedder, settings.data_dir)
    summary, choice, remove, now = page.poll_library(["ferry.txt"], seen)
    assert "4 articles" in summary and now["ids"] == sorted([*seen["ids"], "pier.md"])
    assert choice["value"] == ["ferry.txt", "pier.md"], "a new article is ticked; the user's choice stays"
    assert "Pier reopens" in str(choice["choices"]) and "Pier reopens" in str(remove["choices"])
    assert page.poll_library(choice["value"], now) == (gr.skip(),) * 4


def test_reopening_the_store_waits_for_the_calls_in_flight() -> None:
    import threading

    from qa.store import Gate

    gate = Gate()
    inside, release, reopened = threading.Event(), threading.Event(), threading.Event()

    def call() -> None:
        with gate.call(), gate.call():  # a call within a call passes through
            inside.set()
            release.wait(30)

    def reopen() -> None:
        with gate.exclusive():
            reopened.set()

    caller = threading.Thread(target=call)
    caller.start()
    inside.wait(30)
    reopener = threading.Thread(target=reopen)
    reopener.start()
    assert not reopened.wait(0.3), "not while a call is in flight"
    release.set()
    assert reopened.wait(30)
    caller.join()
    reopener.join()
    with gate.call(), pytest.raises(RuntimeError, match="wait for itself"), gate.exclusive():
        pass


# --- real processes ------------------------------------------------------------------------------------------

def _wait_for(condition: Any, what: str, process: subprocess.Popen[bytes] | None = None, log: Path | None = None,
              timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) before {what}:\n"
                                 f"{log.read_text() if log else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s:\n{log.read_text() if log else ''}")
        time.sleep(0.2)


def _exit_code(process: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The process's exit code; if it has not ended within ``timeout``, fail with where its threads are
    (SIGABRT makes Python's fault handler write them to the log)."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        raise AssertionError(f"the process did not end within {timeout:.0f} s:\n{log.read_text()}") from None


def _keyword_ids(data: Path) -> set[str]:
    try:
        return set(json.loads((data / "keyword" / "meta.json").read_text())["ids"])
    except (OSError, ValueError, KeyError):
        return set()


# Starts qa with Ctrl+C (SIGINT) as a terminal gives it ("default") or as a shell gives a command
# started in the background ("ignored"), whatever this test was started with: a background job of
# a non-interactive shell inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored.
_LAUNCH = ("import os, signal, sys; "
           "signal.signal(signal.SIGINT, signal.SIG_DFL if sys.argv[1] == 'default' else signal.SIG_IGN); "
           "signal.signal(signal.SIGTERM, signal.SIG_DFL); "
           "os.execv(sys.executable, [sys.executable, '-m', 'qa', *sys.argv[2:]])")


@pytest.mark.slow
@pytest.mark.parametrize(("stop", "sigint"), [(signal.SIGINT, "default"), (signal.SIGTERM, "ignored")],
                         ids=["ctrl-c-in-a-terminal", "sigterm-in-the-background"])
def test_qa_ingest_watch_keeps_the_index_equal_to_a_clean_ingest(  # type: ignore[no-untyped-def]
        tmp_path: Path, embedder, stop: signal.Signals, sigint: str) -> None:
    folder, data, log = tmp_path / "articles", tmp_path / "data", tmp_path / "watch.log"
    _write(folder, ARTICLES)
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", _LAUNCH, sigint, "ingest", "--watch", str(folder)],
                                   cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                   env={**_env(), "QA_DATA_DIR": str(data), "PYTHONFAULTHANDLER": "1"})
    try:
        _wait_for(lambda: "Watching" in log.read_text(), "first ingest", process, log)
        _write(folder, {"pier.md": "Pier reopens\n\nThe old pier reopened to walkers on Sunday, the council said.",
                        ".pier.md.swp": "swap", "draft.md.partial": "Half\n\nOf a file being copied."})
        (folder / "ferry.txt").write_text(ARTICLES["ferry.txt"].replace("forty", "thirty"))
        (folder / "bakery.md").unlink()
        expected = {p.id for a in load_folder(folder)[0] for p in article_passages(a)}
        _wait_for(lambda: _keyword_ids(data) == expected, "index of the changed folder", process, log)
        process.send_signal(stop)
        assert _exit_code(process, log, timeout=180) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert output.rstrip().endswith(f"Stopped watching {folder}.") and "Traceback" not in output
    assert re.search(r"\d\d:\d\d:\d\d .*pier\.md.*passage", output), output
    assert _index(data, embedder) == _clean(folder, tmp_path / "clean", embedder)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "QA_CHROMA_URL"}


@pytest.mark.slow
def test_a_running_page_lists_an_article_another_process_ingested(seeded_copy: Path, embedder,  # type: ignore[no-untyped-def]
                                                                  tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    from .test_browser import ARGS, CHROMIUM, _open, _serve

    settings = Settings(data_dir=seeded_copy, models_dir=tmp_path / "models")
    pipeline = Pipeline(ChromaStore(settings.chroma_dir, embedder_name=embedder.name), embedder, FakeLLM(), settings)
    question = "When did the old pier in Quimby reopen to walkers?"
    assert all(p.article_id != "pier.md" for p in pipeline.retrieve(question)), "the index is loaded, without it"
    folder = tmp_path / "articles"
    shutil.copytree(SEEDS, folder)
    _write(folder, {"pier.md": "Quimby pier reopens\n\nThe old pier in Quimby reopened to walkers on Sunday, "
                               "the council said.\n"})
    url, app = _serve(pipeline)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            page = _open(browser, url)
            assert "5 articles" in page.inner_text("#qa-library-summary")
            log = tmp_path / "ingest.log"
            with open(log, "wb") as out:
                process = subprocess.Popen([sys.executable, "-m", "qa", "ingest", str(folder)], cwd=ROOT,
                                           stdout=out, stderr=subprocess.STDOUT,
                                           env={**_env(), "QA_DATA_DIR": str(seeded_copy)})
            page.locator("#qa-articles").get_by_text("Quimby pier reopens").wait_for(timeout=600_000)
            shown = time.time()
            assert process.wait(timeout=600) == 0, log.read_text()
            changed = (seeded_copy / "keyword" / "meta.json").stat().st_mtime
            assert shown - changed < 5.0, "the library shows the change within 5 s"
            assert "6 articles" in page.inner_text("#qa-library-summary")
            browser.close()
    finally:
        app.close()
    found = pipeline.retrieve(question)
    assert found[0].article_id == "pier.md", "questions after the change search the new passages"
    assert pipeline.retriever is not None
    dense = pipeline.retriever.retrieve(question, [], 3, mode="dense").passages
    assert dense[0].article_id == "pier.md", "dense search too, though another process wrote them"
