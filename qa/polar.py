"""Yes-or-no questions: the question is a claim to check, not something given.

For "Who won in 2019?" the question's words are given, and the citation check
rightly lets an answer repeat them ("Tom Lund won in 2019 [1]") so long as
what it adds ("Tom Lund") is in the passage. For "Was the 2019 ridership a
record?" the question's words are the very claim in doubt, and a small model
answers by stating it: "The 2019 ferry ridership was a record [1]", or "Yes,
…", from a passage that says "the second-highest in the line's history". Every
word of that answer is in the question or the passage, so the citation check
passes it, and so did the model's own check (:mod:`qa.verify`).

So, for a question whose last sentence opens with an auxiliary verb ("Was…",
"Did…", "Isn't…"; not "Can you tell me who…", which asks who, nor "Was it A
or B?", which asks which):

- the model is asked to answer with what the passages state about it
  (:data:`HINT`, after the question in its prompt): asked that way, it quoted
  "1.2 million riders, the second-highest in the line's history" where it had said
  "a record";
- an answer that says yes, or that restates the question as a statement,
  stands only if its cited passages hold every key word of the question (a
  past tense for the question's verb: "won" for "did … win"): the passages
  must state the claim, not just share its subject (:func:`holds_claim`);
- an answer that restates the question as a denial ("No, it was not a
  record") stands only if one sentence of its cited passages holds every
  key word of the question and a negation ("Ruiz did not attend the
  opening"): a passage that is silent on a claim does not deny it.

:func:`unsupported` applies these. An answer that states something the
question does not ("1.2 million, the second-highest") is checked like any
other. Pure and deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .citations import bare_claim, key_terms, related
from .text import DENIAL, OPENER, last_sentence, sentence_spans, stem

HINT = "(Answer with what the passages state about it.)"

_AUXILIARIES = ("is are was were am do does did has have had can could will would should isn't aren't wasn't "
                "weren't don't doesn't didn't hasn't haven't hadn't can't couldn't won't wouldn't shouldn't").split()
_POLAR = re.compile(rf"{OPENER}(?:{'|'.join(map(re.escape, _AUXILIARIES))})\b",
                    re.IGNORECASE)
# "Can you tell me who won?", "Do you know when…": a question about who or when, asked politely
_EMBEDDED = re.compile(r"^\W*(?:can|could|would|will|do|did)\s+(?:you|anyone|somebody|someone)\s+"
                       r"(?:please\s+)?(?:tell|list|name|give|explain|say|show|describe|know|find|summari[sz]e)\b",
                       re.IGNORECASE)
_ALTERNATIVE = re.compile(r"\bor\b(?!\s+not\b)", re.IGNORECASE)
_YES = re.compile(r"^\W*(?:yes|yeah|indeed|correct|true|that is right|that's right)\b", re.IGNORECASE)
# words of a question that are about asking, not about the claim: "Is it true that…" (stems, as key terms are)
_ASKING = frozenset(stem(w) for w in "yes yeah true correct right fact case really actually know tell think".split())
# the past tenses a passage uses for a question's "did … win" (stems, as key terms are)
_IRREGULAR = {stem(present): stem(past) for present, past in {
    "become": "became", "begin": "began", "break": "broke", "bring": "brought", "build": "built", "buy": "bought",
    "choose": "chose", "come": "came", "fall": "fell", "fight": "fought", "find": "found", "flee": "fled",
    "get": "got", "give": "gave", "hold": "held", "keep": "kept", "know": "knew", "lead": "led", "leave": "left",
    "lose": "lost", "make": "made", "meet": "met", "pay": "paid", "rise": "rose", "run": "ran", "say": "said",
    "see": "saw", "sell": "sold", "send": "sent", "speak": "spoke", "spend": "spent", "stand": "stood",
    "steal": "stole", "take": "took", "tell": "told", "think": "thought", "win": "won", "write": "wrote",
}.items()}


def is_polar(question: str) -> bool:
    """Does the question's last sentence ask yes or no?

    >>> is_polar("Was that a bargain?"), is_polar("And did Mr. Lund win the regatta?"), is_polar("Isn’t she mayor?")
    (True, True, True)
    >>> is_polar("Is the HRC a club of the FLA? What is its role?"), is_polar("Who won?")
    (False, False)
    >>> is_polar("Can you tell me who won?"), is_polar("Was the winner Lund or Ruiz?")
    (False, False)
    """
    text = question.strip().replace("’", "'")
    last = last_sentence(text)
    return (_POLAR.match(last) is not None and not _EMBEDDED.match(last)
            and not _ALTERNATIVE.search(last))


def with_hint(question: str) -> str:
    """The question as the model sees it: a yes-or-no question asks for what the passages state.

    >>> with_hint("Was the ridership a record?")
    'Was the ridership a record? (Answer with what the passages state about it.)'
    >>> with_hint("Who won?")
    'Who won?'
    """
    return f"{question} {HINT}" if is_polar(question) else question


def _claim_words(question: str) -> tuple[set[str], set[str]]:
    words, numbers = key_terms(question)
    # "Didn't Lund win?" asks whether Lund won: its "didn't" is the asking, not the claim
    return {w for w in words if w not in _ASKING and not re.search(r"n['’]t$", w)}, numbers


def restates(question: str, answer: str) -> bool:
    """True when the answer adds no key word or number to the question (markers aside).

    >>> restates("Was the 2019 ridership a record?", "Yes, the 2019 ridership was a record [1].")
    True
    >>> restates("Was the 2019 ridership a record?", "The ridership, 1.2 million, was the second-highest [2].")
    False
    """
    words, numbers = key_terms(bare_claim(answer))
    asked_words, asked_numbers = key_terms(question)
    new_words = {w for w in words - asked_words if w not in _ASKING
                 and not any(related(w, a) for a in asked_words)}
    return not new_words and not (numbers - asked_numbers)


def holds_claim(question: str, texts: Sequence[str]) -> bool:
    """Do the texts hold every key word and number of the question's claim?

    Words match in families ("designed", "designer"; "win", "won"), as in :func:`qa.citations.off_subject`.

    >>> texts = ["Tom Lund won the regatta by 55 seconds; attendance was the second-highest ever."]
    >>> holds_claim("Did Tom Lund win the regatta?", texts)
    True
    >>> holds_claim("Is it true that attendance was a record?", texts)
    False
    """
    asked_words, asked_numbers = _claim_words(question)
    words, numbers = key_terms(" ".join(texts))
    return asked_numbers <= numbers and all(
        any(related(a, w) for w in words) or _IRREGULAR.get(a, "") in words for a in asked_words)


def unsupported(question: str, answer: str, texts: Sequence[str]) -> bool:
    """True when an answer to a yes-or-no question does not stand (see the module's note).

    ``texts`` are the passages the answer cites.

    >>> texts = ["Ridership was 1.2 million, the second-highest in the line's history."]
    >>> unsupported("Was ridership a record?", "Yes, ridership was a record [1].", texts)
    True
    >>> unsupported("Was ridership a record?", "Ridership was a record [1].", texts)
    True
    >>> unsupported("Was ridership the second-highest?", "Ridership was the second-highest [1].", texts)
    False
    >>> unsupported("Was ridership the second-highest?", "No, ridership was not the second-highest [1].", texts)
    True
    >>> unsupported("Was ridership a record?", "It was 1.2 million, the second-highest [1].", texts)
    False
    >>> unsupported("Did Ruiz attend?", "No, Ruiz did not attend [1].", ["Ruiz did not attend. It rained."])
    False
    """
    answer = bare_claim(answer)
    restated = restates(question, answer)
    if _YES.match(answer) or (restated and not DENIAL.search(answer)):
        return not holds_claim(question, texts)
    if restated:  # a denial
        sentences = [text[a:b] for text in texts for a, b in sentence_spans(text)]
        return not any(DENIAL.search(s) and holds_claim(question, [s]) for s in sentences)
    return False
