"""The answering model.

:class:`LlamaCppLLM` runs a GGUF file in-process with llama-cpp-python. It is
loaded on first use and then kept; one lock serialises generation, because a
llama.cpp context must not be used by two threads at once. llama-cpp-python
keeps the KV cache of the previous prompt, so the system prompt, which opens
every prompt unchanged, is evaluated only once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from .errors import ModelNotFoundError

Message = dict[str, str]


class LLM(Protocol):
    """Streams a chat completion, text piece by text piece."""

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                    stop: Sequence[str] = ()) -> Iterator[str]: ...


def check_gguf(path: Path) -> None:
    """Raise :class:`ModelNotFoundError` unless ``path`` looks like a whole GGUF file."""
    hint = ("Run `bash scripts/start` (or `qa setup`) to provision the default model into models/, "
            "or set QA_MODEL to a .gguf file.")
    if not path.is_file():
        raise ModelNotFoundError(f"No model file at {path}. {hint}")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise ModelNotFoundError(f"{path} is not a GGUF model file. {hint}")
    if path.stat().st_size < 1024 * 1024:
        raise ModelNotFoundError(f"{path} is too small to be a whole model; it may be truncated. {hint}")


class LlamaCppLLM:
    """A GGUF model run by llama-cpp-python."""

    def __init__(self, model_path: Path, n_ctx: int = 4096, n_threads: int | None = None,
                 seed: int = 0) -> None:
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.seed = seed
        self._llama: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.model_path.name

    def _load(self) -> Any:
        if self._llama is None:
            check_gguf(self.model_path)
            from llama_cpp import Llama

            try:
                self._llama = Llama(model_path=str(self.model_path), n_ctx=self.n_ctx, n_threads=self.n_threads,
                                    n_batch=512, seed=self.seed, verbose=False)
            except (ValueError, RuntimeError) as exc:
                raise ModelNotFoundError(
                    f"llama.cpp could not load {self.model_path} ({exc}). The file may be truncated or of an "
                    "unsupported kind; run `qa setup` to provision the default model, or set QA_MODEL."
                ) from exc
        return self._llama

    def load(self) -> None:
        """Load the model now rather than on the first question."""
        with self._lock:
            self._load()

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return len(self._load().tokenize(text.encode(), add_bos=False, special=True))

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                    stop: Sequence[str] = ()) -> Iterator[str]:
        with self._lock:
            llama = self._load()
            chunks = llama.create_chat_completion(messages=list(messages), max_tokens=max_tokens,
                                                  temperature=temperature, stop=list(stop) or None, stream=True)
            for chunk in chunks:
                piece = chunk["choices"][0].get("delta", {}).get("content")
                if piece:
                    yield piece
