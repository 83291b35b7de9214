"""Server mode against real servers: a ``chroma run`` server and llama-cpp-python's OpenAI-compatible
server (with the small SmolLM2 model), both on free loopback ports, stopped after the tests.

The commands run as a user runs them, with QA_MODEL pointing at a file that does not exist, so any
answer can only have come from the LLM server; the local data directory stays without an index.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa.answer import Answer, Retrieved
from qa.api import build_pipeline
from qa.config import Settings
from qa.errors import ServerError
from qa.llm import OpenAICompatibleLLM
from qa.pipeline import REFUSAL, Pipeline
from qa.store import ChromaStore

from .servers import ROOT, chroma_server, free_port, llm_server, run_qa, stop, wait_for

SEEDS = ROOT / "seeds"
TURNOUT = "What was the voter turnout in the October 2020 election?"


def _one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def _closed_url(path: str = "") -> str:
    return f"http://127.0.0.1:{free_port()}{path}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, seeded_dir: Path, smollm_path: Path,
            embedder) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """A Chroma server holding the seeds' index (copied from the session's) and an LLM server."""
    work = tmp_path_factory.mktemp("servers")
    with chroma_server(work / "chroma", work / "chroma.log") as (chroma_url, _), \
            llm_server(smollm_path, work / "llm.log") as (llm_url, _):
        local = ChromaStore(seeded_dir / "chroma", embedder_name=embedder.name)
        remote = ChromaStore(url=chroma_url, embedder_name=embedder.name)
        got = local.collection.get(include=["documents", "metadatas", "embeddings"])
        remote.collection.upsert(ids=got["ids"], documents=got["documents"], metadatas=got["metadatas"],
                                 embeddings=got["embeddings"])
        yield chroma_url, llm_url


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"QA_DATA_DIR": str(tmp_path / "local"), "QA_MODEL": str(tmp_path / "absent.gguf"), **extra}


@pytest.mark.slow
def test_cli_commands_use_the_servers(servers: tuple[str, str], tmp_path: Path) -> None:
    chroma_url, llm_url = servers
    env = _env(tmp_path, QA_LLM_URL=llm_url)

    listed = run_qa("articles", "--chroma-url", chroma_url, env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("passages)") == 5

    again = run_qa("ingest", str(SEEDS), env={**env, "QA_CHROMA_URL": chroma_url})
    assert again.returncode == 0, again.stderr
    assert "0 passages added, 0 replaced, 0 removed (5 articles unchanged)" in again.stdout

    result = run_qa("ask", TURNOUT, "--json", env={**env, "QA_CHROMA_URL": chroma_url})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    refusal = {"refused_by", "reason"} if not data["answered"] else set()
    assert set(data) == {"text", "answered", "citations"} | refusal and data["text"]
    for c in data["citations"]:
        assert f"[{c['number']}]" in data["text"] and c["quote"]
    assert not (tmp_path / "local" / "chroma").exists(), "nothing was indexed locally"


@pytest.mark.slow
def test_pipeline_over_both_servers_streams_a_checked_answer(servers: tuple[str, str], tmp_path: Path,
                                                             embedder) -> None:  # type: ignore[no-untyped-def]
    chroma_url, llm_url = servers
    settings = Settings(data_dir=tmp_path / "local", chroma_url=chroma_url, llm_url=llm_url)
    built = build_pipeline(settings)
    assert built.store.url == chroma_url and isinstance(built.llm, OpenAICompatibleLLM)

    pipeline = Pipeline(ChromaStore(url=chroma_url, embedder_name=embedder.name), embedder,
                        OpenAICompatibleLLM(llm_url), settings)
    items = list(pipeline.ask_stream(TURNOUT))
    answer = items[-1]
    assert isinstance(items[0], Retrieved) and isinstance(answer, Answer)
    assert any(isinstance(i, str) for i in items[1:-1]), "text is streamed before the answer"
    assert any("88.4" in p.text for p in answer.passages), "retrieved from the server"
    if answer.answered:
        numbers = {c.number for c in answer.citations}
        assert numbers and {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} <= numbers
        for c in answer.citations:
            assert c.quote in answer.passages[c.number - 1].text
    else:
        assert answer.text == REFUSAL and answer.citations == []


@pytest.mark.slow
def test_the_llm_server_holds_the_reply_to_the_json_schema(servers: tuple[str, str]) -> None:
    from qa.reply import SCHEMA

    llm = OpenAICompatibleLLM(servers[1])
    messages = [{"role": "system", "content": "Reply in JSON."},
                {"role": "user", "content": "[1] Turnout was 88.4 percent.\n\nQuestion: What was the turnout?"}]
    raw = "".join(llm.stream_chat(messages, max_tokens=80, temperature=0.1, schema=SCHEMA))
    assert raw.lstrip().startswith("{") and '"found"' in raw, raw


@pytest.mark.slow
def test_two_chat_pages_share_one_chroma_and_one_llm_server(servers: tuple[str, str], tmp_path: Path,
                                                            embedder) -> None:  # type: ignore[no-untyped-def]
    """`qa serve` in its own process, and a second chat page in this one, over the same two servers."""
    from qa.bench import ask_over_http
    from qa.web import CSS, build_app

    chroma_url, llm_url = servers
    env = {**os.environ, **_env(tmp_path, QA_CHROMA_URL=chroma_url, QA_LLM_URL=llm_url)}
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    settings = Settings(data_dir=tmp_path / "local", chroma_url=chroma_url, llm_url=llm_url)
    pipeline = Pipeline(ChromaStore(url=chroma_url, embedder_name=embedder.name), embedder,
                        OpenAICompatibleLLM(llm_url), settings)
    app = build_app(lambda: pipeline)
    other = free_port()
    app.launch(server_name="127.0.0.1", server_port=other, prevent_thread_lock=True, quiet=True, css=CSS)
    try:
        wait_for(f"http://127.0.0.1:{port}/", process, log, timeout=180)
        for base in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{other}"):
            result = ask_over_http(base, TURNOUT)
            refusal = {"refused_by", "reason"} if not result["answered"] else set()
            assert set(result) == {"text", "answered", "citations"} | refusal, result
    finally:
        stop(process)
        app.close()


@pytest.mark.slow
def test_ingest_into_a_server_and_a_rebuild_by_another_process(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    articles = tmp_path / "one"
    articles.mkdir()
    (articles / "003.txt").write_text((SEEDS / "003_41e6e3ef6e8987f6.txt").read_text())
    with chroma_server(tmp_path / "chroma", tmp_path / "chroma.log") as (url, process):
        result = run_qa("ingest", str(articles), "--chroma-url", url, env=_env(tmp_path))
        assert result.returncode == 0, result.stderr
        added = int(re.search(r"(\d+) passages added", result.stdout).group(1))  # type: ignore[union-attr]
        assert added > 5 and not (tmp_path / "local" / "chroma").exists()
        assert (tmp_path / "local" / "ingest-127.0.0.1-" f"{url.rsplit(':', 1)[1]}.lock").exists()

        serving = ChromaStore(url=url, embedder_name=embedder.name)
        assert serving.count() == added
        other = ChromaStore(url=url, embedder_name=embedder.name)
        kept = other.all_passages()[:3]
        other.reset()  # as `qa ingest --rebuild` elsewhere: the collection is replaced
        other.add(kept, embedder.embed([p.text for p in kept]))
        assert serving.count() == 3, "the replaced collection is found again"
        assert len(serving.query(embedder.embed([TURNOUT])[0], 4)) == 3

        process.send_signal(signal.SIGKILL)
        process.wait()
        with pytest.raises(ServerError, match=f"Could not reach the Chroma server at {url}.*chroma run"):
            serving.count()


@pytest.mark.slow
def test_llm_server_dying_mid_answer_is_a_clear_error(tmp_path: Path, smollm_path: Path) -> None:
    with llm_server(smollm_path, tmp_path / "llm.log") as (url, process):
        llm = OpenAICompatibleLLM(url)
        pieces = []
        with pytest.raises(ServerError, match=f"The LLM server at {url} failed in the middle of an answer"):
            for piece in llm.stream_chat([{"role": "user", "content": "Tell a long story about a cat."}],
                                         max_tokens=200, temperature=0.1):
                pieces.append(piece)
                if len(pieces) == 2:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
        assert len(pieces) >= 2
        time.sleep(0.2)
        with pytest.raises(ServerError, match=f"Could not reach the LLM server at {url}"):
            list(llm.stream_chat([{"role": "user", "content": "Hello?"}], max_tokens=5, temperature=0.1))


# --- unreachable servers, as the user meets them: one line, exit code 2 -----------------------

def test_ask_with_an_unreachable_chroma_server(tmp_path: Path) -> None:
    url = _closed_url()
    result = run_qa("ask", "Who won?", env=_env(tmp_path, QA_CHROMA_URL=url))
    _one_line_error(result, f"Could not reach the Chroma server at {url}", "QA_CHROMA_URL")


def test_ask_with_an_unreachable_llm_server(seeded_copy: Path, tmp_path: Path) -> None:
    url = _closed_url("/v1")
    result = run_qa("ask", TURNOUT, env={"QA_DATA_DIR": str(seeded_copy), "QA_LLM_URL": url})
    _one_line_error(result, f"Could not reach the LLM server at {url}", "QA_LLM_URL")


def test_serve_with_an_unreachable_llm_server_stops_with_one_line(seeded_copy: Path) -> None:
    url = _closed_url("/v1")
    result = run_qa("serve", "--port", str(free_port()), "--llm-url", url, env={"QA_DATA_DIR": str(seeded_copy)})
    _one_line_error(result, f"Could not reach the LLM server at {url}")


def test_a_malformed_server_url_is_one_line(tmp_path: Path) -> None:
    result = run_qa("articles", "--chroma-url", "localhost:8000", env=_env(tmp_path))
    _one_line_error(result, "QA_CHROMA_URL must look like http://HOST:PORT")
