"""Load: many users at once on one chat page, a queue that fills up, and one model shared by all.

The eight-user test runs `qa serve` as a user does (the small SmolLM2 model) and talks to it through
gradio_client from eight threads, each its own session. The queue test uses a real Gradio server in
this process with a model that answers only when the test lets it, so the queue can be filled on purpose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from qa.config import Settings
from qa.llm import LlamaCppLLM, Message
from qa.pipeline import Pipeline
from qa.store import ChromaStore
from qa.web import build_app, launch_options

from .servers import ROOT, free_port, stop, wait_for

# Eight questions on different articles, which the small model answers in different words.
QUESTIONS = [
    "Which former health minister was arrested over a ventilator purchase?",
    "What is the name of Bolivia's nationalized lithium company?",
    "What kind of hat was Pelagio Condori wearing when Arce gave his first press statement?",
    "What was the voter turnout in the October 2020 election?",
    "How many seats did the MAS win in the lower house?",
    "Who is the General Secretary of the Six Federations of the Tropico?",
    "Which Canadian minister justified the coup?",
    "What did Arce promise about the economy?",
]


def _client(url: str) -> Any:
    from gradio_client import Client

    return Client(url, verbose=False)


def _ask(url: str, question: str) -> dict[str, Any]:
    result: dict[str, Any] = _client(url).predict(question, [], [], api_name="/ask")
    return result


@pytest.fixture(scope="module")
def qa_serve(seeded_dir: Path, smollm_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`qa serve` over a copy of the seeds' index, answering with SmolLM2."""
    root = tmp_path_factory.mktemp("serve")
    shutil.copytree(seeded_dir, root / "data")
    port = free_port()
    log = root / "serve.log"
    # Without the model's check of each answer: the 135M model answers NO to nearly every check, which
    # would turn all eight answers into the same refusal, and a mix-up between users would not show.
    env = {**os.environ, "QA_DATA_DIR": str(root / "data"), "QA_MODEL": str(smollm_path),
           "QA_MODELS_DIR": str(root / "models"), "QA_WITHOUT": "judge", "QA_EMBEDDER_BACKEND": "torch"}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(f"http://127.0.0.1:{port}/", process, log, timeout=180)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop(process)


@pytest.mark.slow
def test_eight_users_at_once_each_get_their_own_answer(qa_serve: str) -> None:
    """Each answer given alongside seven others is exactly the answer given alone, and the page stays quick."""
    alone = {q: _ask(qa_serve, q) for q in QUESTIONS}
    assert len({r["text"] for r in alone.values()}) >= 3, "the answers differ, so a mix-up would show"
    # Another question between the two rounds: a prompt identical to the one before it is answered from
    # llama.cpp's cache, whose last token is evaluated alone, with slightly different arithmetic.
    _ask(qa_serve, "Why is the MAS not a traditional political party?")

    slowest = 0.0
    done = threading.Event()

    def watch_page() -> None:
        nonlocal slowest
        while not done.is_set():
            started = time.monotonic()
            assert httpx.get(qa_serve, timeout=30).status_code == 200
            assert httpx.get(f"{qa_serve}gradio_api/info", timeout=30).status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_page)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            together = dict(zip(QUESTIONS, pool.map(lambda q: _ask(qa_serve, q), QUESTIONS), strict=True))
    finally:
        done.set()
        watcher.join()
    for question in QUESTIONS:
        assert together[question] == alone[question], question
    assert slowest < 5.0, f"the page took {slowest:.1f} s to load while eight answers were made"


# --- a full queue --------------------------------------------------------------------------------------------

class GatedLLM:
    """Answers only once the gate opens; tells when a request has reached it."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.reached = threading.Event()

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                    stop: Sequence[str] = (), schema: dict[str, Any] | None = None) -> Iterator[str]:
        self.reached.set()
        assert self.gate.wait(120)
        yield "NOT FOUND"


@pytest.mark.slow
def test_requests_beyond_the_queue_are_told_the_page_is_busy(seeded_dir: Path, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from gradio_client.utils import QueueError

    shutil.copytree(seeded_dir, tmp_path / "data")
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models", queue_size=2)
    llm = GatedLLM()
    pipeline = Pipeline(ChromaStore(settings.chroma_dir, embedder_name=embedder.name), embedder, llm, settings)
    app = build_app(lambda: pipeline)
    assert app._queue.max_size == 2  # from QA_QUEUE_SIZE
    port = free_port()
    app.launch(server_port=port, prevent_thread_lock=True, **launch_options("127.0.0.1", ""))
    url = f"http://127.0.0.1:{port}/"
    question = "What was the voter turnout in the October 2020 election?"
    try:
        clients = [_client(url) for _ in range(4)]
        answering = clients[0].submit(question, [], [], api_name="/ask")
        assert llm.reached.wait(60), "the first question reached the model"
        waiting = [c.submit(question, [], [], api_name="/ask") for c in clients[1:3]]
        deadline = time.monotonic() + 30
        while len(app._queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(app._queue) == 2, "two questions wait"

        started = time.monotonic()
        with pytest.raises(QueueError, match="Queue is full! Please try again"):
            clients[3].predict(question, [], [], api_name="/ask")
        assert time.monotonic() - started < 10, "told at once, not left hanging"
        assert httpx.get(url, timeout=10).status_code == 200, "the page itself still loads"

        llm.gate.set()
        for job in (answering, *waiting):
            assert job.result(timeout=60)["answered"] is False
        assert clients[3].predict(question, [], [], api_name="/ask")["answered"] is False, "and then it is free"
    finally:
        llm.gate.set()
        app.close()


def test_the_queue_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from qa.errors import ConfigError

    assert Settings().queue_size == 64
    monkeypatch.setenv("QA_QUEUE_SIZE", "3")
    assert Settings().queue_size == 3
    monkeypatch.setenv("QA_QUEUE_SIZE", "0")
    with pytest.raises(ConfigError, match="QA_QUEUE_SIZE must be a whole number of at least 1"):
        Settings()


# --- one model, one request at a time ------------------------------------------------------------------------

class Spy:
    """Wraps a loaded llama_cpp.Llama and counts the generations running at once."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llama, name)

    def create_chat_completion(self, **kwargs: Any) -> Iterator[Any]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            yield from self.llama.create_chat_completion(**kwargs)
            time.sleep(0.05)  # widen the window in which a second generation could slip in
        finally:
            with self.lock:
                self.running -= 1


def test_the_in_process_model_serves_one_request_at_a_time(smollm_path: Path) -> None:
    llm = LlamaCppLLM(smollm_path, n_ctx=1024, n_threads=1, n_threads_batch=1)
    llm.load()
    spy = Spy(llm._llama)
    llm._llama = spy
    messages = [{"role": "user", "content": "Name a colour."}]

    def generate(_: int) -> str:
        return "".join(llm.stream_chat(messages, max_tokens=8, temperature=0.1))

    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(generate, range(4)))
    assert spy.most == 1 and all(replies)

    # a reader that stops after the first piece (the Stop button) frees the model for the next one
    stream = llm.stream_chat(messages, max_tokens=8, temperature=0.1)
    next(stream)
    stream.close()
    abandoned = llm.stream_chat(messages, max_tokens=8, temperature=0.1)
    next(abandoned)
    del abandoned
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(generate, 0).result(timeout=60)
    assert spy.most == 1
