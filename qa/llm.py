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
import math
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
        self._formatter: Any = None
        self._yes_no: tuple[set[int], set[int]] | None = None
        self._fixed: tuple[tuple[tuple[str, str], ...], list[int]] | None = None

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

    def _chat_tokens(self, llama: Any, messages: Sequence[Message], opened: bool = True) -> list[int]:
        """``messages`` in the model's own chat template, as tokens; ``opened``: the assistant's turn opened."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if self._formatter is None:
            template = llama.metadata.get("tokenizer.chat_template")
            if not template:
                raise ValueError(f"{self.model_path.name} has no chat template")
            eos, bos = llama.token_eos(), llama.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template, eos_token=llama._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llama._model.token_get_text(bos) if bos != -1 else "")
        self._formatter.add_generation_prompt = opened
        result = self._formatter(messages=list(messages))
        return list(llama.tokenize(result.prompt.encode(), add_bos=not result.added_special, special=True))

    def _fixed_tokens(self, llama: Any, head: Sequence[Message], tokens: Sequence[int]) -> int:
        """How many of ``tokens`` render ``head``, the messages before the last (cached by content)."""
        key = tuple((m["role"], m["content"]) for m in head)
        if self._fixed is None or self._fixed[0] != key:
            rendered = self._chat_tokens(llama, head, opened=False) if head else []
            self._fixed = (key, rendered)
        from llama_cpp import Llama

        return min(int(Llama.longest_token_prefix(self._fixed[1], tokens)), len(tokens) - 1)

    def yes_probability(self, messages: Sequence[Message]) -> float | None:
        """How likely the reply to ``messages`` opens with yes rather than no (:mod:`qa.judge`).

        One forward pass and no sampling: the prompt is evaluated from where it stops matching what
        this context evaluated last (llama.cpp keeps the rest in its KV cache), and the logits of
        its last position are read straight from llama.cpp, which keeps them without ``logits_all``.
        """
        import numpy as np
        from llama_cpp import Llama, llama_cpp

        with self._lock:
            llama = self._load()
            tokens = self._chat_tokens(llama, messages)
            if len(tokens) >= self.n_ctx:
                raise ValueError(f"the judge's prompt of {len(tokens)} tokens is longer than the context "
                                 f"({self.n_ctx})")
            if self._yes_no is None:
                self._yes_no = (_first_tokens(llama, YES_WORDS), _first_tokens(llama, NO_WORDS))
            # The conversation before the last turn is evaluated alone, once, and the last turn always
            # from its end: the same batches every time, so a case gets the same score whatever came before.
            fixed = self._fixed_tokens(llama, messages[:-1], tokens)
            cached = Llama.longest_token_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens)
            if cached < fixed:
                llama.n_tokens = 0
                llama.eval(tokens[:fixed])
            llama.n_tokens = fixed
            llama.eval(tokens[fixed:])
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),))
            yes, no = self._yes_no
            return yes_share([float(logits[t]) for t in yes - no], [float(logits[t]) for t in no - yes])

    def opening_probability(self, messages: Sequence[Message], words: Sequence[str]) -> float | None:
        """How likely the reply to ``messages`` opens with the first token of one of ``words``.

        Meant right after :meth:`stream_chat` answered the same ``messages``: llama.cpp still holds
        the prompt in its KV cache, so only its last token is evaluated again, to read the logits at
        that position (the full softmax, not a share between two words).
        """
        import numpy as np
        from llama_cpp import Llama, llama_cpp

        with self._lock:
            llama = self._load()
            if getattr(llama, "_is_recurrent", False) or getattr(llama, "_is_hybrid", False):
                return None  # their state cannot be cut back to the prompt's last token
            tokens = self._chat_tokens(llama, messages)
            if len(tokens) >= self.n_ctx:
                return None
            cached = int(Llama.longest_token_prefix(llama.input_ids[: llama.n_tokens].tolist(), tokens))
            llama.n_tokens = min(cached, len(tokens) - 1)
            llama.eval(tokens[llama.n_tokens:])
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),))
            top = float(logits.max())
            weights = np.exp(logits.astype(np.float64) - top)
            wanted = sorted(_first_tokens(llama, words))
            return float(weights[wanted].sum() / weights.sum())

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


def yes_share(yes: Sequence[float], no: Sequence[float]) -> float:
    """P(yes) out of the log-scores (logits or log-probabilities) of the yes-words and the no-words.

    >>> yes_share([2.0], [2.0]), round(yes_share([3.0, 1.0], [0.0]), 3), yes_share([], [-1.0])
    (0.5, 0.958, 0.0)
    """
    top = max([*yes, *no], default=0.0)
    p_yes = sum(math.exp(v - top) for v in yes)
    p_no = sum(math.exp(v - top) for v in no)
    return p_yes / (p_yes + p_no) if p_yes + p_no > 0 else 0.5


YES_WORDS = ("yes", "Yes", "YES", " yes", " Yes", " YES")
NO_WORDS = ("no", "No", "NO", " no", " No", " NO")


def _first_tokens(llama: Any, words: Sequence[str]) -> set[int]:
    """The first token of each word, in ``llama``'s vocabulary."""
    out = set()
    for word in words:
        ids = llama.tokenize(word.encode(), add_bos=False, special=False)
        if ids:
            out.add(int(ids[0]))
    return out


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
        self._logprobs: bool | None = None  # does the server give log-probabilities? (known after one ask)

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

    def yes_probability(self, messages: Sequence[Message]) -> float | None:
        """How likely the reply opens with yes rather than no, from the server's log-probabilities.

        ``None`` when the server gives none (llama-cpp-python's own server does not, unless its model
        was loaded with ``logits_all``); it is then not asked again.
        """
        if self._logprobs is False:
            return None
        self.load()
        body = {"model": self.model, "messages": list(messages), "max_tokens": 1, "temperature": 0.0,
                "logprobs": True, "top_logprobs": 20}
        try:
            response = self._client.post("/chat/completions", json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        found = None
        if response.is_success:
            try:
                choice = response.json()["choices"][0]
                found = choice["logprobs"]["content"][0]["top_logprobs"]
            except (ValueError, KeyError, IndexError, TypeError):
                found = None
        if not found:
            self._logprobs = False
            log.warning("The LLM server at %s gives no log-probabilities (%s); the support judge uses its sampled "
                        "reply instead.", self.base_url,
                        _server_detail(response) if not response.is_success else "none in its reply")
            return None
        self._logprobs = True
        yes = [float(t["logprob"]) for t in found if str(t.get("token", "")) in YES_WORDS]
        no = [float(t["logprob"]) for t in found if str(t.get("token", "")) in NO_WORDS]
        if not yes and not no:
            return 0.5  # neither word among the likely ones: no opinion either way
        return yes_share(yes, no)

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
