"""Where things live and the knobs of the pipeline.

Defaults suit the bundled articles on a 2-core laptop; every path can be
overridden by an environment variable, and the CLI flags use these same
defaults (there is one place where a default is decided: here).

| variable        | default                                        |
|-----------------|------------------------------------------------|
| QA_DATA_DIR     | ``data/`` in the project (git-ignored)          |
| QA_MODELS_DIR   | ``models/`` in the project                      |
| QA_MODEL        | the default GGUF in QA_MODELS_DIR               |
| QA_EMBEDDER     | the all-MiniLM-L6-v2 folder of its PyPI package |
| QA_THREADS      | all cores                                       |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .chunking import Chunking
from .provision import DEFAULT_MODEL_FILE

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
_IN_CHECKOUT = (PROJECT_DIR / "pyproject.toml").is_file()
_USER_DIR = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "qa"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else default


def default_seeds_dir() -> Path:
    return PROJECT_DIR / "seeds"


@dataclass
class Settings:
    """Everything the pipeline needs to know, read once from the environment."""

    data_dir: Path = field(default_factory=lambda: _env_path(
        "QA_DATA_DIR", PROJECT_DIR / "data" if _IN_CHECKOUT else _USER_DIR / "data"))
    models_dir: Path = field(default_factory=lambda: _env_path(
        "QA_MODELS_DIR", PROJECT_DIR / "models" if _IN_CHECKOUT else _USER_DIR / "models"))
    model_path: Path | None = field(default_factory=lambda: _env_path("QA_MODEL", Path()) or None)
    embedder_path: Path | None = field(default_factory=lambda: _env_path("QA_EMBEDDER", Path()) or None)
    threads: int = field(default_factory=lambda: int(os.environ.get("QA_THREADS", "0") or 0) or (os.cpu_count() or 2))
    chunking: Chunking = field(default_factory=Chunking)
    top_k: int = 6
    max_tokens: int = 200
    temperature: float = 0.1
    context_tokens: int = 4096
    min_score: float = 0.15  # best passage similarity below which we refuse without asking the model
    retrieval: str = "hybrid"  # "hybrid" (dense + BM25, fused) or "dense"
    prompt: str = "grounded"  # "grounded" or "plain"
    check: bool = True  # check citations against their passages

    def __post_init__(self) -> None:
        if self.model_path == Path():
            self.model_path = None
        if self.embedder_path == Path():
            self.embedder_path = None

    @property
    def model(self) -> Path:
        """The GGUF that answers."""
        return self.model_path or self.models_dir / DEFAULT_MODEL_FILE

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def keyword_dir(self) -> Path:
        return self.data_dir / "keyword"


# Named settings for `qa eval --preset`. "plain" is the simple pipeline the
# project started from: dense retrieval only, a plain "cite the passages"
# prompt, citations not checked.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "plain": {"retrieval": "dense", "prompt": "plain", "check": False, "min_score": 0.0, "top_k": 9},
}
