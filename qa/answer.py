"""What a question gets back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .store import Passage


@dataclass(frozen=True)
class Citation:
    """One source of an answer: marker ``[number]`` points at passage ``chunk_id``.

    ``quote`` is the sentence(s) of the passage that support the claim, and
    ``quote_start``/``quote_end`` are its offsets into the article, so
    ``article_text[quote_start:quote_end] == quote``.
    """

    number: int
    article: str
    source: str
    chunk_id: str
    quote: str
    outlet: str = ""
    quote_start: int = 0
    quote_end: int = 0
    passage: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """An answer with ``[n]`` markers, its citations, and how it was made."""

    text: str
    answered: bool
    citations: list[Citation] = field(default_factory=list)
    question: str = ""
    query: str = ""
    passages: list[Passage] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by ``qa ask --json`` and the chat page's API."""
        return {"text": self.text, "answered": self.answered,
                "citations": [c.to_dict() for c in self.citations]}
