"""The support judge: do the quoted sentences state this answer to this question? A score, not a vote.

The lexical checks (:mod:`qa.citations`, :mod:`qa.checks`) ask whether an answer's words are in
the passage it cites. They pass an answer whose words are all there while what the sentence says
is not what was asked: a negation ("could not" for "could"), the same words in another relation
(paid *for* something, not paid *to give it up*), another person, place or time than the one
asked about, or a detail the sentence does not give, answered from the detail beside it.

The judge shows the model the question, the answer and the quoted sentences, in a conversation
of its own (a fixed system prompt and a few invented worked cases, one of each kind, then the case
at hand), and reads how likely its next word is "yes" rather than "no": the softmax of the two
words' logits at the last position. That needs one forward pass over the short case and no
sampling; the fixed start stays in the judge's own llama.cpp context, so only the case is
evaluated. The answer stands when the score reaches ``Settings.judge_threshold``.

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
from .checks import Check, Draft, failed
from .errors import QAError
from .guard import defuse
from .llm import LLM, Message
from .prompt import passage_line, strip_markers

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You check answers against their sources. You get sentences from an article, a question and an answer. "
    "Reply yes if the sentences state that this is the answer to this question, in these or other words. "
    "Reply no if they do not: if they say the opposite, link the same words in another way, speak of "
    "another person, thing, place or time than the question asks about, or do not give the detail asked for. "
    "Use only the sentences, never what you know. Reply with one word: yes or no."
)

# Invented worked cases, one of each kind the judge must tell apart; they follow the system prompt
# unchanged, so they are evaluated once per process.
EXAMPLES: list[tuple[str, str, str, str]] = [
    ("The ferry has carried passengers between the two islands since 1962.",
     "Since when has the ferry been running?", "Since 1962.", "yes"),
    ("The council could not agree on a new timetable for the buses.",
     "What did the council agree on?", "A new timetable for the buses.", "no"),
    ("The bakery paid the town 4,000 euros for the right to use the old mill.",
     "How much did the town pay the bakery for the old mill?", "4,000 euros.", "no"),
    ("In 1910 the mill in Ashford employed 300 workers.",
     "How many workers did the mill employ in 1950?", "300 workers.", "no"),
    ("The chess club meets every Tuesday in the library.",
     "At what time does the chess club meet?", "Every Tuesday.", "no"),
    ("Repairs to the lighthouse took a year and a half and were finished in spring.",
     "How many months did the lighthouse repairs take?", "18 months.", "yes"),
    ("The orchestra's new conductor, Mira Holt, was born in Oslo.",
     "Where was the orchestra's old conductor born?", "Oslo.", "no"),
]


def case(question: str, answer: str, quotes: Iterable[str], earlier: str = "") -> str:
    """One case for the judge, as the user's turn: the question first, then the answer, then the quotes.

    >>> print(case("Where does the club meet?", "In the library [1].", ["The club meets in the library."]))
    Question: Where does the club meet?
    Proposed answer: In the library.
    Sentences: The club meets in the library.
    Do the sentences state the proposed answer to this exact question?
    """
    text = " ".join(passage_line(q) for q in quotes)
    context = f"Earlier question: {passage_line(earlier)}\n" if earlier.strip() else ""
    return (f"{context}Question: {defuse(' '.join(question.split()))}\n"
            f"Proposed answer: {passage_line(strip_markers(answer))}\nSentences: {text}\n"
            "Do the sentences state the proposed answer to this exact question?")


def judge_messages(question: str, answer: str, quotes: Iterable[str], earlier: str = "") -> list[Message]:
    """The judge's conversation: system prompt, the worked cases, then this case."""
    messages: list[Message] = [{"role": "system", "content": SYSTEM_PROMPT}]
    for sentences, asked, given, verdict in EXAMPLES:
        messages += [{"role": "user", "content": case(asked, given, [sentences])},
                     {"role": "assistant", "content": verdict}]
    messages.append({"role": "user", "content": case(question, answer, quotes, earlier)})
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

    def score(self, question: str, answer: str, quotes: Sequence[str], earlier: str = "") -> float | None:
        """P(the quotes state this answer to the question), or ``None`` when it cannot be judged."""
        messages = judge_messages(question, answer, quotes, earlier)
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
            score = self.score(draft.question, draft.text, [c.quote for c in draft.citations], draft.earlier)
            if score is not None and score < threshold:
                return failed("judge", f"the quoted sentences do not state this answer to the question "
                                       f"(support {score:.2f} < {threshold:.2f})", score)
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
