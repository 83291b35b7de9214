"""The answering model.

:class:`LlamaCppLLM` runs a GGUF file in-process with llama-cpp-python. It is
loaded on first use and then kept; one lock serialises generation, because a
llama.cpp context must not be used by two threads at once. llama-cpp-python
keeps the KV cache of the previous prompt, so the system prompt, which opens
every prompt unchanged, is evaluated only once per process. Every answer is
sampled with the same seed, so an answer does not depend on how many
questions came before it.

:class:`OpenAICompatibleLLM` sends the same messages to any server that speaks
OpenAI's ``/v1/chat/completions`` with ``stream: true`` (llama-cpp-python's
``python -m llama_cpp.server``, llama.cpp's ``llama-server``, vLLM) and reads
the server-sent events as they come. Both stream text piece by piece, so the
pipeline around them (refusals, citation checks) cannot tell them apart.

The trade-offs of a server: its prefix cache is shared by every client, so it
helps only while they all send the same system prompt; and each answer pays an
HTTP round trip, which on loopback did not show next to prompt evaluation
(docs/performance.md, "Server mode").

A llama.cpp built with its AMX kernels (``-march=native`` on a Xeon of the
Sapphire Rapids kind or newer) crashes the process in its first matrix product
(ggml-org/llama.cpp#20824). ``scripts/install`` builds it without them; a build
that still has them is loaded with llama.cpp's extra buffer types switched off,
which keeps the weights out of the AMX buffers (:func:`amx_build`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import httpx

from .errors import ModelNotFoundError, ServerError

log = logging.getLogger(__name__)

Message = dict[str, str]


class LLM(Protocol):
    """Streams a chat completion, text piece by text piece.

    With ``schema`` (a JSON schema), the reply is JSON that follows it: llama.cpp turns the schema
    into a grammar that decoding cannot leave.
    """

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                    stop: Sequence[str] = (), schema: dict[str, Any] | None = None) -> Iterator[str]: ...


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


def amx_build() -> bool:
    """Does the installed llama.cpp use its AMX kernels, which crash on some CPUs (see the module's note)?"""
    import llama_cpp

    return "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode(errors="replace")


@contextmanager
def without_extra_buffers() -> Iterator[None]:
    """Models loaded inside keep their weights in plain CPU buffers: no AMX (nor other repacked) layout.

    llama-cpp-python 0.3.36 takes no argument for llama.cpp's ``use_extra_bufts``; its ``Llama``
    reads the model parameters from ``llama_model_default_params()``, so that is wrapped meanwhile.
    """
    import llama_cpp.llama_cpp as native

    default = native.llama_model_default_params
    fields = {name for name, *_ in default().__class__._fields_}
    if "use_extra_bufts" not in fields:  # a llama-cpp-python without the switch: say so, never pretend
        raise ModelNotFoundError("This llama-cpp-python was built with AMX kernels, which crash on some CPUs, and "
                                 "cannot load a model without them. Run `bash scripts/install-llama` to rebuild it.")

    def params() -> Any:
        value = default()
        value.use_extra_bufts = False
        return value

    native.llama_model_default_params = params
    try:
        yield
    finally:
        native.llama_model_default_params = default


_load_lock = threading.Lock()  # the wrapped default above is process-wide


def load_llama(model_path: Path, **options: Any) -> Any:
    """A ``llama_cpp.Llama`` for ``model_path`` (``options`` go to it), safe from the AMX crash.

    Every model of the process is loaded here, the benchmark's too.
    """
    from llama_cpp import Llama

    with _load_lock:
        amx = amx_build()
        if amx:
            log.warning("This llama-cpp-python was built with AMX kernels, which crash on some CPUs; loading the "
                        "model without them. `bash scripts/install-llama` rebuilds it without AMX.")
        with without_extra_buffers() if amx else nullcontext():
            return Llama(model_path=str(model_path), verbose=False, **options)


class LlamaCppLLM:
    """A GGUF model run by llama-cpp-python."""

    def __init__(self, model_path: Path, n_ctx: int = 4096, n_threads: int | None = None,
                 seed: int = 0, n_threads_batch: int | None = None) -> None:
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_threads_batch = n_threads_batch
        self.seed = seed
        self._llama: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.model_path.name

    def _load(self) -> Any:
        if self._llama is None:
            check_gguf(self.model_path)
            try:
                # Two thread counts: generating (one token at a time, bound by memory bandwidth) and
                # evaluating the prompt (in batches, bound by compute); see docs/performance.md.
                self._llama = load_llama(self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads,
                                         n_threads_batch=self.n_threads_batch, n_batch=512, seed=self.seed)
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

    @property
    def llama(self) -> Any:
        """The loaded ``llama_cpp.Llama`` (loaded now if need be), for measuring it bare."""
        with self._lock:
            return self._load()

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return len(self._load().tokenize(text.encode(), add_bos=False, special=True))

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                    stop: Sequence[str] = (), schema: dict[str, Any] | None = None) -> Iterator[str]:
        with self._lock:
            llama = self._load()
            # The same seed for every answer: an answer does not depend on how many questions came
            # before it (llama-cpp-python otherwise moves the seed on at every call).
            chunks = llama.create_chat_completion(
                messages=list(messages), max_tokens=max_tokens, temperature=temperature, stop=list(stop) or None,
                stream=True, seed=self.seed,
                response_format={"type": "json_object", "schema": schema} if schema else None)
            for chunk in chunks:
                piece = chunk["choices"][0].get("delta", {}).get("content")
                if piece:
                    yield piece


def _server_detail(response: httpx.Response) -> str:
    """The error message a server put in its reply, shortened to one line."""
    try:
        body: Any = response.json()
    except ValueError:
        return " ".join(response.text.split())[:200] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body.get("detail", body))
        if isinstance(error, dict):
            error = error.get("message", error)
        return " ".join(str(error).split())[:200]
    return " ".join(str(body).split())[:200]


class OpenAICompatibleLLM:
    """Answers from a server with OpenAI's chat-completions API, streamed.

    ``base_url`` ends in ``/v1`` (``http://HOST:PORT/v1``). Without ``model``
    the first model that ``GET /models`` lists is used. Errors are
    :class:`~qa.errors.ServerError` with a message that names the server.
    """

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = 600.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, transport=transport,
                                    timeout=httpx.Timeout(timeout, connect=10.0))
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"{self.model or 'model'} at {self.base_url}"

    def _unreachable(self, exc: Exception) -> ServerError:
        return ServerError(
            f"Could not reach the LLM server at {self.base_url} ({exc or type(exc).__name__}). Start it (for example "
            "`python -m llama_cpp.server --model FILE.gguf --port 8000`), or unset QA_LLM_URL to answer with the "
            "local model.")

    def _failed(self, response: httpx.Response) -> ServerError:
        detail = _server_detail(response)
        if response.status_code in (401, 403):
            return ServerError(f"The LLM server at {self.base_url} refused the request (HTTP {response.status_code}: "
                               f"{detail}). Set QA_LLM_KEY to a key it accepts.")
        return ServerError(f"The LLM server at {self.base_url} answered HTTP {response.status_code} ({detail}). "
                           "Check QA_LLM_MODEL and the server's log.")

    def load(self) -> None:
        """Check that the server answers, and pick its model when none is named."""
        with self._lock:
            if self.model:
                return
            try:
                response = self._client.get("/models")
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from exc
            if response.status_code in (401, 403):
                raise self._failed(response)
            models = []
            if response.is_success:
                try:
                    models = [m["id"] for m in response.json().get("data", []) if isinstance(m, dict) and "id" in m]
                except (ValueError, AttributeError):
                    models = []
            # A server without /models (or with an empty list) serves whatever it loaded.
            self.model = str(models[0]) if models else "default"

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                    stop: Sequence[str] = (), schema: dict[str, Any] | None = None) -> Iterator[str]:
        self.load()
        body: dict[str, Any] = {"model": self.model, "messages": list(messages), "max_tokens": max_tokens,
                                "temperature": temperature, "stream": True}
        if stop:
            body["stop"] = list(stop)
        if schema:
            # llama-cpp-python's server and llama.cpp's llama-server both take the schema this way; a
            # server that ignores it still gets a prompt asking for JSON (qa.reply reads either).
            body["response_format"] = {"type": "json_object", "schema": schema}
        responded = False
        try:
            with self._client.stream("POST", "/chat/completions", json=body) as response:
                responded = True
                if not response.is_success:
                    response.read()
                    raise self._failed(response)
                finished = False
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments (": ping"), event names
                    data = line[5:].strip()
                    if data == "[DONE]":
                        finished = True
                        break
                    piece, done = self._parse_event(data)
                    finished = finished or done
                    if piece:
                        yield piece
                if not finished:
                    raise ServerError(f"The LLM server at {self.base_url} ended its reply in the middle of an "
                                      "answer. Check the server's log, then ask again.")
        except httpx.HTTPError as exc:
            if not responded:  # refused, timed out, or a kept-alive connection the server had dropped
                raise self._unreachable(exc) from exc
            raise ServerError(f"The LLM server at {self.base_url} failed in the middle of an answer "
                              f"({exc or type(exc).__name__}). Check that it is still running, then ask "
                              "again.") from exc

    def _parse_event(self, data: str) -> tuple[str, bool]:
        """(text, finished) of one streamed event; raise on an error event.

        >>> OpenAICompatibleLLM("http://x/v1")._parse_event(
        ...     '{"choices": [{"delta": {"content": "Ruiz"}, "finish_reason": null}]}')
        ('Ruiz', False)
        """
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise ServerError(f"The LLM server at {self.base_url} sent something that is not a chat-completion "
                              f"event ({data[:80]!r}). Is QA_LLM_URL an OpenAI-compatible /v1 address?") from exc
        if not isinstance(event, dict):
            return "", False
        if event.get("error"):
            error = event["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ServerError(f"The LLM server at {self.base_url} failed in the middle of an answer ({message}). "
                              "Check the server's log, then ask again.")
        choices = event.get("choices") or [{}]
        choice = choices[0] if isinstance(choices[0], dict) else {}
        delta = choice.get("delta") or {}
        piece = delta.get("content") if isinstance(delta, dict) else None
        return (piece if isinstance(piece, str) else ""), bool(choice.get("finish_reason"))

    def close(self) -> None:
        self._client.close()
