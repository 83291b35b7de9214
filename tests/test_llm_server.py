"""The OpenAI-compatible LLM client, against httpx's MockTransport (the real server: test_servers.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from qa.answer import Answer, Retrieved
from qa.config import Settings
from qa.errors import ConfigError, ServerError
from qa.ingest import ingest
from qa.llm import OpenAICompatibleLLM
from qa.pipeline import REFUSAL, Pipeline
from qa.store import ChromaStore

from .fakes import FakeEmbedder

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
TURNOUT = "What participation rate did the massive voter turnout of registered Bolivians reach?"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Turnout?"}]


def sse(*pieces: str, done: bool = True, finish: bool = True) -> bytes:
    """The body of a streamed chat completion that says ``pieces``."""
    events = [{"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}]
    events += [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    if finish:
        events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = "".join(f"data: {json.dumps(e)}\r\n\r\n" for e in events)
    return (body + ("data: [DONE]\r\n\r\n" if done else "")).encode()


def server(chat: Callable[[httpx.Request], httpx.Response], models: list[str] | None = None,
           seen: list[httpx.Request] | None = None) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"object": "list", "data": [{"id": m} for m in models or []]})
        assert request.url.path == "/v1/chat/completions"
        return chat(request)
    return httpx.MockTransport(handle)


def streamed(body: bytes) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def test_streams_the_pieces_and_sends_the_request_openai_servers_expect() -> None:
    seen: list[httpx.Request] = []
    llm = OpenAICompatibleLLM("http://gpu-box:8000/v1", api_key="sekret",
                              transport=server(streamed(sse("Turnout ", "was 88.4% [1].")), ["qwen-1.5b"], seen))
    pieces = list(llm.stream_chat(MESSAGES, max_tokens=50, temperature=0.1, stop=["\nQuestion:"]))
    assert pieces == ["Turnout ", "was 88.4% [1]."]
    chat = json.loads(seen[-1].content)
    assert chat == {"model": "qwen-1.5b", "messages": MESSAGES, "max_tokens": 50, "temperature": 0.1,
                    "stream": True, "stop": ["\nQuestion:"]}
    assert seen[-1].headers["authorization"] == "Bearer sekret"
    assert llm.name == "qwen-1.5b at http://gpu-box:8000/v1"


def test_a_schema_is_sent_as_the_response_format() -> None:
    seen: list[httpx.Request] = []
    llm = OpenAICompatibleLLM("http://x/v1", model="m", transport=server(streamed(sse('{"found": false}')), seen=seen))
    schema = {"type": "object", "properties": {"found": {"type": "boolean"}}}
    assert "".join(llm.stream_chat(MESSAGES, max_tokens=5, temperature=0, schema=schema)) == '{"found": false}'
    assert json.loads(seen[0].content)["response_format"] == {"type": "json_object", "schema": schema}


def test_a_named_model_is_used_without_asking_the_server() -> None:
    seen: list[httpx.Request] = []
    llm = OpenAICompatibleLLM("http://x/v1", model="mine", transport=server(streamed(sse("ok")), seen=seen))
    assert list(llm.stream_chat(MESSAGES, max_tokens=5, temperature=0)) == ["ok"]
    assert [r.url.path for r in seen] == ["/v1/chat/completions"]
    assert json.loads(seen[0].content)["model"] == "mine" and "authorization" not in seen[0].headers


@pytest.mark.parametrize("body, message", [
    (sse("Turnout ", done=False, finish=False), "ended its reply in the middle of an answer"),
    (sse("Turnout ", done=False, finish=False) + b'data: {"error": {"message": "out of memory"}}\n\n',
     r"failed in the middle of an answer \(out of memory\)"),
    (b"data: <html>\n\n", "not a chat-completion event"),
])
def test_a_reply_that_breaks_off_is_an_error_with_a_message(body: bytes, message: str) -> None:
    llm = OpenAICompatibleLLM("http://x/v1", model="m", transport=server(streamed(body)))
    with pytest.raises(ServerError, match=message):
        list(llm.stream_chat(MESSAGES, max_tokens=5, temperature=0))


def test_a_reply_without_done_but_finished_is_accepted() -> None:
    llm = OpenAICompatibleLLM("http://x/v1", model="m", transport=server(streamed(sse("fine", done=False))))
    assert list(llm.stream_chat(MESSAGES, max_tokens=5, temperature=0)) == ["fine"]


@pytest.mark.parametrize("status, body, message", [
    (500, {"error": {"message": "model crashed"}}, r"HTTP 500 \(model crashed\)"),
    (404, {"detail": "Not Found"}, r"HTTP 404 \(Not Found\)"),
    (401, {"error": {"message": "bad key"}}, "Set QA_LLM_KEY"),
])
def test_http_errors_name_the_server_and_the_fix(status: int, body: dict, message: str) -> None:  # type: ignore[type-arg]
    llm = OpenAICompatibleLLM("http://x/v1", model="m",
                              transport=server(lambda request: httpx.Response(status, json=body)))
    with pytest.raises(ServerError, match=message):
        list(llm.stream_chat(MESSAGES, max_tokens=5, temperature=0))


def test_dropped_connection_mid_answer_is_an_error() -> None:
    class Breaks(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield sse("Turnout ", done=False, finish=False)
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    llm = OpenAICompatibleLLM("http://x/v1", model="m",
                              transport=server(lambda request: httpx.Response(200, stream=Breaks())))
    got = []
    with pytest.raises(ServerError, match="failed in the middle of an answer.*peer closed"):
        for piece in llm.stream_chat(MESSAGES, max_tokens=5, temperature=0):
            got.append(piece)
    assert got == ["Turnout "]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_server_says_how_to_start_it() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    llm = OpenAICompatibleLLM(url)
    with pytest.raises(ServerError, match=f"Could not reach the LLM server at {url}.*llama_cpp.server.*QA_LLM_URL"):
        llm.load()
    llm = OpenAICompatibleLLM(url, model="named")
    with pytest.raises(ServerError, match="Could not reach the LLM server"):
        list(llm.stream_chat(MESSAGES, max_tokens=5, temperature=0))


def test_server_urls_are_checked_and_completed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_LLM_URL", "http://gpu-box:8000")
    monkeypatch.setenv("QA_CHROMA_URL", "http://db:8000/")
    monkeypatch.setenv("QA_LLM_KEY", "sekret")
    settings = Settings()
    assert (settings.llm_url, settings.chroma_url) == ("http://gpu-box:8000/v1", "http://db:8000")
    assert "sekret" not in repr(settings)
    monkeypatch.setenv("QA_CHROMA_URL", "db:8000")
    with pytest.raises(ConfigError, match="QA_CHROMA_URL must look like http://HOST:PORT"):
        Settings()


def test_thread_counts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_THREADS", "3")
    monkeypatch.setenv("QA_BATCH_THREADS", "5")
    assert (Settings().threads, Settings().batch_threads) == (3, 5)
    monkeypatch.delenv("QA_THREADS")
    assert Settings().threads >= 1
    monkeypatch.setenv("QA_THREADS", "two")
    with pytest.raises(ConfigError, match="QA_THREADS must be a whole number of at least 1, not 'two'"):
        Settings()


def test_the_pipeline_behaves_the_same_over_a_server(tmp_path: Path) -> None:
    """Streaming, the NOT FOUND refusal and the citation check live in the pipeline, whatever the LLM."""
    embedder = FakeEmbedder()
    settings = Settings(data_dir=tmp_path / "data")
    store = ChromaStore(settings.chroma_dir, embedder_name=embedder.name)
    ingest(SEEDS, store, embedder, settings.data_dir)
    replies: list[bytes] = []
    llm = OpenAICompatibleLLM("http://x/v1", model="m", transport=server(lambda r: httpx.Response(
        200, content=replies.pop(0), headers={"content-type": "text/event-stream"})))
    pipeline = Pipeline(store, embedder, llm, settings)

    n = next(i for i, p in enumerate(pipeline.retrieve(TURNOUT), 1) if "88.4" in p.text)
    replies.append(sse("Turnout was ", "88.4 percent [", f"{n}]. It was a record [", "9]."))
    # the support judge (qa.judge) asks the same server: for log-probabilities, which this one does not
    # give, then for a sampled verdict
    replies.append(b'{"choices": [{"message": {"content": "yes"}}]}')
    replies.append(sse("yes"))
    items = list(pipeline.ask_stream(TURNOUT))
    answer = items[-1]
    assert isinstance(answer, Answer) and answer.answered and not replies
    text = "".join(i for i in items[:-1] if isinstance(i, str))
    assert len(items) > 3 and "[9]" not in text, "streamed piece by piece; the invalid marker never shown"
    assert [c.number for c in answer.citations] == [n] and "88.4" in answer.citations[0].quote

    replies.append(sse("NOT ", "FOUND"))
    items = list(pipeline.ask_stream("Who won Bolivia's 2025 election?"))
    assert isinstance(items[0], Retrieved) and items[1] == REFUSAL
    assert isinstance(items[-1], Answer) and not items[-1].answered
