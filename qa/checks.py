"""The checks an answer must pass, behind one interface: a name, and a verdict with its reason.

Every way an answer can be refused has a name from :data:`REFUSERS`, and ``Answer.refused_by``
holds the one that refused it, with ``Answer.reason`` in a short sentence. Three checks look at
what retrieval found before the model is asked (``retrieval``, ``numbers``, ``opposite``);
``model`` is the model's own reply that the passages do not say; the rest read the model's
answer, in the order of :func:`answer_checks`, and the first that fails refuses it. Each check
but ``model`` can be switched off alone (``Settings.without``; ``qa eval --without NAME``),
which is how docs/quality.md measures what each one earns.

A check is a :class:`Check`: its name and a function from a :class:`Draft` (the answer with its
citations and the passages it was made from) to a :class:`Verdict`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .answer import Citation, Verdict
from .citations import off_subject
from .expect import mismatch
from .polar import is_polar, unsupported
from .prompt import strip_markers
from .store import Passage
from .text import last_sentence, negates, with_apostrophes
from .times import times, unnamed_times

REFUSERS: dict[str, str] = {
    "retrieval": "no passage found is close enough to the question",
    "numbers": "a number the question names is in none of the passages found",
    "opposite": "what the model would read holds the opposite of a word of the question (\"least\" for \"most\") "
                "and never the word",
    "model": "the model replied that the passages do not say",
    "citations": "no sentence of the reply is supported by a passage it cites",
    "guard": "every supported sentence follows or repeats an instruction found in a passage",
    "kind": "the answer is of another kind than asked (a share for 'how many', a count for 'what share', "
            "no number for 'how much')",
    "subject": "the quoted sentences share no word with the question",
    "polar": "a yes-or-no question answered with a yes, a no or a restatement its passages do not state",
    "time": "a year or decade the question names dates none of the quoted sentences",
    "negation": "the question asks what is not so, and none of the quoted sentences negates anything",
    "judge": "the support judge finds that the quoted sentences do not state this answer to the question",
    "doubt": "the answering model itself found NOT FOUND a likely reply to the passages it answered from",
}
"""Every name ``Answer.refused_by`` can hold, with what it means."""

SWITCHABLE = tuple(name for name in REFUSERS if name != "model")
"""The names ``Settings.without`` (``qa eval --without``) accepts."""


@dataclass
class Draft:
    """An answer on its way out: its text with markers, its citations, and what it was made from.

    ``question`` is the standalone question; ``query`` the search text (a follow-up that could not be
    rewritten carries the earlier question in it); ``passages`` those the model read, and
    ``retrieved`` all those found.
    """

    question: str
    query: str
    text: str
    citations: list[Citation]
    passages: Sequence[Passage]
    retrieved: Sequence[Passage] = ()
    article: Callable[[str], list[Passage]] = field(default=lambda _: [])  # every passage of an article

    def cited(self) -> list[Passage]:
        """The passage of each citation, in order."""
        return [self.passages[c.number - 1] for c in self.citations]

    @property
    def earlier(self) -> str:
        """The conversation a follow-up needs, when it could not be rewritten ("" otherwise)."""
        q, query = self.question, self.query
        return query[: -len(q)].strip() if query != q and query.endswith(q) else ""


@dataclass(frozen=True)
class Check:
    """A named check of drafts."""

    name: str
    run: Callable[[Draft], Verdict]

    def __call__(self, draft: Draft) -> Verdict:
        return self.run(draft)


def passed(check: str) -> Verdict:
    return Verdict(check, True)


def failed(check: str, reason: str, score: float | None = None) -> Verdict:
    return Verdict(check, False, reason, score)


def below(value: float, limit: float) -> str:
    """``value < limit`` for a reason, with at least two decimals and as many as it takes to tell them apart.

    >>> below(0.05, 0.1), below(0.0996, 0.1), below(-0.001, 0.0)
    ('0.05 < 0.10', '0.0996 < 0.1000', '-0.001 < 0.000')
    """
    places = next((n for n in range(2, 10) if round(value, n) != round(limit, n)), None)
    if places is None:
        return f"{value!r} < {limit!r}"
    return f"{value:.{places}f} < {limit:.{places}f}"


def run_checks(checks: Sequence[Check], draft: Draft, audit: bool = False) -> list[Verdict]:
    """The verdicts of ``checks`` on ``draft``, up to the first that fails (all of them with ``audit``).

    >>> ok = Check("subject", lambda d: passed("subject"))
    >>> no = Check("kind", lambda d: failed("kind", "a share where a count was asked"))
    >>> draft = Draft("How many?", "How many?", "Half [1].", [], [])
    >>> [v.check for v in run_checks([no, ok], draft)], [v.check for v in run_checks([no, ok], draft, audit=True)]
    (['kind'], ['kind', 'subject'])
    """
    verdicts = []
    for check in checks:
        verdict = check(draft)
        verdicts.append(verdict)
        if not verdict.passed and not audit:
            break
    return verdicts


def first_failure(verdicts: Sequence[Verdict]) -> Verdict | None:
    """The verdict that refuses, if any."""
    return next((v for v in verdicts if not v.passed), None)


def check_names(names: Sequence[str] | str) -> frozenset[str]:
    """Validate check names (a list, or one comma-separated string); raise ``ValueError`` naming the choices.

    >>> sorted(check_names("judge,time"))
    ['judge', 'time']
    >>> check_names(["speed"])
    Traceback (most recent call last):
    ...
    ValueError: No check is called 'speed'. The checks are: retrieval, numbers, opposite, citations, guard, kind, \
subject, polar, time, negation, judge, doubt.
    """
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    out = frozenset(n.strip() for n in names)
    for name in sorted(out):
        if name not in SWITCHABLE:
            raise ValueError(f"No check is called {name!r}. The checks are: {', '.join(SWITCHABLE)}.")
    return out


def _kind(draft: Draft) -> Verdict:
    reason = mismatch(draft.question, strip_markers(draft.text))
    return failed("kind", reason) if reason else passed("kind")


def _subject(draft: Draft) -> Verdict:
    # the question with its search text, which holds the previous question of a follow-up
    if off_subject(f"{draft.question} {draft.query}", draft.citations, draft.passages):
        return failed("subject", "the quoted sentences share no word with the question")
    return passed("subject")


def _polar(draft: Draft) -> Verdict:
    if is_polar(draft.question) and unsupported(draft.question, draft.text, [p.text for p in draft.cited()]):
        return failed("polar", "the cited passages do not state the yes or no this answer gives")
    return passed("polar")


def _time(draft: Draft) -> Verdict:
    if not times(draft.question):
        return passed("time")
    cited = list(zip((c.quote for c in draft.citations), draft.cited(), strict=True))
    articles = {a: draft.article(a) for a in {p.article_id for _, p in cited}}
    missing = unnamed_times(draft.question, cited, articles)
    if missing:
        return failed("time", f"the quoted sentences are not dated {', '.join(missing)}, as the question asks")
    return passed("time")


# a question about a cause, whose answer need not negate: "why", "how come", "for what reason"
_WHY = re.compile(r"\b(?:why|how come|for what reason)\b|\bwhat (?:is|was|are|were) the reasons?\b", re.IGNORECASE)


def _negation(draft: Draft) -> Verdict:
    """A question that asks what is not so ("which ferries never sailed?") is answered only from a
    quoted sentence that negates something ("never", "not", "refused", ...): a sentence that negates
    nothing states what is so, which answers the question without its "not". Only the question's
    last sentence counts; a "why" question (whose answer is a cause) and a yes-or-no question (left
    to ``polar``) pass.

    >>> from qa.answer import Citation
    >>> def quoting(quote, question="Which ferry never sailed?"):
    ...     return Draft(question, "", "The Gull [1].", [Citation(1, "Port", "a.txt", "x", quote)], [])
    >>> _negation(quoting("The Gull never left port.")).passed, _negation(quoting("The Gull sailed in May.")).passed
    (True, False)
    >>> storm, noon = "A storm closed the harbour.", "It left at noon."
    >>> why = _negation(quoting(storm, "Why didn’t the ferry sail?")).passed
    >>> why, _negation(quoting(noon, "Wasnt it late?")).passed
    (True, True)
    """
    asked = with_apostrophes(last_sentence(draft.question))
    if not negates(asked, strictly=True) or _WHY.search(asked) or is_polar(asked) \
            or any(negates(c.quote) for c in draft.citations):
        return passed("negation")
    return failed("negation", REFUSERS["negation"])


LEXICAL_CHECKS = [Check("kind", _kind), Check("subject", _subject), Check("polar", _polar), Check("time", _time),
                  Check("negation", _negation)]
"""The checks of a drafted answer that read words only, in the order they run (the judge comes last)."""
