"""Yes-or-no questions: the question is a claim to check, not something given.

For "Who won in 2020?" the question's words are given, and the citation check
rightly lets an answer repeat them ("Luis Arce won in 2020 [1]") so long as
what it adds ("Luis Arce") is in the passage. For "Was the 2020 turnout a
record?" the question's words are the very claim in doubt, and a small model
answers by stating it: "The 2020 election turnout was a record [1]", or "Yes,
…", from a passage that says "the second-highest in Bolivia's history". Every
word of that answer is in the question or the passage, so the citation check
passes it, and so did the model's own check (:mod:`qa.verify`).

So, for a question that opens with an auxiliary verb ("Was…", "Did…",
"Is…"):

- the model is asked to answer with what the passages state about it
  (:data:`HINT`, after the question in its prompt): asked that way, it quoted
  "88.4 percent, the second-highest in Bolivia's history" where it had said
  "a record";
- an answer that says yes must find every key word of the question in the
  passages it cites (:func:`unsupported_yes`): the passages must state the
  claim, not just share its subject;
- any other answer that adds nothing to the question ("No, it was not a
  record") only restates the claim or its denial, which no passage can be
  checked for, and is refused (:func:`restates`).

:func:`unsupported` applies both. An answer that states something the question
does not ("88.4 percent, the second-highest") is checked like any other. Pure
and deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .citations import _related, key_terms

HINT = "(Answer with what the passages state about it.)"

_AUXILIARIES = ("is are was were am do does did has have had can could will would shall should may might must "
                "isn't aren't wasn't weren't don't doesn't didn't hasn't haven't hadn't can't couldn't won't "
                "wouldn't shouldn't").split()
_POLAR = re.compile(rf"^\W*(?:(?:and|so|but|then|ok|okay)\W+)?(?:{'|'.join(map(re.escape, _AUXILIARIES))})\b",
                    re.IGNORECASE)
_YES = re.compile(r"^\W*(?:yes|yeah|indeed|correct|true|that is right|that's right)\b", re.IGNORECASE)
_ANSWER_WORDS = frozenset("yes yeah indeed correct true right".split())


def is_polar(question: str) -> bool:
    """Does the question's last sentence ask yes or no?

    >>> is_polar("Was that a record?"), is_polar("And did the MAS win the Senate?")
    (True, True)
    >>> is_polar("Is the COB part of the MAS? What is its status?"), is_polar("Who won?")
    (False, False)
    """
    sentences = [s for s in re.split(r"(?<=[?.!])\s+", question.strip()) if s.strip()]
    return bool(sentences) and _POLAR.match(sentences[-1]) is not None


def with_hint(question: str) -> str:
    """The question as the model sees it: a yes-or-no question asks for what the passages state.

    >>> with_hint("Was the turnout a record?")
    'Was the turnout a record? (Answer with what the passages state about it.)'
    >>> with_hint("Who won?")
    'Who won?'
    """
    return f"{question} {HINT}" if is_polar(question) else question


def restates(question: str, answer: str) -> bool:
    """True when the answer to a yes-or-no question adds no key word or number to it.

    >>> restates("Was the 2020 turnout a record?", "Yes, the 2020 turnout was a record.")
    True
    >>> restates("Was the 2020 turnout a record?", "The turnout, 88.4 percent, was the second-highest.")
    False
    >>> restates("Who won the election?", "The election was won.")  # not a yes-or-no question
    False
    """
    if not is_polar(question):
        return False
    words, numbers = key_terms(answer)
    asked_words, asked_numbers = key_terms(question)
    new_words = {w for w in words - asked_words if w not in _ANSWER_WORDS
                 and not any(_related(w, a) for a in asked_words)}
    return not new_words and not (numbers - asked_numbers)


def unsupported_yes(question: str, answer: str, texts: Sequence[str]) -> bool:
    """True when the answer says yes to a yes-or-no question whose key words its cited passages do not all hold.

    Numbers count too; words match in families ("elected", "election"), as in :func:`qa.citations.off_subject`.

    >>> quote = ["The turnout was 88.4 percent, the second-highest in the country's history."]
    >>> unsupported_yes("Was the turnout a record?", "Yes, 88.4 percent [1].", quote)
    True
    >>> unsupported_yes("Was the turnout high?", "No, it was 88.4 percent [1].", quote)  # says no
    False
    >>> unsupported_yes("Was the turnout the second-highest?", "Yes, at 88.4 percent [1].", quote)
    False
    """
    if not is_polar(question) or not _YES.match(answer):
        return False
    asked_words, asked_numbers = key_terms(question)
    words, numbers = key_terms(" ".join(texts))
    return bool(asked_numbers - numbers) or not all(any(_related(a, w) for w in words) for a in asked_words)


def unsupported(question: str, answer: str, texts: Sequence[str]) -> bool:
    """True when an answer to a yes-or-no question does not stand (see the module's note).

    >>> texts = ["Turnout was 88.4 percent, the second-highest in the country's history."]
    >>> unsupported("Was turnout a record?", "No, turnout was not a record.", texts)
    True
    >>> unsupported("Was turnout the second-highest?", "Yes, turnout was the second-highest.", texts)
    False
    """
    if _YES.match(answer):
        return unsupported_yes(question, answer, texts)
    return restates(question, answer)
