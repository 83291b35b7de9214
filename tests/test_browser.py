"""The chat page in a real browser: Debian's Chromium, headless, driven by Playwright.

Two servers over a copy of the seeded index plus one hostile article: one
answers with the small SmolLM2 model (structure is asserted, not wording),
the other with a scripted model that is slow on demand (for stop, the queue
and the passages shown while the model reads them) and echoes the hostile article's markup (to see it shown as text).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from qa.config import Settings
from qa.library import Library
from qa.llm import Message
from qa.pipeline import Pipeline

from .test_web import free_port

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
HOSTILE = """---
title: <script>window.__pwned = 1</script>Zorblax <img src=x onerror="window.__pwned = 2">
outlet: <a href="javascript:window.__pwned = 3">Quimby Herald</a>
---
Organisers said <script>window.__pwned = 4</script> the Zorblax festival in Quimby drew 12,345 visitors \
<img src=x onerror="window.__pwned = 5"> this year; see [the programme](javascript:window.__pwned = 6) and \
<a href="javascript:window.__pwned = 7">tickets</a>.
"""
ZORBLAX_Q = "How many visitors did the Zorblax festival in Quimby draw?"
SLOW_Q = "Tell me slowly about the election"
PAUSED_Q = "After a pause: how many visitors did the Zorblax festival in Quimby draw?"


class ScriptedLLM:
    """Echoes the hostile passage's sentence (citing it); answers slowly when asked to."""

    name = "scripted"

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                    stop: Sequence[str] = (), schema: dict[str, Any] | None = None) -> Iterator[str]:
        prompt = messages[-1]["content"]
        if SLOW_Q in prompt:
            for _ in range(150):
                time.sleep(0.1)
                yield "The election was held in October. "
            return
        if PAUSED_Q in prompt:
            time.sleep(3)  # a slow prompt evaluation: the passages found are on the page meanwhile
        numbers = re.findall(r"^\[(\d+)\] \(.*?\) (.*)$", prompt, re.MULTILINE)
        cited = next((n for n, text in numbers if "Zorblax" in text), "1")
        reply = (f"Organisers said <script>window.__pwned = 4</script> the Zorblax festival drew 12,345 visitors "
                 f"[{cited}].")
        for i in range(0, len(reply), 4):
            yield reply[i:i + 4]


def _serve(pipeline: Pipeline) -> tuple[str, Any]:
    from qa.web import build_app, launch_options

    app = build_app(lambda: pipeline)
    port = free_port()
    app.launch(server_port=port, prevent_thread_lock=True, **launch_options("127.0.0.1", ""))
    return f"http://127.0.0.1:{port}/", app


@pytest.fixture(scope="module")
def data(seeded_dir: Path, embedder, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from qa.store import ChromaStore

    root = tmp_path_factory.mktemp("browser")
    shutil.copytree(seeded_dir, root / "data")
    (root / "models").mkdir()
    hostile = root / "hostile.md"
    hostile.write_text(HOSTILE)
    store = ChromaStore(root / "data" / "chroma", embedder_name=embedder.name)
    Library(store, embedder, root / "data").add_upload(hostile, "hostile.md")
    return root


def _pipeline(root: Path, embedder, llm) -> Pipeline:  # type: ignore[no-untyped-def]
    from qa.store import ChromaStore

    settings = Settings(data_dir=root / "data", models_dir=root / "models")
    return Pipeline(ChromaStore(settings.chroma_dir, embedder_name=embedder.name), embedder, llm, settings)


@pytest.fixture(scope="module")
def smollm_url(data: Path, embedder, smollm, smollm_path: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    (data / "models" / "second.gguf").symlink_to(smollm_path)
    url, app = _serve(_pipeline(data, embedder, smollm))
    yield url
    app.close()


@pytest.fixture(scope="module")
def scripted_url(data: Path, embedder) -> Iterator[str]:  # type: ignore[no-untyped-def]
    url, app = _serve(_pipeline(data, embedder, ScriptedLLM()))
    yield url
    app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM.is_file(), "Chromium is missing: `bash scripts/test` installs it (apt-get install chromium)"
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield browser
        browser.close()


def _open(browser: Any, url: str) -> Any:
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_selector("#qa-library-summary :text('indexed')")
    return page


def _ask(page: Any, question: str) -> None:
    page.fill("#qa-question textarea", question)
    page.keyboard.press("Enter")


def _answers(page: Any) -> Any:
    return page.locator(".qa-how")


WATCH_STREAM = """() => {
    window.__states = [];
    new MutationObserver(() => {
        const bot = document.querySelectorAll('#qa-chat .bot');
        if (bot.length) window.__states.push(bot[bot.length - 1].innerText);
    }).observe(document.querySelector('#qa-chat'), {subtree: true, childList: true, characterData: true});
}"""


def test_a_question_streams_an_answer_with_its_sources(browser: Any, smollm_url: str, tmp_path: Path) -> None:
    page = _open(browser, smollm_url)
    assert "6 articles" in page.inner_text("#qa-library-summary")
    page.evaluate(WATCH_STREAM)
    _ask(page, "Who led the coup regime?")
    _answers(page).first.wait_for(timeout=120_000)
    streamed = {s for s in page.evaluate("window.__states") if "▍" in s and "Searching" not in s}

    sources = page.locator("#qa-chat .qa-source")
    if sources.count():
        assert len(streamed) >= 2, "the answer appeared piece by piece"
        head = sources.first.locator(".qa-source-head").inner_text()
        assert re.match(r"\[\d+\] \S", head) and sources.first.locator(".qa-context mark").inner_text().strip()
        sources.first.locator("summary").click()
        assert sources.first.locator(".qa-passage mark").is_visible()
        assert page.locator("#qa-chat .qa-answer .qa-ref").count() >= 1
    else:
        assert page.locator("#qa-chat .qa-refusal").is_visible()
    _answers(page).first.locator("summary").click()
    how = _answers(page).first.inner_text()
    k = Settings().top_k
    assert re.search(rf"Searched all 6 articles for the {k} closest passages in \d+\.\d\d s", how), how
    page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)
    assert (tmp_path / "answer.png").stat().st_size > 20_000

    page.reload()
    page.wait_for_selector("#qa-chat .qa-how")
    assert "Who led the coup regime?" in page.inner_text("#qa-chat"), "the conversation survives a reload"

    page.get_by_role("tab", name="Settings").click()
    page.locator("#qa-model input").click()
    page.get_by_role("option", name="second.gguf").click()
    page.locator("#qa-top-k input[type=number]").fill("2")
    page.locator("#qa-top-k input[type=number]").press("Enter")
    page.wait_for_selector("text=second.gguf is loaded", timeout=60_000)
    _ask(page, "And who opposed it?")
    _answers(page).nth(1).wait_for(timeout=120_000)
    _answers(page).nth(1).locator("summary").click()
    how = _answers(page).nth(1).inner_text()
    assert "the 2 closest passages" in how
    assert "Model: second.gguf" in how or "model was not asked" in how

    other = _open(browser, smollm_url)  # another user keeps the defaults
    other.get_by_role("tab", name="Settings").click()
    assert other.locator("#qa-top-k input[type=number]").input_value() == str(Settings().top_k)
    assert other.locator("#qa-chat .qa-how").count() == 0, "conversations are per browser"

    page.get_by_role("button", name="New conversation").click()
    page.wait_for_function("document.querySelectorAll('#qa-chat .qa-how').length === 0")
    page.reload()
    page.wait_for_selector("#qa-articles label")
    time.sleep(1)
    assert page.locator("#qa-chat .qa-how").count() == 0
    assert page.dialogs == [] and other.dialogs == []


def test_hostile_markup_in_articles_and_answers_is_shown_as_text(browser: Any, scripted_url: str,
                                                                  tmp_path: Path) -> None:
    page = _open(browser, scripted_url)
    assert '<script>window.__pwned = 1</script>Zorblax <img src=x onerror="window.__pwned = 2">' in \
        page.inner_text("#qa-articles")
    _ask(page, ZORBLAX_Q)
    _answers(page).first.wait_for(timeout=60_000)
    answer = page.inner_text("#qa-chat .qa-answer")
    assert "Organisers said <script>window.__pwned = 4</script> the Zorblax festival drew 12,345 visitors" in answer
    source = page.locator("#qa-chat .qa-source").first
    assert '<script>window.__pwned = 1</script>Zorblax <img src=x onerror="window.__pwned = 2">' in \
        source.locator(".qa-source-head").inner_text()
    assert '<a href="javascript:window.__pwned = 3">Quimby Herald</a>' in source.inner_text()
    source.locator("summary").click()
    passage = source.locator(".qa-passage").inner_text()
    assert '<img src=x onerror="window.__pwned = 5">' in passage
    assert "[the programme](javascript:window.__pwned = 6)" in passage
    assert '<a href="javascript:window.__pwned = 7">tickets</a>' in passage
    page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)

    assert page.evaluate("typeof window.__pwned") == "undefined", "no script from the article ran"
    injected = page.evaluate("""() => document.querySelectorAll(
        '#qa-chat script, #qa-chat img, #qa-chat a, #qa-articles script, #qa-articles img, #qa-articles a,'
        + ' a[href^="javascript"]').length""")
    assert injected == 0 and page.dialogs == []

    page.get_by_role("button", name="New conversation").click()
    page.wait_for_function("document.querySelectorAll('#qa-chat .qa-how').length === 0")
    _ask(page, "What is the boiling point of tungsten?")
    _answers(page).first.wait_for(timeout=60_000)
    assert page.locator("#qa-chat .qa-refusal").count() == 1, "a refusal says so plainly"
    assert page.locator("#qa-chat .qa-source").count() == 0, "and shows no sources"


def test_examples_and_the_choice_of_articles(browser: Any, scripted_url: str) -> None:
    page = _open(browser, scripted_url)
    page.locator("#qa-chat").get_by_text("Who led the coup regime?").click()
    _answers(page).first.wait_for(timeout=60_000)
    assert "Who led the coup regime?" in page.inner_text("#qa-chat .user")

    page.locator("#qa-articles .select-all-checkbox").click()  # untick every article
    _ask(page, ZORBLAX_Q)
    page.wait_for_selector("#qa-chat .qa-error:has-text('No article is chosen')")

    page.locator("#qa-articles label").filter(has_text="Zorblax").click()
    _ask(page, ZORBLAX_Q)
    _answers(page).nth(1).wait_for(timeout=60_000)
    _answers(page).nth(1).locator("summary").click()
    assert "Searched 1 of 6 articles" in _answers(page).nth(1).inner_text()


def test_a_period_applies_to_the_questions_asked(browser: Any, scripted_url: str) -> None:
    page = _open(browser, scripted_url)
    assert "no date" in page.inner_text("#qa-articles")  # the seeds carry no date
    page.fill("#qa-since input", "2030-01-01")
    _ask(page, ZORBLAX_Q)
    refusal = page.locator("#qa-chat .qa-refusal:has-text('No article is dated 2030-01-01 or later')")
    refusal.wait_for(timeout=60_000)
    assert "6 articles have no date and were left out." in page.inner_text("#qa-chat .bot")
    _answers(page).first.locator("summary").click()
    assert "Searched all 6 articles dated 2030-01-01 or later" in _answers(page).first.inner_text()

    page.fill("#qa-since input", "")
    page.fill("#qa-until input", "1 March")
    _ask(page, ZORBLAX_Q)
    page.wait_for_selector("#qa-chat .qa-error:has-text('is not a date written as YYYY-MM-DD')")

    page.fill("#qa-until input", "")
    _ask(page, ZORBLAX_Q)
    _answers(page).nth(1).wait_for(timeout=60_000)
    assert page.locator("#qa-chat .qa-source").count() == 1, "no period: the answer has its source"
    assert "left out" not in page.locator("#qa-chat .bot").last.inner_text()


def test_stop_queue_and_upload(browser: Any, scripted_url: str, tmp_path: Path) -> None:
    first, second = _open(browser, scripted_url), _open(browser, scripted_url)
    _ask(first, SLOW_Q)
    first.wait_for_selector("#qa-chat .qa-answer:has-text('The election was held')")

    _ask(second, ZORBLAX_Q)
    second.wait_for_selector("#qa-chat :text('Waiting for the model')")
    second.wait_for_selector("text=/queue: 1\\/1/", timeout=10_000)
    second.screenshot(path=str(tmp_path / "queued.png"))

    first.get_by_role("button", name="Stop").click()
    first.wait_for_selector("#qa-chat :text('(stopped)')")
    first.get_by_role("button", name="Ask").wait_for()
    _answers(second).first.wait_for(timeout=30_000)
    assert second.locator("#qa-chat .qa-source").count() == 1

    _ask(first, ZORBLAX_Q)  # the model is free again after a stop
    _answers(first).first.wait_for(timeout=30_000)

    bad = tmp_path / "notes.pdf"
    bad.write_text("plain text in disguise")
    good = tmp_path / "Quimby mayor.txt"
    good.write_text("Quimby mayor re-elected\n\nAda Fernsby was re-elected mayor of Quimby with 61% of the vote.\n")
    first.locator("#qa-upload input[type=file]").set_input_files([str(bad), str(good)])
    status = first.locator("#qa-library-status")
    status.locator("text=Added").wait_for(timeout=60_000)
    text = status.inner_text()
    assert "notes.pdf is named .pdf but is not a PDF file" in text and "Nothing was changed" in text
    assert "Added Quimby mayor re-elected (1 passage) as uploads/Quimby_mayor.txt" in text
    assert "Quimby mayor re-elected — no date · 1 passage" in first.inner_text("#qa-articles")
    assert "7 articles" in first.inner_text("#qa-library-summary")

    first.locator("text=Remove an article").click()
    first.locator("#qa-remove-choice input").click()
    first.get_by_role("option", name=re.compile("Quimby mayor re-elected")).click()
    first.get_by_role("button", name="Remove from the index").click()
    status.locator("text=Removed").wait_for(timeout=30_000)
    assert "6 articles" in first.inner_text("#qa-library-summary")


def test_the_passages_being_read_show_before_the_answer_and_give_way_to_its_sources(browser: Any,
                                                                                     scripted_url: str) -> None:
    page = _open(browser, scripted_url)
    page.evaluate(WATCH_STREAM)
    _ask(page, PAUSED_Q)
    reading = page.locator("#qa-chat .qa-reading")
    reading.wait_for(timeout=30_000)
    # the answer says "the Zorblax festival drew", its passage "the Zorblax festival in Quimby drew"
    assert "festival drew" not in page.inner_text("#qa-chat .bot"), "the passages come before the first word"
    shown = reading.inner_text()
    assert re.search(r"Reading \d passages?", shown, re.IGNORECASE) and "[1] " in shown
    assert "12,345 visitors" in shown and "Zorblax" in shown, "titles and each passage's best sentence"

    _answers(page).first.wait_for(timeout=60_000)
    assert page.locator("#qa-chat .qa-reading").count() == 0, "replaced by the cited sources"
    assert page.locator("#qa-chat .qa-source").count() >= 1
    states = page.evaluate("window.__states")
    first_read = next(i for i, s in enumerate(states) if re.search(r"Reading \d passage", s, re.IGNORECASE))
    first_word = next(i for i, s in enumerate(states) if "festival drew" in s)
    assert first_read < first_word
    _answers(page).first.locator("summary").click()
    assert re.search(r"Where the time went: embedding \d+\.\d\d s, search \d+\.\d\d s, prompt evaluation "
                     r"[3-9]\.\d\d s", _answers(page).first.inner_text()), "the model's pause is prompt evaluation"
