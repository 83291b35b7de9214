"""Fakes for fast tests of pure logic (the real backends are tested beside them)."""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from qa.answer import Answer
from qa.llm import Message


class FakeEmbedder:
    """Bag-of-words vectors in 256 hashed dimensions: same words, same direction."""

    name = "fake-embedder"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        out = []
        for text in texts:
            vec = [0.0] * 256
            for word in re.findall(r"\w{4,}", text.lower()):
                if word in {"that", "this", "with", "from", "what", "were", "have", "their", "which"}:
                    continue
                vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            out.append([v / norm for v in vec])
        return out


class FakeLLM:
    """Replays queued replies, in small pieces, and records the prompts it got.

    The last reply is repeated once the others are used: the pipeline may ask twice (with
    ``read_on``: the best passages first, then more), and a test that queues one reply means it
    for both.
    """

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[list[Message]] = []
        self.schemas: list[dict[str, Any] | None] = []
        # The support judge (qa.judge) asks for a score: its cases go to ``judged`` and get ``scores``
        # in turn (the last one repeated).
        self.scores = [0.9]
        self.judged: list[list[Message]] = []

    def yes_probability(self, messages: Sequence[Message]) -> float | None:
        self.judged.append(list(messages))
        return self.scores.pop(0) if len(self.scores) > 1 else self.scores[0]

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                    stop: Sequence[str] = (), schema: dict[str, Any] | None = None) -> Iterator[str]:
        self.calls.append(list(messages))
        self.schemas.append(schema)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        for i in range(0, len(reply), 3):
            yield reply[i:i + 3]


def run_stream(pipeline: Any, question: str, history: Any = None) -> tuple[str, Answer]:
    """What the reader saw streamed, and the final answer."""
    streamed, answer = "", None
    for item in pipeline.ask_stream(question, history):
        if isinstance(item, Answer):
            answer = item
        elif isinstance(item, str):
            streamed += item
    assert answer is not None
    return streamed, answer


class SlowLoadingLLM(FakeLLM):
    """A :class:`FakeLLM` whose ``load()`` waits until the test opens ``gate`` (or fails with ``failure``)."""

    def __init__(self, *replies: str, failure: Exception | None = None) -> None:
        super().__init__(*replies)
        self.gate = threading.Event()
        self.failure = failure
        self.loaded = False

    def load(self) -> None:
        self.gate.wait()
        if self.failure is not None:
            raise self.failure
        self.loaded = True
