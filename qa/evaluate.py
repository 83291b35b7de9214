"""Measuring answer quality: ``qa eval FILE``.

A question set is JSON lines::

    {"id": "q1", "question": "...", "answers": [["12.5"], ["second-longest", "second longest"]],
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
- median and 90th percentile of latency and of time to first token; the median time to the first
  word of an answered question, and to a refusal (:func:`latency_ratios` sets a run against another);
- which check refused how many answerable and unanswerable questions (``refused_by``).

With the checks audited (``Settings.audit``), a record holds every check's verdict on the answer
and the support judge's score, so :func:`judge_curve` can show what any threshold would do (and
:func:`doubt_curve` for the ``doubt`` check), and
:func:`check_table` what each check alone refuses. :func:`retrieval_figures` needs no model: is a
gold answer inside the passages given to the model, and at which rank.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .answer import Answer
from .errors import QAError
from .pipeline import Pipeline
from .store import Passage


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

    >>> normalise("About 1,204,310  Rowers’ VOTES")
    "about 1204310 rowers' votes"
    """
    text = text.lower().replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    text = re.sub(r"(?<=\d)[,\u00a0\u202f ](?=\d{3}\b)", "", text)
    return " ".join(text.split())


def is_correct(question: EvalQuestion, answered: bool, text: str) -> bool:
    """Apply the scoring rule.

    >>> q = EvalQuestion("1", "?", [["12.5"], ["second-longest", "second longest"]], ["a"])
    >>> is_correct(q, True, "The bridge is 12.5 km, the second longest [1].")
    True
    >>> is_correct(q, True, "The bridge is 12.5 km [1]."), is_correct(q, False, "12.5 second longest")
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
    refused_by: str = ""
    reason: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)
    draft: str = ""  # the text the checks refused
    draft_correct: bool = False  # would the refused text have been scored correct?
    right_article: bool = False  # answered, citing a passage of a gold article
    readings: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def judge_score(self) -> float | None:
        return next((c.get("score") for c in self.checks if c.get("check") == "judge"), None)


def run_question(pipeline: Pipeline, question: EvalQuestion) -> Record:
    try:
        answer = pipeline.ask(question.question, question.history or None)
        error = ""
    except QAError as exc:
        answer, error = Answer(str(exc), False), str(exc)
    hit = any(p.source in question.articles for p in answer.passages)
    draft_correct = bool(answer.draft) and question.answerable and is_correct(question, True, answer.draft)
    return Record(
        id=question.id, kind=question.kind, question=question.question, answerable=question.answerable,
        answered=answer.answered, correct=is_correct(question, answer.answered, answer.text), hit=hit,
        text=answer.text, citations=[{"number": c.number, "source": c.source, "quote": c.quote}
                                     for c in answer.citations],
        precise=precise_citations(question, answer) if question.answerable else [False] * len(answer.citations),
        latency_s=answer.timings.get("total_s", 0.0), first_token_s=answer.timings.get("first_token_s", 0.0),
        error=error, refused_by=answer.refused_by, reason=answer.reason,
        checks=[v.to_dict() for v in answer.checks], draft=answer.draft, draft_correct=draft_correct,
        right_article=answer.answered and any(c.source in question.articles for c in answer.citations),
        readings=int(answer.timings.get("readings", 0)), timings=dict(answer.timings))


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
    first_words = [r.first_token_s for r in records if r.answered]
    refusals = [r.latency_s for r in records if not r.answered and not r.error]
    return {
        "questions": len(records), "answerable": len(answerable), "unanswerable": len(unanswerable), "k": k,
        "hit_rate": _share(sum(r.hit for r in answerable), len(answerable)),
        "accuracy": _share(len(correct), len(answerable)),
        "overall_accuracy": _share(sum(r.correct for r in records), len(records)),
        "citation_precision": _share(sum(cited), len(cited)),
        "citation_coverage": _share(sum(any(r.precise) for r in correct), len(correct)),
        "right_article": _share(sum(r.right_article for r in answerable), len(answerable)),
        "refusal_rate": _share(sum(not r.answered for r in unanswerable), len(unanswerable)),
        "false_refusal_rate": _share(sum(not r.answered for r in answerable), len(answerable)),
        "latency_median_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p90_s": _percentile(latencies, 0.9),
        "first_token_median_s": round(statistics.median(firsts), 3) if firsts else None,
        "first_token_p90_s": _percentile(firsts, 0.9),
        "first_word_median_s": round(statistics.median(first_words), 3) if first_words else None,
        "refusal_median_s": round(statistics.median(refusals), 3) if refusals else None,
        "errors": sum(bool(r.error) for r in records),
        "refused_by": {
            "answerable": dict(Counter(r.refused_by for r in answerable if not r.answered and r.refused_by)),
            "unanswerable": dict(Counter(r.refused_by for r in unanswerable if not r.answered and r.refused_by))},
    }


def latency_ratios(run: dict[str, Any], yardstick: dict[str, Any]) -> dict[str, float | None]:
    """How long ``run`` took against ``yardstick`` (two :func:`summarise` results of one session).

    ``median`` and ``p90`` of all questions' latency; ``first_word``, the median time to the first
    word of an answered question; ``refusal``, the median time to a refusal against the yardstick's
    median latency (what a user waits for an answer of any kind). ``None`` where either lacks the
    figure or the yardstick's is zero.

    >>> run = {"latency_median_s": 6.0, "latency_p90_s": 9.0, "first_word_median_s": 2.0, "refusal_median_s": 4.0}
    >>> latency_ratios(run, {"latency_median_s": 12.0, "latency_p90_s": 10.0, "first_word_median_s": 8.0})
    {'median': 0.5, 'p90': 0.9, 'first_word': 0.25, 'refusal': 0.333}
    """
    def ratio(top: Any, bottom: Any) -> float | None:
        return round(top / bottom, 3) if isinstance(top, (int, float)) and isinstance(bottom, (int, float)) \
            and bottom > 0 else None

    return {"median": ratio(run.get("latency_median_s"), yardstick.get("latency_median_s")),
            "p90": ratio(run.get("latency_p90_s"), yardstick.get("latency_p90_s")),
            "first_word": ratio(run.get("first_word_median_s"), yardstick.get("first_word_median_s")),
            "refusal": ratio(run.get("refusal_median_s"), yardstick.get("latency_median_s"))}


METRIC_LABELS = [
    ("hit_rate", "retrieval hit rate at k"), ("accuracy", "answer accuracy (answerable)"),
    ("right_article", "right article cited (answerable)"),
    ("citation_precision", "citation precision"), ("citation_coverage", "citation coverage"),
    ("refusal_rate", "refusal rate (unanswerable)"), ("false_refusal_rate", "false-refusal rate (answerable)"),
    ("latency_median_s", "latency median (s)"), ("latency_p90_s", "latency p90 (s)"),
    ("first_token_median_s", "first token median (s)"), ("first_token_p90_s", "first token p90 (s)"),
    ("first_word_median_s", "first word of answers median (s)"),
    ("refusal_median_s", "refusal median (s)"),
]


def format_table(runs: dict[str, dict[str, Any]]) -> str:
    """A plain-text table, one column per run.

    >>> print(format_table({"x": {"accuracy": 0.5}}).splitlines()[2])
    answer accuracy (answerable)             0.500
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


def refused_at(record: Record, threshold: float) -> bool:
    """Would this answer be refused with the support judge at ``threshold``? (An audited record.)

    Refused by another check, or by the model, stays refused; an answer the judge scored below the
    threshold is refused, and one it refused at a higher threshold is answered with its draft.
    """
    others = [c for c in record.checks if c.get("check") != "judge"]
    if not record.answered and record.refused_by != "judge":
        return True
    if any(not c.get("passed") for c in others):
        return True
    score = record.judge_score
    return score is not None and score < threshold


def judge_curve(records: Sequence[Record], thresholds: Sequence[float]) -> list[dict[str, float | None]]:
    """For each threshold: accuracy, refusal and false-refusal rates had the judge used it.

    Exact for a run whose judge refuses nothing (threshold 0): a judge's refusal is final, so the
    answers it would refuse are the same answers. An answer the judge refused in the run counts as
    its draft when a lower threshold would pass it.

    >>> ok = Record("1", "single", "?", True, True, True, True, "A [1].", [], [True], 1.0, 0.5,
    ...             checks=[{"check": "judge", "passed": True, "score": 0.9}])
    >>> bad = Record("2", "unanswerable", "?", False, True, False, True, "B [1].", [], [False], 1.0, 0.5,
    ...              checks=[{"check": "judge", "passed": True, "score": 0.2}])
    >>> [(c["threshold"], c["refusal_rate"], c["false_refusal_rate"]) for c in judge_curve([ok, bad], [0.0, 0.5])]
    [(0.0, 0.0, 0.0), (0.5, 1.0, 0.0)]
    """
    return _curve(records, thresholds, refused_at)


def doubt_curve(records: Sequence[Record], thresholds: Sequence[float]) -> list[dict[str, float | None]]:
    """For each threshold: accuracy, refusal and false-refusal rates had the ``doubt`` check used it.

    Exact for a run whose doubt refuses nothing (threshold 1): its refusal is final and it runs
    last, so the answers it would refuse are the same answers; one it refused in the run counts as
    its draft when a higher threshold would pass it.

    >>> ok = Record("1", "single", "?", True, True, True, True, "A [1].", [], [True], 1.0, 0.5,
    ...             checks=[{"check": "doubt", "passed": True, "score": 0.02}])
    >>> bad = Record("2", "unanswerable", "?", False, True, False, True, "B [1].", [], [False], 1.0, 0.5,
    ...              checks=[{"check": "doubt", "passed": True, "score": 0.4}])
    >>> [(c["threshold"], c["refusal_rate"], c["false_refusal_rate"]) for c in doubt_curve([ok, bad], [1.0, 0.3])]
    [(1.0, 0.0, 0.0), (0.3, 1.0, 0.0)]
    """
    def refused(r: Record, t: float) -> bool:
        score = next((c.get("score") for c in r.checks if c.get("check") == "doubt"), None)
        if not r.answered and r.refused_by != "doubt":
            return True
        return score is not None and score >= t

    return _curve(records, thresholds, refused)


def _curve(records: Sequence[Record], thresholds: Sequence[float],
           refused: Callable[[Record, float], bool]) -> list[dict[str, float | None]]:
    """Accuracy, refusal and false-refusal rates at each threshold, ``refused(record, t)`` saying
    which records a check at ``t`` refuses; a kept answer it refused in the run counts as its draft."""
    answerable = [r for r in records if r.answerable]
    unanswerable = [r for r in records if not r.answerable]
    out: list[dict[str, float | None]] = []
    for t in thresholds:
        kept = [r for r in answerable if not refused(r, t)]
        out.append({"threshold": t,
                    "accuracy": _share(sum(r.correct if r.answered else r.draft_correct for r in kept),
                                       len(answerable)),
                    "refusal_rate": _share(sum(refused(r, t) for r in unanswerable), len(unanswerable)),
                    "false_refusal_rate": _share(len(answerable) - len(kept), len(answerable))})
    return out


def check_table(records: Sequence[Record], threshold: float | None = None) -> dict[str, dict[str, int]]:
    """For each check, what it refuses, and what it alone refuses (no other check, nor the model, would).

    ``unanswerable``/``answerable``: the refusals it makes of each; ``alone_…``: those only it makes
    (what switching it off would answer), of which ``would_be_correct`` had the answer right. Read
    from audited records; with ``threshold``, the judge counts as refusing below it.
    """
    def fails(c: dict[str, Any]) -> bool:
        if c.get("check") == "judge" and threshold is not None:
            score = c.get("score")
            return score is not None and score < threshold
        return not c.get("passed")

    table: dict[str, dict[str, int]] = {}
    for r in records:
        if not r.answered and r.refused_by in ("model", "retrieval", "numbers", "opposite", "citations", "guard"):
            failing = [r.refused_by]
        else:
            failing = [str(c.get("check")) for c in r.checks if fails(c)]
        for name in failing:
            table.setdefault(name, {"unanswerable": 0, "answerable": 0, "would_be_correct": 0,
                                    "alone_unanswerable": 0, "alone_answerable": 0})
            row = table[name]
            row["answerable" if r.answerable else "unanswerable"] += 1
            if len(failing) == 1:
                row["alone_answerable" if r.answerable else "alone_unanswerable"] += 1
                if r.answerable and r.draft_correct:
                    row["would_be_correct"] += 1
    return table


@dataclass
class RetrievalRecord:
    """Where retrieval put a gold answer for one question: the rank of the first passage that, with
    those before it, holds an alternative of every answer group (0: not within k)."""

    id: str
    rank: int
    article_rank: int  # rank of the first passage of a gold article (0: none)
    in_read: bool = False  # the gold answer is in what the model reads first (Pipeline.reading)
    read_tokens: int = 0  # the estimated tokens of what it reads first
    # the gold answer is in what it reads after refusing that (Pipeline.rereading, with read_on; else
    # the first reading again), and that reading's estimated tokens
    in_reread: bool = False
    reread_tokens: int = 0


def answer_rank(question: EvalQuestion, passages: Sequence[Passage]) -> int:
    """The smallest r such that the first r passages hold every answer group (0: none do).

    >>> q = EvalQuestion("1", "?", [["1962"], ["ferry"]], ["a.txt"])
    >>> ps = [Passage("x", "The bus began in 1962.", "a", "T", "a.txt", 0, 9),
    ...       Passage("y", "The ferry too.", "a", "T", "a.txt", 9, 20)]
    >>> answer_rank(q, ps), answer_rank(q, ps[:1])
    (2, 0)
    """
    groups = [[normalise(alt) for alt in group] for group in question.answers]
    found: set[int] = set()
    for rank, passage in enumerate(passages, 1):
        text = normalise(passage.text)
        found |= {i for i, group in enumerate(groups) if any(alt in text for alt in group)}
        if len(found) == len(groups):
            return rank
    return 0


def retrieval_figures(records: Sequence[RetrievalRecord], k: int, first: int) -> dict[str, Any]:
    """Answer-in-passages at ``first`` (what the model reads first) and at ``k``, mean reciprocal rank,
    and the ranks' histogram."""
    n = len(records)
    return {"questions": n, "k": k, "first": first,
            f"answer_in_first_{first}": _share(sum(0 < r.rank <= first for r in records), n),
            "answer_in_k": _share(sum(r.rank > 0 for r in records), n),
            "answer_in_read": _share(sum(r.in_read for r in records), n),
            "median_read_tokens": statistics.median(r.read_tokens for r in records) if n else None,
            "answer_in_reread": _share(sum(r.in_reread for r in records), n),
            "median_reread_tokens": statistics.median(r.reread_tokens for r in records) if n else None,
            "article_in_k": _share(sum(r.article_rank > 0 for r in records), n),
            "mrr": round(sum(1 / r.rank for r in records if r.rank) / n, 4) if n else None,
            "ranks": dict(sorted(Counter(r.rank for r in records).items()))}
