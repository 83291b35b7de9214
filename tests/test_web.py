"""The chat page: rendering and settings (fast), and a real Gradio server called through gradio_client (slow)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qa.answer import Answer, Citation, Verdict
from qa.checks import REFUSERS
from qa.config import Settings
from qa.errors import ModelNotFoundError, QAError
from qa.loading import ModelLoader
from qa.pipeline import REFUSAL, Pipeline
from qa.web import (
    ChatPage,
    _llms,
    history_of,
    launch_options,
    model_choices,
    render_answer,
    render_chat,
    session_pipeline,
)

from .fakes import FakeEmbedder, FakeLLM, SlowLoadingLLM
from .test_prompt_and_pipeline import TURNOUT

ROOT = Path(__file__).resolve().parent.parent
EVIL = '<script>alert(1)</script> <img src=x onerror="alert(2)"> [x](javascript:alert(3))\n\n<b>bold</b>'


def _citation(**kw: Any) -> Citation:
    values: dict[str, Any] = {"number": 1, "article": "Title", "source": "a.txt", "chunk_id": "c1",
                              "quote": "Turnout was 88.4%.", "outlet": "Outlet",
                              "passage": "Before. Turnout was 88.4%. After."}
    return Citation(**{**values, **kw})


def test_sources_show_title_outlet_and_the_quote_highlighted_in_its_passage() -> None:
    answer = Answer("Turnout was 88.4% [1].", True, [_citation()], "Q?",
                    timings={"retrieval_s": 0.05, "first_token_s": 0.5, "total_s": 1.5, "tokens": 21.0})
    shown = render_answer(answer)
    assert '<span class="qa-ref">[1]</span>' in shown
    assert "[1] Title" in shown and "Outlet — a.txt" in shown
    assert "Before. <mark>Turnout was 88.4%.</mark> After." in shown
    assert "Read the whole passage" in shown
    assert "How this answer was made" in shown and "0.05 s" in shown and "21 tokens at 21.0 tokens/s" in shown


def test_sources_show_the_articles_date_and_the_answer_its_note() -> None:
    answer = Answer("Turnout was 88.4% [1].", True, [_citation(date="2024-03-14")], "Q?", undated=3)
    shown = render_answer(answer)
    assert "Outlet, 2024-03-14 — a.txt" in shown
    assert '<div class="qa-note">3 articles have no date and were left out.</div>' in shown
    assert "no date" not in render_answer(Answer("Turnout was 88.4% [1].", True, [_citation()], "Q?"))
    refused = render_answer(Answer("No article is dated 2030-01-01 or later, so there is nothing to answer from.",
                                   False, [], "Q?", undated=1))
    assert "qa-refusal" in refused and "1 article has no date and was left out." in refused


def test_a_second_reading_is_told_in_the_how_detail() -> None:
    timings = {"retrieval_s": 0.05, "first_token_s": 0.5, "total_s": 1.5, "tokens": 21.0}
    assert "read on" not in render_answer(Answer("Turnout was 88.4% [1].", True, [_citation()], "Q?",
                                                          timings={**timings, "readings": 1.0}))
    assert "read on" in render_answer(Answer("Turnout was 88.4% [1].", True, [_citation()], "Q?",
                                                      timings={**timings, "readings": 2.0}))


def test_the_checks_and_the_judges_score_are_told_in_the_how_detail() -> None:
    timings = {"retrieval_s": 0.05, "first_token_s": 0.5, "total_s": 1.5, "tokens": 21.0}
    answer = Answer("Turnout was 88.4% [1].", True, [_citation()], "Q?", timings=timings)
    assert "support judge" not in render_answer(answer)
    answer.timings = {**timings, "checks_s": 0.5}
    answer.checks = [Verdict("kind", True), Verdict("judge", True, "", 0.87)]
    shown = render_answer(answer)
    assert "Checked against its quotes in 0.50 s; the support judge, shown only the quoted sentences, scored " \
           "them 0.87" in shown
    assert "21 tokens at 42.0 tokens/s" in shown, "the checks' time is not generation time"


def test_a_refusal_says_so_names_the_check_and_shows_no_sources() -> None:
    shown = render_answer(Answer(REFUSAL, False, [], "Q?", timings={"retrieval_s": 0.01, "first_token_s": 0.01,
                                                                      "total_s": 0.01},
                                 refused_by="retrieval", reason="no passage was found"))
    assert REFUSAL in shown and "qa-refusal" in shown and "qa-source" not in shown
    assert "the model was not asked" in shown and "Refused by the retrieval check: no passage was found." in shown
    refused = Answer(REFUSAL, False, [], "Q?", timings={"retrieval_s": 0.01, "first_token_s": 1.0, "total_s": 2.0,
                                                        "tokens": 9.0, "checks_s": 0.4},
                     refused_by="judge", checks=[Verdict("judge", False, "", 0.0996)],
                     reason="the quoted sentences do not state this answer (support 0.0996 < 0.1000)")
    shown = render_answer(refused)
    assert "Refused by the judge check: the quoted sentences do not state this answer (support 0.0996 &lt; 0.1000)." \
        in shown
    assert "scored them" not in shown, "one score shown, the reason's, not another rounded to the threshold"


def test_the_how_detail_tells_where_each_second_went() -> None:
    timings = {"retrieval_s": 0.3, "first_token_s": 1.5, "total_s": 4.0, "tokens": 21.0, "rewrite_s": 0.2,
               "embed_s": 0.04, "search_s": 0.06, "prompt_s": 1.1, "generate_s": 2.0, "checks_s": 0.5,
               "second_reading_s": 1.2}
    shown = render_answer(Answer("Turnout was 88.4% [1].", True, [_citation()], "Q?", timings=timings))
    assert ("Where the time went: question rewrite 0.20 s, embedding 0.04 s, search 0.06 s, prompt evaluation "
            "1.10 s, generation 2.00 s, checks 0.50 s (of which the second reading 1.20 s); 4.00 s in all.") in shown
    old = render_answer(Answer("Turnout was 88.4% [1].", True, [_citation()], "Q?",
                               timings={"retrieval_s": 0.3, "first_token_s": 1.5, "total_s": 4.0}))
    assert "Where the time went" not in old, "an answer kept from before the breakdown shows none"


def _reading_turn(text: str = "") -> dict[str, Any]:
    return {"q": "Q?", "status": "streaming", "text": text,
            "reading": [{"number": 1, "title": f"Ferry {EVIL}", "outlet": "Gazette", "sentence": "It sailed at 9."},
                        {"number": 2, "title": "Harbour", "outlet": "", "sentence": "The quay was rebuilt."}]}


def test_the_passages_being_read_show_until_the_sources_replace_them() -> None:
    searching = render_chat([{"q": "Q?", "status": "streaming", "text": ""}])[1]["content"]
    assert "Searching the articles" in searching and "qa-reading" not in searching
    reading = render_chat([_reading_turn()])[1]["content"]
    assert "Reading 2 passages" in reading and "Reading the passages…" in reading
    assert "[1] Ferry &lt;script&gt;" in reading and "It sailed at 9." in reading and "The quay was rebuilt." in reading
    assert "<script" not in reading and "\n" not in reading
    streaming = render_chat([_reading_turn("It sailed")])[1]["content"]
    assert streaming.index("It sailed ▍") < streaming.index("qa-reading"), "the text above, the passages below"
    done = render_answer(Answer("It sailed at 9 [1].", True, [_citation()], "Q?"))
    assert "qa-reading" not in done and "qa-sources" in done


def test_a_question_asked_while_the_model_loads_waits_for_it(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline("Turnout was 88.4 percent [1].")
    pipeline.llm = SlowLoadingLLM("Turnout was 88.4 percent [1].")
    loading = ModelLoader(pipeline)
    loading.start()
    page = ChatPage(lambda: pipeline, loading)
    steps = page.answer([{"q": TURNOUT, "status": "waiting", "text": ""}], None, None, None, None)
    chat, turns = next(steps)
    assert turns[-1]["status"] == "loading" and "finish loading" in chat[-1]["content"]
    assert not loading.ready and not pipeline.llm.loaded
    pipeline.llm.gate.set()
    states = [turns[-1] for _, turns in steps]
    assert pipeline.llm.loaded and states[-1]["status"] == "done" and states[-1]["answered"]
    assert any(s.get("reading") and not s["text"] for s in states), "the passages read show before the text"


def test_a_model_that_cannot_load_is_told_to_whoever_asks(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline("never")
    pipeline.llm = SlowLoadingLLM("never", failure=ModelNotFoundError("No model file at /x.gguf."))
    pipeline.llm.gate.set()
    loading = ModelLoader(pipeline)
    loading.start().join()
    assert loading.ready and loading.error == "No model file at /x.gguf."
    page = ChatPage(lambda: pipeline, loading)
    *_, (chat, turns) = page.answer([{"q": TURNOUT, "status": "waiting", "text": ""}], None, None, None, None)
    assert turns[-1]["status"] == "error" and "No model file at /x.gguf. Fix this and restart" in turns[-1]["text"]
    assert page.ask_api(TURNOUT)["error"].startswith("No model file")


def test_article_text_and_model_output_are_escaped_and_kept_on_one_line() -> None:
    citation = _citation(article=EVIL, outlet=EVIL, source=EVIL, quote=EVIL, passage=f"Intro {EVIL} outro")
    shown = render_answer(Answer(f"{EVIL} [1]", True, [citation], "Q?"))
    assert "<script" not in shown and "<img" not in shown and "<b>" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "onerror=&quot;alert(2)&quot;" in shown
    assert "\n" not in shown, "no blank line, so Markdown never parses inside the message"
    messages = render_chat([{"q": EVIL, "status": "done", "text": EVIL, "answered": False}])
    assert all("<script" not in m["content"] and "\n" not in m["content"] for m in messages)


def test_restored_turns_are_rendered_whatever_they_hold() -> None:
    turns: list[Any] = ["junk", {"q": "Q", "status": "streaming", "text": "par"}, {"status": "done", "citations": [1]},
                       {"q": "Q2", "status": "error", "text": "<b>no</b>"}]
    messages = render_chat(turns)
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert "par" in messages[1]["content"] and "&lt;b&gt;no" in messages[5]["content"]


def test_history_holds_only_finished_turns() -> None:
    turns = [{"q": "A?", "status": "done", "text": "a [1]."}, {"q": "B?", "status": "stopped", "text": "b"},
             {"q": "C?", "status": "error", "text": "oops"}]
    assert history_of(turns) == [{"role": "user", "content": "A?"}, {"role": "assistant", "content": "a [1]."}]


def test_session_settings_copy_the_pipeline_and_share_each_model(tmp_path: Path, smollm_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "other.gguf").symlink_to(smollm_path)
    (models / "notes.txt").write_text("not a model")
    base = Pipeline(None, FakeEmbedder(), FakeLLM(), Settings(data_dir=tmp_path, models_dir=models))  # type: ignore[arg-type]
    assert list(model_choices(base)) == [base.settings.model.name, "other.gguf"]

    mine = session_pipeline(base, "other.gguf", 30, -1.0)
    assert (mine.settings.top_k, mine.settings.temperature) == (12, 0.0)
    assert (base.settings.top_k, base.settings.temperature) == (Settings().top_k, 0.1), "the base is untouched"
    assert mine.store is base.store and mine.llm is not base.llm
    assert session_pipeline(base, "other.gguf", 3, 0.5).llm is mine.llm, "each model is created once"
    assert session_pipeline(base, None, None, None).llm is base.llm
    with pytest.raises(QAError, match="no longer in"):
        session_pipeline(base, "gone.gguf", 4, 0.1)
    _llms.clear()


def test_listening_beyond_this_machine_needs_a_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QA_AUTH", raising=False)
    assert launch_options("127.0.0.1", None)["auth"] is None
    with pytest.raises(QAError, match="--auth USER:PASSWORD"):
        launch_options("0.0.0.0", None)
    assert launch_options("0.0.0.0", "ana:pw")["auth"] == ("ana", "pw")
    monkeypatch.setenv("QA_AUTH", "bob:secret")
    options = launch_options("0.0.0.0", None)
    assert options["auth"] == ("bob", "secret") and options["share"] is False
    with pytest.raises(QAError, match="USER:PASSWORD"):
        launch_options("127.0.0.1", "no-colon")


def test_qa_serve_on_all_interfaces_without_a_login_is_one_clear_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "QA_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, "-m", "qa", "serve", "--host", "0.0.0.0"], capture_output=True,
                            text=True, timeout=120, env=env, cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--auth USER:PASSWORD" in result.stderr and "QA_AUTH" in result.stderr


# --- a real server, called through gradio_client -----------------------------------------------------

UPLOAD = """---
title: Zorblax festival draws record crowds
outlet: Quimby Herald
---
The Zorblax festival in Quimby drew 12,345 visitors this year, organisers said on Monday.
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(seeded_dir: Path, embedder, smollm,  # type: ignore[no-untyped-def]
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Pipeline]]:
    from qa.store import ChromaStore
    from qa.web import build_app

    root = tmp_path_factory.mktemp("web")
    shutil.copytree(seeded_dir, root / "data")
    # links to the loopback test site are allowed here; the address policy is tested in test_links.py
    settings = Settings(data_dir=root / "data", models_dir=root / "models", allow_private_links=True)
    pipeline = Pipeline(ChromaStore(settings.chroma_dir, embedder_name=embedder.name), embedder, smollm, settings)
    app = build_app(lambda: pipeline)
    port = free_port()
    options = {**launch_options("127.0.0.1", ""), "quiet": True}
    app.launch(server_port=port, prevent_thread_lock=True, **options)
    try:
        yield f"http://127.0.0.1:{port}/", pipeline
    finally:
        app.close()


@pytest.fixture(scope="module")
def client(server):  # type: ignore[no-untyped-def]
    from gradio_client import Client

    return Client(server[0], verbose=False)


def _well_formed(result: dict[str, Any]) -> None:
    refusal = {"refused_by", "reason"} if not result["answered"] else set()
    assert set(result) == {"text", "answered", "citations"} | refusal and result["text"]
    for c in result["citations"]:
        assert {"number", "article", "source", "chunk_id", "quote", "outlet", "passage"} <= set(c)
        assert f"[{c['number']}]" in result["text"] and c["quote"] in c["passage"]
    if not result["answered"]:
        assert result["text"] == REFUSAL and result["citations"] == []


@pytest.mark.slow
def test_ask_a_question_with_a_known_answer(client) -> None:  # type: ignore[no-untyped-def]
    result = client.predict("Who led the coup regime?", [], [], api_name="/ask")
    _well_formed(result)
    if result["answered"]:  # the small test model; the default one is checked by hand
        assert result["citations"]


@pytest.mark.slow
def test_ask_a_follow_up_within_chosen_articles(client) -> None:  # type: ignore[no-untyped-def]
    history = [{"role": "user", "content": "How many seats did the MAS win in the lower house?"},
               {"role": "assistant", "content": "73 of the 130 seats [1]."}]
    result = client.predict("And in the Senate?", history, ["004_b78515448f06fa10.txt"], api_name="/ask")
    _well_formed(result)
    assert {c["source"] for c in result["citations"]} <= {"004_b78515448f06fa10.txt"}


@pytest.mark.slow
def test_a_question_the_articles_cannot_answer_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    result = client.predict("What is the boiling point of tungsten?", [], [], api_name="/ask")
    assert {k: result[k] for k in ("text", "answered", "citations")} == {"text": REFUSAL, "answered": False,
                                                                          "citations": []}
    assert result["refused_by"] in REFUSERS and result["reason"], "the refusal names its check"


@pytest.mark.slow
def test_an_empty_question_gets_a_message_not_a_crash(client) -> None:  # type: ignore[no-untyped-def]
    result = client.predict("   ", [], [], api_name="/ask")
    assert result["answered"] is False and "empty" in result["text"]


@pytest.mark.slow
def test_ask_within_a_period(client) -> None:  # type: ignore[no-untyped-def]
    # the seeds have no date: a period leaves every one out, and the model is not asked
    result = client.predict("Who led the coup regime?", [], [], "2020-01-01", api_name="/ask")
    assert result["answered"] is False and result["refused_by"] == "retrieval"
    assert result["text"] == "No article is dated 2020-01-01 or later, so there is nothing to answer from."
    assert result["undated"] == 5 and result["note"] == "5 articles have no date and were left out."
    named = client.predict("Who led the coup regime?", [], ["004_b78515448f06fa10.txt"], until="2020-12-31",
                           api_name="/ask")
    assert named["undated"] == 1 and "dated 2020-12-31 or earlier" in named["text"]
    bad = client.predict("Who led the coup regime?", [], [], "2020-01-01", "2019-12-31", api_name="/ask")
    assert bad["answered"] is False and "starts on 2020-01-01, after it ends" in bad["error"]


@pytest.mark.slow
def test_upload_then_ask_about_the_uploaded_article(client, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gradio_client import handle_file

    _, pipeline = server
    bad = tmp_path / "report.pdf"
    bad.write_text("not a pdf at all")
    before = pipeline.store.count()
    summary, chosen, _, status, _ = client.predict([handle_file(str(bad))], [], api_name="/add_articles")
    assert "report.pdf is named .pdf but is not a PDF file" in status and "Nothing was changed" in status
    assert pipeline.store.count() == before

    good = tmp_path / "Zorblax festival.md"
    good.write_text(UPLOAD)
    summary, chosen, _, status, _ = client.predict([handle_file(str(good))], [], api_name="/add_articles")
    assert re.search(r"Added \*\*Zorblax festival draws record crowds\*\* \(1 passage\)", status), status
    assert chosen["value"] == ["uploads/Zorblax_festival.md"] and "6 articles" in summary
    assert (pipeline.settings.data_dir / "uploads" / "Zorblax_festival.md").is_file()

    result = client.predict("How many visitors did the Zorblax festival in Quimby draw?", [],
                            ["uploads/Zorblax_festival.md"], api_name="/ask")
    _well_formed(result)
    assert {c["source"] for c in result["citations"]} <= {"uploads/Zorblax_festival.md"}
    passages = pipeline.retrieve("How many visitors did the Zorblax festival in Quimby draw?")
    assert passages[0].article_id == "uploads/Zorblax_festival.md", "the upload is searched at once"


@pytest.mark.slow
def test_add_a_link_then_ask_about_it(client, server) -> None:  # type: ignore[no-untyped-def]
    from qa.library import Library

    from .test_links import CANONICAL_PATH, NOT_AN_ARTICLE, STORY, Site

    _, pipeline = server
    site = Site()
    url = site.page(CANONICAL_PATH, STORY)
    before = pipeline.store.ids_by_article()
    try:
        summary, chosen, _, status, box = client.predict(site.page("/home", NOT_AN_ARTICLE), [],
                                                         api_name="/add_link")
        assert "does not look like an article" in status and "Nothing was changed" in status
        assert pipeline.store.ids_by_article() == before

        summary, chosen, _, status, box = client.predict(url, [], api_name="/add_link")
        assert re.search(r"Added \*\*Ferry line returns after winter repairs\*\* \(\d+ passages?\) from", status)
        assert chosen["value"] == [url] and box == "" and f"{len(before) + 1} articles" in summary
        summary, chosen, _, status, box = client.predict(url + "?utm_source=feed", [], api_name="/add_link")
        assert status.startswith("Already in the library, unchanged") and len(pipeline.store.ids_by_article()) == \
            len(before) + 1

        result = client.predict("How many timber piles did the engineers replace at the ferry landing?", [],
                                [url], api_name="/ask")
        _well_formed(result)
        assert {c["source"] for c in result["citations"]} <= {url}
        passages = pipeline.retrieve("How many timber piles did the engineers replace at the ferry landing?")
        assert passages[0].article_id == url, "the linked article is searched at once"
    finally:
        site.close()
        if url in pipeline.store.ids_by_article():
            Library(pipeline.store, pipeline.embedder, pipeline.settings.data_dir).remove(url)


@pytest.mark.slow
def test_the_page_is_served_while_the_model_loads(tmp_path: Path, fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    import httpx
    from gradio_client import Client

    from qa.web import build_app

    pipeline, _ = fake_pipeline("Turnout was 88.4 percent [1].")
    pipeline.llm = SlowLoadingLLM("Turnout was 88.4 percent [1].")
    loading = ModelLoader(pipeline)
    app = build_app(lambda: pipeline, loading)
    port = free_port()
    app.launch(server_port=port, prevent_thread_lock=True, **{**launch_options("127.0.0.1", ""), "quiet": True})
    try:
        loading.start()
        url = f"http://127.0.0.1:{port}/"
        assert httpx.get(url, timeout=30).status_code == 200 and not loading.ready, "the page before the model"
        job = Client(url, verbose=False).submit(TURNOUT, [], [], api_name="/ask")
        with pytest.raises(TimeoutError):
            job.result(timeout=2)  # it waits for the model, which cannot be loaded before the gate opens
        pipeline.llm.gate.set()
        result = job.result(timeout=60)
        assert pipeline.llm.loaded and result["answered"] and result["citations"]
    finally:
        pipeline.llm.gate.set()
        app.close()


@pytest.mark.slow
def test_qa_serve_shows_the_page_then_answers_once_the_model_is_loaded(seeded_copy: Path, smollm_path: Path,
                                                                        tmp_path: Path) -> None:
    from gradio_client import Client

    from .servers import stop, wait_for

    port, log = free_port(), tmp_path / "serve.log"
    env = {**os.environ, "QA_DATA_DIR": str(seeded_copy), "QA_MODEL": str(smollm_path),
           "QA_WITHOUT": "judge"}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/", process, log, timeout=180)
        result = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            "Who led the coup regime?", [], [], api_name="/ask")
        _well_formed(result)
        lines = log.read_text()
        assert lines.index("Chat page:") < lines.index("The models are loaded"), lines
    finally:
        stop(process)
