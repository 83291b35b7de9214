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


# Where an answer's time went: the stages of ``Answer.timings``, in order, with their labels. Each is the
# seconds spent in that stage, over every reading; together they make up ``total_s`` but for a few
# milliseconds of the pipeline's own (prompt building, marker filtering).
STAGES = {
    "rewrite_s": "question rewrite",  # a follow-up rewritten by the model to stand alone; absent otherwise
    "embed_s": "embedding",  # the search text, and the sentences of the passages found not met before
    "search_s": "search",  # dense and keyword search, fusion, ordering
    "prompt_s": "prompt evaluation",  # building the prompt, then until the model's first token (waiting included)
    "generate_s": "generation",  # from the model's first token to its last
    "checks_s": "checks",  # citations, guard, qa.checks (the support judge's included), a refusal's surety
}
# The other keys: ``retrieval_s``, ``first_token_s`` and ``total_s`` are the seconds from the question
# to the passages found, to the first text shown, and to the answer; ``second_reading_s`` the part of
# prompt evaluation, generation and checks spent on a second reading (absent without one);
# ``audit_s`` the seconds ``qa eval`` spent on measures no one waits for (``Settings.audit``: the
# checks after the one that refused, the model's doubt while it refuses nothing), which
# ``first_token_s`` and ``total_s`` leave out; ``readings`` and ``tokens`` are counts.


@dataclass(frozen=True)
class Retrieved:
    """The passages found for a question: the first item ``ask_stream`` yields, before any text.

    ``passages`` are all those found, in the order the answer's ``[n]`` markers number them, and
    ``sentences[i]`` is passage i's sentence closest to the question (of a passage the model reads,
    the closest of the sentences it reads of it). The model reads the first ``reading`` of them,
    cut to their best sentences (with ``Settings.read_on``, then the best sentences of the others
    too if those give no checked answer; none when the search alone shows that the articles cannot
    answer). ``query`` is what was searched for: the question, or for a follow-up the question the
    model rewrote to stand alone.
    """

    passages: list[Passage]
    sentences: list[str]
    reading: int
    query: str = ""

    @property
    def read(self) -> list[tuple[Passage, str]]:
        """The passages the model reads first, each with the sentence of it closest to the question."""
        return list(zip(self.passages, self.sentences, strict=True))[: self.reading]

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "reading": self.reading,
                "passages": [{"number": n, "article": p.title, "source": p.source, "chunk_id": p.id,
                              "outlet": p.outlet, "sentence": s}
                             for n, (p, s) in enumerate(zip(self.passages, self.sentences, strict=True), 1)]}


@dataclass
class Answer:
    """An answer with ``[n]`` markers, its citations, and how it was made.

    ``timings`` says where the time went, in seconds (:data:`STAGES` lists the stages).
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
