"""A real Gradio server on a free port, called through gradio_client."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.slow


def _text(message: dict) -> str:  # type: ignore[type-arg]
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def client(seeded_pipeline) -> Iterator:  # type: ignore[no-untyped-def]
    from gradio_client import Client

    from qa.web import CSS, build_app

    app = build_app(lambda: seeded_pipeline)
    port = _free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=CSS)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        app.close()


def test_ask_endpoint_returns_the_json_of_qa_ask(client) -> None:  # type: ignore[no-untyped-def]
    result = client.predict("What was the voter turnout in the October 2020 election?", [], [], api_name="/ask")
    assert set(result) == {"text", "answered", "citations"}
    for c in result["citations"]:
        assert {"number", "article", "source", "chunk_id", "quote"} <= set(c)


def test_ask_endpoint_takes_history_and_an_article_filter(client) -> None:  # type: ignore[no-untyped-def]
    history = [{"role": "user", "content": "How many seats did the MAS win in the lower house?"},
               {"role": "assistant", "content": "73 of the 130 seats [1]."}]
    result = client.predict("And in the Senate?", history, ["004_b78515448f06fa10.txt"], api_name="/ask")
    assert {c["source"] for c in result["citations"]} <= {"004_b78515448f06fa10.txt"}


def test_empty_question_gets_a_message_not_a_crash(client) -> None:  # type: ignore[no-untyped-def]
    result = client.predict("   ", [], [], api_name="/ask")
    assert result["answered"] is False and "empty" in result["text"]


def test_chat_streams_and_keeps_the_conversation(client) -> None:  # type: ignore[no-untyped-def]
    # The conversation state lives in the server session, which the client keeps across calls.
    job = client.submit("What was the voter turnout in the October 2020 election?", [], api_name="/chat")
    updates = list(job)
    assert len(updates) >= 3, "the answer arrives in several streamed updates"
    chat, box = updates[-1]
    assert box == ""
    assert [m["role"] for m in chat] == ["user", "assistant"]
    shown = _text(chat[-1])
    if re.search(r"\[\d+\]", shown.split("Sources")[0]):
        assert "Sources" in shown, "an answer with citations shows its sources"
    follow = list(client.submit("And in the Senate?", chat, api_name="/chat"))
    chat2, _ = follow[-1]
    assert [m["role"] for m in chat2] == ["user", "assistant", "user", "assistant"]
