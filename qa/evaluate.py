"""Measuring answer quality: ``qa eval FILE``.

A question set is JSON lines::

    {"id": "q1", "question": "...", "answers": [["88.4"], ["second-highest", "second highest"]],
     "articles": ["002_91029d526ce3fca8.txt"], "history": [...optional earlier turns]}

An answer is correct when, after normalising case, white space, apostrophes
and thousands separators, its text contains one alternative of every group and
``answered`` is true. ``"answers": []`` marks a question the articles cannot
answer: correct when ``answered`` is false.

Metrics (answerable questions unless said otherwise):

- hit rate at k: a passage of a gold article is among those given to the model;
- accuracy;
- citation precision: share of the citations of answered questions whose
  passage contains a gold alternative (or, for a question marked
  ``"free_text": true``, that come from a gold article);
- citation coverage: share of correct answers with at least one such citation;
- refusal rate (unanswerable questions) and false-refusal rate (answerable);
- median and 90th percentile of latency and of time to first token.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .answer import Answer
from .errors import QAError
from .pipeline import Pipeline


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    answers: list[list[str]]
    articles: list[str]
    history: list[dict[str, str]] = field(default_factory=list)
    kind: str = ""
    free_text: bool = False

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read a question set; raise :class:`QAError` naming the line of a malformed entry."""
    if not path.is_file():
        raise QAError(f"No question set at {path}. Name a JSON-lines file (see qa/evalsets/bolivia.jsonl).")
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append(EvalQuestion(id=str(row["id"]), question=row["question"], answers=row["answers"],
                                    articles=list(row.get("articles", [])), history=list(row.get("history", [])),
                                    kind=row.get("kind", ""), free_text=bool(row.get("free_text", False))))
        except (ValueError, KeyError, TypeError) as exc:
            raise QAError(f"{path}, line {number}: not a valid question ({exc}). Each line needs id, question, "
                          "answers and articles.") from exc
    return out


def normalise(text: str) -> str:
    """Lower case, one space, plain apostrophes, no thousands separators.

    >>> normalise("About 6,483,893  Bolivians’ VOTES")
    "about 6483893 bolivians' votes"
    """
    text = text.lower().replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    text = re.sub(r"(?<=\d)[,\u00a0\u202f ](?=\d{3}\b)", "", text)
    return " ".join(text.split())


def is_correct(question: EvalQuestion, answered: bool, text: str) -> bool:
    """Apply the scoring rule.

    >>> q = EvalQuestion("1", "?", [["88.4"], ["second-highest", "second highest"]], ["a"])
    >>> is_correct(q, True, "Turnout was 88.4%, the second highest [1].")
    True
    >>> is_correct(q, True, "Turnout was 88.4% [1]."), is_correct(q, False, "88.4 second highest")
    (False, False)
    >>> is_correct(EvalQuestion("2", "?", [], []), False, "I could not find it.")
    True
    """
    if not question.answerable:
        return not answered
    body = normalise(text)
    return answered and all(any(normalise(alt) in body for alt in group) for group in question.answers)


def precise_citations(question: EvalQuestion, answer: Answer) -> list[bool]:
    """For each citation: does its passage hold a gold alternative (or, free text, a gold article)?"""
    alts = [normalise(alt) for group in question.answers for alt in group]
    flags = []
    for citation in answer.citations:
        passage = normalise(citation.passage or citation.quote)
        if question.free_text:
            flags.append(citation.source in question.articles)
        else:
            flags.append(any(alt in passage for alt in alts))
    return flags


@dataclass
class Record:
    """One question's outcome."""

    id: str
    kind: str
    question: str
    answerable: bool
    answered: bool
    correct: bool
    hit: bool
    text: str
    citations: list[dict[str, Any]]
    precise: list[bool]
    latency_s: float
    first_token_s: float
    error: str = ""


def run_question(pipeline: Pipeline, question: EvalQuestion) -> Record:
    try:
        answer = pipeline.ask(question.question, question.history or None)
        error = ""
    except QAError as exc:
        answer, error = Answer(str(exc), False), str(exc)
    hit = any(p.source in question.articles for p in answer.passages)
    return Record(
        id=question.id, kind=question.kind, question=question.question, answerable=question.answerable,
        answered=answer.answered, correct=is_correct(question, answer.answered, answer.text), hit=hit,
        text=answer.text, citations=[{"number": c.number, "source": c.source, "quote": c.quote}
                                     for c in answer.citations],
        precise=precise_citations(question, answer) if question.answerable else [False] * len(answer.citations),
        latency_s=answer.timings.get("total_s", 0.0), first_token_s=answer.timings.get("first_token_s", 0.0),
        error=error)


def _share(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)  # nearest-rank percentile
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return round(ordered[index], 3)


def summarise(records: Sequence[Record], k: int) -> dict[str, Any]:
    """The metrics of a run (see the module docstring)."""
    answerable = [r for r in records if r.answerable]
    unanswerable = [r for r in records if not r.answerable]
    cited = [flag for r in answerable if r.answered for flag in r.precise]
    correct = [r for r in answerable if r.correct]
    latencies = [r.latency_s for r in records]
    firsts = [r.first_token_s for r in records]
    return {
        "questions": len(records), "answerable": len(answerable), "unanswerable": len(unanswerable), "k": k,
        "hit_rate": _share(sum(r.hit for r in answerable), len(answerable)),
        "accuracy": _share(len(correct), len(answerable)),
        "overall_accuracy": _share(sum(r.correct for r in records), len(records)),
        "citation_precision": _share(sum(cited), len(cited)),
        "citation_coverage": _share(sum(any(r.precise) for r in correct), len(correct)),
        "refusal_rate": _share(sum(not r.answered for r in unanswerable), len(unanswerable)),
        "false_refusal_rate": _share(sum(not r.answered for r in answerable), len(answerable)),
        "latency_median_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p90_s": _percentile(latencies, 0.9),
        "first_token_median_s": round(statistics.median(firsts), 3) if firsts else None,
        "first_token_p90_s": _percentile(firsts, 0.9),
        "errors": sum(bool(r.error) for r in records),
    }


METRIC_LABELS = [
    ("hit_rate", "retrieval hit rate at k"), ("accuracy", "answer accuracy (answerable)"),
    ("citation_precision", "citation precision"), ("citation_coverage", "citation coverage"),
    ("refusal_rate", "refusal rate (unanswerable)"), ("false_refusal_rate", "false-refusal rate (answerable)"),
    ("latency_median_s", "latency median (s)"), ("latency_p90_s", "latency p90 (s)"),
    ("first_token_median_s", "first token median (s)"), ("first_token_p90_s", "first token p90 (s)"),
]


def format_table(runs: dict[str, dict[str, Any]]) -> str:
    """A plain-text table, one column per run.

    >>> print(format_table({"x": {"accuracy": 0.5}}).splitlines()[2])
    answer accuracy (answerable)            0.500
    """
    names = list(runs)
    width = max(len(label) for _, label in METRIC_LABELS) + 2
    lines = ["metric".ljust(width) + "".join(f"{n:>12}" for n in names), "-" * (width + 12 * len(names))]
    for key, label in METRIC_LABELS:
        cells = []
        for name in names:
            value = runs[name].get(key)
            cells.append(f"{'—' if value is None else f'{value:.3f}':>12}")
        if any(runs[n].get(key) is not None for n in names):
            lines.append(label.ljust(width) + "".join(cells))
    return "\n".join(lines)


def records_json(records: Sequence[Record]) -> list[dict[str, Any]]:
    return [asdict(r) for r in records]
