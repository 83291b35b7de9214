"""The support judge: do the quoted sentences answer this question? A score, not a vote.

The lexical checks (:mod:`qa.citations`, :mod:`qa.checks`) ask whether an answer's words are in
the passage it cites. They pass an answer whose words are all there while what the sentence says
is not what was asked: a negation ("could not" for "could"), the same words in another relation
(paid *for* something, not paid *to give it up*), another person, place or time than the one
asked about, or a detail the sentence does not give, answered from the detail beside it.

The judge shows the model the quoted sentences and the question, in a conversation of its own (a
fixed system prompt and a few invented worked cases, of each kind and of answers in other words,
then the case at hand), and reads how likely its next word is "yes" rather than "no": the softmax
of the two words' logits at the last position. It is not shown the answer: the lexical checks
hold the answer to the quotes' words, and the judge holds the quotes to the question, which a
small model judges better than a proposed answer it tends to agree with (docs/quality.md). That
needs one forward pass over the short case and no sampling; the fixed start stays in the judge's
own llama.cpp context, so only the case is evaluated. The answer stands when the score reaches
``Settings.judge_threshold``.

Backends give the score as they can (:class:`Scorer`): llama.cpp in-process reads the logits
directly (:meth:`qa.llm.LlamaCppLLM.yes_probability`); a server is asked for the first token's
log-probabilities, and one that does not give them is asked for a sampled reply, whose YES or NO
counts as 1 or 0 (said once in the log). A judge that cannot score at all (a failing server, a
prompt beyond the context) leaves the answer as the other checks passed it, and says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from .answer import Verdict
from .checks import Check, Draft, below, failed
from .errors import QAError
from .guard import defuse
from .llm import LLM, Message
from .prompt import passage_line

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You check whether sentences from an article answer a question. "
    "Reply yes if the sentences state the answer to this exact question, in these or other words. "
    "Reply no if they do not: if they say the opposite, link the same words in another way, speak of "
    "another person, thing, place or time than the question asks about, or do not give the detail asked for. "
    "Use only the sentences, never what you know. Reply with one word: yes or no."
)

# Invented worked cases (sentences, question, verdict), of each kind the judge must tell apart and
# of answers in other words; they follow the system prompt unchanged, so they are evaluated once
# per process.
EXAMPLES: list[tuple[str, str, str]] = [
    ("The ferry has carried passengers between the two islands since 1962.",
     "Since when has the ferry been running?", "yes"),
    ("The council could not agree on a new timetable for the buses.",
     "What did the council agree on?", "no"),
    ("The bakery paid the town 4,000 euros for the right to use the old mill.",
     "How much did the town pay the bakery for the old mill?", "no"),
    ("In 1910 the mill in Ashford employed 300 workers.",
     "How many workers did the mill employ in 1950?", "no"),
    ("The chess club meets every Tuesday in the library.",
     "At what time does the chess club meet?", "no"),
    ("Repairs to the lighthouse took a year and a half and were finished in spring.",
     "How many months did the lighthouse repairs take?", "yes"),
    ("The orchestra's new conductor, Mira Holt, was born in Oslo.",
     "Where was the orchestra's old conductor born?", "no"),
    ("The new bridge over the river opened to traffic in March 2004 after six years of work.",
     "When did the bridge open to traffic?", "yes"),
    ("Most of the farm's apples are sold at the Saturday market in Lindholm.",
     "Where does the farm sell most of its apples?", "yes"),
    ("The festival was moved indoors because of the storm warning.",
     "Why was the festival cancelled?", "no"),
    ("Tickets for the concert cost 12 pounds for adults.",
     "How much did a child's ticket for the concert cost?", "no"),
    ("The school's choir came second at the regional contest, behind a choir from the coast.",
     "Which place did the school's choir take at the regional contest?", "yes"),
    ("The museum was founded by a retired sailor who gave the city his collection of maps.",
     "Who founded the museum?", "yes"),
]


def case(question: str, quotes: Iterable[str], earlier: str = "") -> str:
    """One case for the judge, as the user's turn: the quoted sentences, then the question.

    >>> print(case("Where does the club meet?", ["The club meets in the library."]))
    Sentences: The club meets in the library.
    Question: Where does the club meet?
    Do the sentences answer this exact question?
    """
    text = " ".join(passage_line(q) for q in quotes)
    context = f"Earlier question: {passage_line(earlier)}\n" if earlier.strip() else ""
    return (f"Sentences: {text}\n{context}Question: {defuse(' '.join(question.split()))}\n"
            "Do the sentences answer this exact question?")


def judge_messages(question: str, quotes: Iterable[str], earlier: str = "") -> list[Message]:
    """The judge's conversation: system prompt, the worked cases, then this case."""
    messages: list[Message] = [{"role": "system", "content": SYSTEM_PROMPT}]
    for sentences, asked, verdict in EXAMPLES:
        messages += [{"role": "user", "content": case(asked, [sentences])},
                     {"role": "assistant", "content": verdict}]
    messages.append({"role": "user", "content": case(question, quotes, earlier)})
    return messages


@runtime_checkable
class Scorer(Protocol):
    """A backend that can say how likely its reply to ``messages`` starts with yes rather than no."""

    def yes_probability(self, messages: Sequence[Message]) -> float | None: ...


def sampled_verdict(reply: str) -> float | None:
    """1.0 for a reply that opens with yes, 0.0 for no, ``None`` for anything else.

    >>> sampled_verdict("Yes."), sampled_verdict(" no"), sampled_verdict("The sentences say")
    (1.0, 0.0, None)
    """
    words = reply.strip().split()
    first = words[0].strip(".,!:;\"'*_`").lower() if words else ""
    return 1.0 if first == "yes" else 0.0 if first == "no" else None


class SupportJudge:
    """Scores drafts with ``llm`` (:meth:`score`) and refuses those below a threshold (:meth:`check`)."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm
        self._said_sampled = False

    def score(self, question: str, quotes: Sequence[str], earlier: str = "") -> float | None:
        """P(the quotes state the answer to the question), or ``None`` when it cannot be judged."""
        messages = judge_messages(question, quotes, earlier)
        try:
            if isinstance(self.llm, Scorer):
                score = self.llm.yes_probability(messages)
                if score is not None:
                    return score
            if not self._said_sampled:
                self._said_sampled = True
                log.warning("The answering model gives no log-probabilities; the support judge counts its sampled "
                            "yes or no as 1 or 0.")
            reply = "".join(self.llm.stream_chat(messages, max_tokens=3, temperature=0.0))
            return sampled_verdict(reply)
        except (ValueError, QAError) as exc:
            log.warning("The support judge could not score an answer (%s); it stands as the other checks passed "
                        "it.", exc)
            return None

    def check(self, threshold: float) -> Check:
        """The ``judge`` check at ``threshold``."""
        def run(draft: Draft) -> Verdict:
            score = self.score(draft.question, [c.quote for c in draft.citations], draft.earlier)
            if score is not None and score < threshold:
                return failed("judge", f"the quoted sentences do not answer the question "
                                       f"(support {below(score, threshold)})", score)
            return Verdict("judge", True, "" if score is not None else "the judge could not score it", score)
        return Check("judge", run)


@dataclass(frozen=True)
class JudgeCase:
    """A hand-made case for measuring the judge: should these quotes pass this answer to this question?"""

    kind: str  # paraphrase (supported), or what is wrong: negation, relation, entity, time, place, unstated
    question: str
    answer: str
    quotes: list[str]
    supported: bool


def load_cases(path: Path) -> list[JudgeCase]:
    """Judge cases from JSON lines (``tests/data/judge-cases.jsonl``); raise naming a malformed line."""
    if not path.is_file():
        raise QAError(f"No judge cases at {path}. Name a JSON-lines file (see tests/data/judge-cases.jsonl).")
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
                out.append(JudgeCase(str(row["kind"]), row["question"], row["answer"], list(row["quotes"]),
                                     bool(row["supported"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise QAError(f"{path}, line {number}: not a judge case ({exc}). Each line needs kind, question, "
                              "answer, quotes and supported.") from exc
    return out


def pass_rates(cases: Sequence[JudgeCase], scores: Sequence[float | None], threshold: float) -> dict[str, float]:
    """The share of cases of each kind the judge gets right at ``threshold`` (and ``all``).

    >>> c = [JudgeCase("negation", "?", "A", ["B"], False), JudgeCase("paraphrase", "?", "A", ["A"], True)]
    >>> pass_rates(c, [0.2, 0.4], 0.5), pass_rates(c, [0.2, 0.4], 0.3)
    ({'negation': 1.0, 'paraphrase': 0.0, 'all': 0.5}, {'negation': 1.0, 'paraphrase': 1.0, 'all': 1.0})
    """
    right: dict[str, list[bool]] = {}
    for c, score in zip(cases, scores, strict=True):
        passes = score is None or score >= threshold
        right.setdefault(c.kind, []).append(passes == c.supported)
    rates = {kind: round(sum(r) / len(r), 3) for kind, r in right.items()}
    every = [x for r in right.values() for x in r]
    return {**rates, "all": round(sum(every) / len(every), 3) if every else 0.0}
