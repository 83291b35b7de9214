"""What a question gets back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .period import undated_note
from .store import Passage


@dataclass(frozen=True)
class Citation:
    """One source of an answer: marker ``[number]`` points at passage ``chunk_id``.

    ``quote`` is the sentence(s) of the passage that support the claim, and
    ``quote_start``/``quote_end`` are its offsets into the article, so
    ``article_text[quote_start:quote_end] == quote``. ``date`` is the article's,
    ``YYYY-MM-DD`` or ``""``.
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
    date: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """What one check (:mod:`qa.checks`) found: passed or not, why, and a score where it gives one."""

    check: str
    passed: bool
    reason: str = ""
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """An answer with ``[n]`` markers, its citations, and how it was made.

    A refusal names what refused it: ``refused_by`` is one of :data:`qa.checks.REFUSERS`, and
    ``reason`` says why in a short sentence. ``checks`` holds the verdicts of the checks that ran
    on the answer given (or refused), and ``draft`` the refused text. ``undated`` counts the
    articles that a period (``since``, ``until``) left out for having no date, and :attr:`note`
    tells the reader so.
    """

    text: str
    answered: bool
    citations: list[Citation] = field(default_factory=list)
    question: str = ""
    query: str = ""
    passages: list[Passage] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    refused_by: str = ""
    reason: str = ""
    checks: list[Verdict] = field(default_factory=list)
    draft: str = ""  # the text a check refused, for measuring the checks (qa eval); never shown
    undated: int = 0

    @property
    def note(self) -> str:
        """What the reader should know besides the answer: the articles a period left out ("" when none)."""
        return undated_note(self.undated)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape shared by ``qa ask --json`` and the chat page's API (``undated`` and ``note``
        only when a period left articles out)."""
        out: dict[str, Any] = {"text": self.text, "answered": self.answered,
                               "citations": [c.to_dict() for c in self.citations]}
        if not self.answered:
            out |= {"refused_by": self.refused_by, "reason": self.reason}
        if self.undated:
            out |= {"undated": self.undated, "note": self.note}
        return out
