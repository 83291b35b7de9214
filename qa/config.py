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
| QA_EMBEDDER_BACKEND | onnx-int8 (or onnx-fp32, torch): what runs it  |
| QA_RERANKER     | unset: no reranking (a CrossEncoder folder)     |
| QA_THREADS      | half the cores (llama.cpp, generating)          |
| QA_BATCH_THREADS| all cores (llama.cpp, evaluating the prompt)    |
| QA_CHROMA_URL   | unset: the embedded store in QA_DATA_DIR        |
| QA_LLM_URL      | unset: QA_MODEL run in-process by llama.cpp     |
| QA_LLM_MODEL    | the first model the LLM server lists            |
| QA_LLM_KEY      | none (sent as a bearer token when set)          |
| QA_QUEUE_SIZE   | 64 questions waiting on the chat page, at most  |
| QA_PROMPT       | grounded: prose answers with [n] (or json)      |
| QA_WITHOUT      | none: checks to switch off, e.g. ``judge,time`` |
| QA_ALLOW_PRIVATE_LINKS | 0: links into this machine's network refused |

With ``QA_CHROMA_URL=http://HOST:PORT`` the passages live on a Chroma server
(``chroma run``); with ``QA_LLM_URL=http://HOST:PORT/v1`` answers come from an
OpenAI-compatible server. Nothing else changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .chunking import Chunking
from .errors import ConfigError
from .provision import DEFAULT_MODEL_FILE

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent
_IN_CHECKOUT = (PROJECT_DIR / "pyproject.toml").is_file()
_USER_DIR = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "qa"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else default


def _env_int(name: str) -> int:
    """A positive whole number from the environment, 0 when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return 0
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, not {value!r}.")
    return int(value)


def _env_str(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


def check_url(name: str, value: str | None, *, api_path: str = "") -> str | None:
    """Validate a server URL; with ``api_path``, add it when the URL has no path.

    >>> check_url("QA_LLM_URL", "http://gpu-box:8000/", api_path="/v1")
    'http://gpu-box:8000/v1'
    >>> check_url("QA_CHROMA_URL", "localhost:8000")
    Traceback (most recent call last):
    ...
    qa.errors.ConfigError: QA_CHROMA_URL must look like http://HOST:PORT, not 'localhost:8000'.
    """
    if not value:
        return None
    value = value.strip().rstrip("/")
    parts = urlparse(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        example = f"http://HOST:PORT{api_path}"
        raise ConfigError(f"{name} must look like {example}, not {value!r}.")
    if api_path and not parts.path:
        value += api_path
    return value


def _env_flag(name: str) -> bool:
    """A yes-or-no setting: 1, true or yes; 0, false, no or unset."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name} must be 1 or 0, not {value!r}.")


def _env_checks(name: str) -> frozenset[str]:
    """Check names from the environment, comma-separated (``judge,time``)."""
    from .checks import check_names

    try:
        return check_names(os.environ.get(name, ""))
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from exc


PROMPT_STYLES = ("grounded", "json")
DEFAULT_PROMPT = "grounded"


def _env_prompt() -> str:
    """The answer format from QA_PROMPT: prose with [n] markers, or JSON held to a schema."""
    value = (_env_str("QA_PROMPT") or DEFAULT_PROMPT).lower()
    if value not in PROMPT_STYLES:
        raise ConfigError(f"QA_PROMPT must be one of {', '.join(PROMPT_STYLES)}, not {value!r}.")
    return value


EMBEDDER_BACKENDS = ("onnx-int8", "onnx-fp32", "torch")
DEFAULT_EMBEDDER_BACKEND = "onnx-int8"


def _env_embedder_backend() -> str:
    """What runs the embedder, from QA_EMBEDDER_BACKEND: onnxruntime (int8 or fp32) or sentence-transformers."""
    value = (_env_str("QA_EMBEDDER_BACKEND") or DEFAULT_EMBEDDER_BACKEND).lower()
    if value not in EMBEDDER_BACKENDS:
        raise ConfigError(f"QA_EMBEDDER_BACKEND must be one of {', '.join(EMBEDDER_BACKENDS)}, not {value!r}.")
    return value


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
    # onnx-int8 / onnx-fp32: the embedder exported to ONNX and run by onnxruntime (qa.onnx_embedder);
    # torch: sentence-transformers. int8 embeds about 3.4 times as fast as torch with the same retrieval
    # (docs/performance.md), so it is the default.
    embedder_backend: str = field(default_factory=_env_embedder_backend)
    reranker_path: Path | None = field(default_factory=lambda: _env_path("QA_RERANKER", Path()) or None)
    # Generating is bound by memory bandwidth, and its threads wait for each other at every layer, so
    # one thread the OS puts aside stalls them all: on 2 busy cores, 2 threads generated 2 tokens/s
    # where 1 thread generated 11.5 (docs/performance.md). Half the cores, llama-cpp-python's own
    # default, leaves room for everything else; prompt evaluation, bound by compute, takes every core.
    threads: int = field(default_factory=lambda: _env_int("QA_THREADS") or max(1, (os.cpu_count() or 2) // 2))
    batch_threads: int = field(default_factory=lambda: _env_int("QA_BATCH_THREADS") or (os.cpu_count() or 2))
    chunking: Chunking = field(default_factory=Chunking)
    top_k: int = 6
    max_tokens: int = 200
    temperature: float = 0.1
    seed: int = 0  # the answering model's sampling seed: the same prompt gets the same answer (`qa eval --seed`)
    context_tokens: int = 4096
    min_score: float = 0.15  # best passage similarity below which we refuse without asking the model
    retrieval: str = "hybrid"  # "hybrid" (dense + BM25, fused) or "dense"
    # "grounded" (prose with [n] markers), "json" (qa.reply), or "plain" (the unchecked baseline)
    prompt: str = field(default_factory=_env_prompt)
    check: bool = True  # check citations against their passages
    rewrite: bool = True  # have the model rewrite a follow-up into a standalone question before retrieval
    # the model reads only the best `narrow_k` passages (and the others only with read_on): a small
    # model picks the wrong name out of six passages more often than out of a few. Three, under the
    # same token budget as two, hold the answer more often on both tuning collections and answered
    # more right (docs/quality.md, "Three passages' best sentences"). (0: one reading of all of them.)
    narrow_k: int = 3
    # the first reading's best passages are cut to their best whole sentences, about this many tokens
    # of them (qa.excerpt); 0: whole. On every answerable question of each SQuAD half, 270 keeps the
    # answer in what is read for all but 0.4-0.7 points of questions, for a fifth fewer tokens
    # (docs/performance.md, "Fewer tokens per reading", measured on 2 passages)
    first_tokens: int = 270
    # after the first reading is refused (by the model or a check other than the judge), read it again
    # with the other passages found and answer once more. Off: on the tuning collections second
    # readings found 1 right answer in 34 and answered 6 unanswerable questions, each costing about
    # a first reading's time again (docs/quality.md, "No second reading")
    read_on: bool = False
    # a second reading is the first again (llama.cpp still holds its tokens, so they are not evaluated
    # again) and the best sentences of the other passages, about this many tokens of them; 0: the
    # other passages whole
    more_tokens: int = 200
    # the model reads the passages' best sentences, about this many tokens of them, in one reading
    # (qa.excerpt); 0: the readings above
    read_tokens: int = 0
    # order the passages found by their best sentence's likeness to the question as well (qa.focus)
    sentence_order: bool = True
    # the checks switched off (names from qa.checks.SWITCHABLE)
    without: frozenset[str] = field(default_factory=lambda: _env_checks("QA_WITHOUT"))
    # with read_on, after the first reading the model refused, the rest of the passages are read only
    # if its refusal was at most this likely (its first token's probability); 1 always reads them.
    # In-process llama.cpp only: a server's refusal is always followed by the second reading. On the
    # tuning collections (whole passages), second readings found a right answer after refusals at
    # 0.36, 0.39 and 0.70, and 0.8 keeps a margin above them (docs/performance.md, "Sure refusals").
    sure_refusal: float = 0.8
    # the support judge (qa.judge) refuses an answer whose quotes it scores below this; chosen on the
    # tuning collections (the SQuAD tuning half and the seed articles' own questions): the highest
    # multiple of 0.05 that keeps false refusals within 0.08 on both (docs/quality.md, "The judge's
    # threshold, on both tuning collections")
    judge_threshold: float = 0.10
    # an answer is refused when the answering model gave NOT FOUND at least this probability as its
    # reply's first token (the "doubt" check); 1 refuses nothing (qa eval still records it). Off: on
    # the tuning half 0.3 refused 3 more unanswerable questions for nothing, on the reporting half 1
    # more for a right answer (docs/quality.md, "The model's own doubt")
    doubt: float = 1.0
    # run every check on an answer even after one refused it, to record their verdicts (qa eval)
    audit: bool = False
    chroma_url: str | None = field(default_factory=lambda: _env_str("QA_CHROMA_URL"))
    llm_url: str | None = field(default_factory=lambda: _env_str("QA_LLM_URL"))
    llm_model: str | None = field(default_factory=lambda: _env_str("QA_LLM_MODEL"))
    llm_key: str | None = field(default_factory=lambda: _env_str("QA_LLM_KEY"), repr=False)
    # Questions the chat page holds while the model answers another; one more is told the page is busy.
    queue_size: int = field(default_factory=lambda: _env_int("QA_QUEUE_SIZE") or 64)
    # Fetch links whose host is on this machine or its network (qa.fetch); off, a link cannot reach them.
    allow_private_links: bool = field(default_factory=lambda: _env_flag("QA_ALLOW_PRIVATE_LINKS"))

    def __post_init__(self) -> None:
        if self.model_path == Path():
            self.model_path = None
        if self.embedder_path == Path():
            self.embedder_path = None
        if self.reranker_path == Path():
            self.reranker_path = None
        from .checks import check_names

        try:
            self.without = check_names(sorted(self.without))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        self.chroma_url = check_url("QA_CHROMA_URL", self.chroma_url)
        self.llm_url = check_url("QA_LLM_URL", self.llm_url, api_path="/v1")

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
# prompt, citations not checked, no best-sentence order, and 5 passages of
# 700 characters, as much text as 4 of 900 (runs before docs/quality.md's
# step 8 read 9). "grounded" and "json" name the two answer
# formats of the checked pipeline: prose with [n] markers, or a reply held to
# a JSON schema by llama.cpp's grammar (qa.reply).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "grounded": {"prompt": "grounded"},
    "json": {"prompt": "json"},
    "wide": {"narrow_k": 0},
    "read-on": {"read_on": True},
    "unjudged": {"without": frozenset({"judge"})},
    "passage-order": {"sentence_order": False},
    "passages": {"read_tokens": 0, "first_tokens": 0, "more_tokens": 0},
    "sentences": {"read_tokens": 300},
    "plain": {"retrieval": "dense", "prompt": "plain", "check": False, "rewrite": False, "narrow_k": 0,
              "sentence_order": False, "min_score": 0.0, "top_k": 5, "read_tokens": 0, "first_tokens": 0,
              "more_tokens": 0},
}
