"""The last check of an answer: does the model, shown only the quoted sentences, agree they answer it?

The lexical checks (:mod:`qa.citations`, :mod:`qa.expect`) ask whether an answer's words are in
its passage. They pass an answer whose every word is there while the relation between the words
is not: "5.6%" for Bolivia's inflation from "a 5.6% reduction of its economy", or "Luis Arce" as
the president before Morales from "Luis Arce ... sworn into office as president". A second,
short question to the model catches some of these: here are the quoted sentences, the question
and the answer; does the text answer the question with this answer? YES or NO.

The model sees the quotes alone, not the passages it answered from nor its own reasoning, in a
conversation of its own. On the project's question set it turned five wrong answers into
refusals or better answers and lost no right one (docs/quality.md, step 7). A reply that is
neither YES nor NO leaves the answer as it is: the lexical checks have already passed it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .answer import Citation
from .errors import QAError
from .guard import defuse
from .llm import LLM, Message
from .prompt import passage_line, strip_markers

log = logging.getLogger(__name__)

CHECK_SYSTEM_PROMPT = "You check whether a text answers a question. Reply only YES or NO."


def check_messages(question: str, answer: str, quotes: Sequence[str], earlier: str = "") -> list[Message]:
    """The messages that ask the model whether ``quotes`` answer ``question`` with ``answer``.

    ``earlier`` is the conversation a follow-up needs to make sense ("Who backed out of that
    deal?"), when it could not be rewritten into a standalone question.

    >>> m = check_messages("Who won?", "Luis Arce won [1].", ["Luis Arce won the vote.", "Turnout was high."])
    >>> print(m[1]["content"])
    Text: Luis Arce won the vote. Turnout was high.
    <BLANKLINE>
    Question: Who won?
    Answer: Luis Arce won.
    <BLANKLINE>
    Does the text answer the question with this answer? Reply YES or NO.
    """
    text = " ".join(passage_line(quote) for quote in quotes)
    question = defuse(" ".join(question.split()))
    answer = passage_line(strip_markers(answer))
    context = f"Earlier question: {passage_line(earlier)}\n" if earlier.strip() else ""
    return [{"role": "system", "content": CHECK_SYSTEM_PROMPT},
            {"role": "user", "content": f"Text: {text}\n\n{context}Question: {question}\nAnswer: {answer}\n\n"
                                        "Does the text answer the question with this answer? Reply YES or NO."}]


def verdict(reply: str) -> bool | None:
    """True for YES, False for NO, None for anything else.

    >>> verdict("YES"), verdict(" no."), verdict("Yes, it does"), verdict("The text says")
    (True, False, True, None)
    """
    words = reply.strip().split()
    first = words[0].strip(".,!:;\"'*_`").upper() if words else ""
    return True if first == "YES" else False if first == "NO" else None


def confirmed(llm: LLM, question: str, answer: str, citations: Sequence[Citation], earlier: str = "") -> bool:
    """False only when the model says NO: the quoted sentences do not answer the question so.

    A check that cannot be made (a prompt longer than the model's context, a server that fails)
    leaves the answer as the other checks passed it, and says so in the log.
    """
    messages = check_messages(question, answer, [c.quote for c in citations], earlier)
    try:
        reply = "".join(llm.stream_chat(messages, max_tokens=3, temperature=0.0))
    except (ValueError, QAError) as exc:
        log.warning("The answer could not be checked by the model (%s); it stands as the citation check passed it.",
                    exc)
        return True
    return verdict(reply) is not False
