"""Follow-up questions rewritten into standalone ones before retrieval.

"Was that a bargain?" names nothing a search can find. When a question leans
on the conversation (:func:`qa.retrieval.is_follow_up`), the model is asked
to rewrite it with what it refers to: "Was the 2019 ferry fare a bargain?".
The request opens with the same system prompt and worked examples as every
answer, so llama.cpp's prefix cache serves both. With the JSON
prompt (``style="json"``) the rewrite comes back as JSON too, ``{"question": "..."}``, held to
:data:`QUESTION_SCHEMA`.

A small model sometimes repeats the earlier question instead, or changes
what is asked ("Who pulled out?" becoming "Which bakery pulled out?"). One
worked rewrite, given as an earlier turn after the cached prefix, shows it
what is wanted: without it, the default model repeated the earlier question
for four of the nine follow-ups of the project's question set; with it, for
one (docs/quality.md, step 10). A rewrite is only taken when it keeps the
follow-up's question word and every one of its content words (a reference
such as "the two of them" is not one); otherwise the search falls back to
the previous question joined to the follow-up (:func:`qa.retrieval.search_text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from .llm import LLM, Message
from .prompt import NOT_FOUND, prefix_messages, strip_markers
from .reply import AnswerStream
from .retrieval import is_follow_up
from .text import OPENERS, tokens, words

QUESTION_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"question": {"type": "string"}},
                          "required": ["question"]}
INSTRUCTION = ("Rewrite the user's last question as one standalone question that names what it refers to, "
               "using the conversation above. Do not answer it. Reply with the rewritten question only.")
MAX_CHARS = 300
# A worked rewrite: a conversation, and its last question made standalone. Its subject is made up,
# as in the answer prompt's worked examples, so that it can never be mistaken for an article's.
EXAMPLE = ("User: Who cut the ribbon at the bridge opening?\nYou: The mayor, Ana Ruiz.\n"
           "User: And when was she elected?", "When was the mayor, Ana Ruiz, elected?")
# "the two of them", "both of them", "these two": words that only point back, like a pronoun
_REFERENCE = re.compile(r"\b(?:(?:the\s+)?(?:two|three|four|both|all|each|either|neither)\s+of\s+"
                        r"(?:them|those|these|us)|(?:the|these|those)\s+(?:two|three|four))\b", re.IGNORECASE)
_LEAD = re.compile(rf"^(?:{OPENERS})\b[\s,]*", re.IGNORECASE)
_QUESTION_WORDS = frozenset("""who whom whose what when where why which how was were is are did do does can could
will would has have had""".split())
_PRONOUNS = frozenset("he she it they them him her his its their that this those these there same both".split())


def rewrite_messages(question: str, history: Sequence[Message], turns: int = 2, chars: int = 300,
                     style: str = "grounded") -> list[Message]:
    """The request for a standalone question: the answer prompt's constant prefix, a worked rewrite
    (:data:`EXAMPLE`), then the conversation."""
    messages = prefix_messages(style)
    lines = []
    for m in [m for m in history if m.get("role") in ("user", "assistant")][-2 * turns:]:
        content = " ".join(strip_markers(m["content"]).split())[:chars]
        lines.append(("User: " if m["role"] == "user" else "You: ") + content)
    conversation = "\n".join([*lines, f"User: {question}"])
    instruction = INSTRUCTION + (' Reply in JSON: {"question": "..."}' if style == "json" else "")
    shown, rewritten = EXAMPLE
    messages += [{"role": "user", "content": f"Conversation:\n{shown}\n\n{instruction}"},
                 {"role": "assistant", "content": json.dumps({"question": rewritten}) if style == "json"
                  else rewritten},
                 {"role": "user", "content": f"Conversation:\n{conversation}\n\n{instruction}"}]
    return messages


def read_rewrite(reply: str) -> str:
    """The question out of the model's reply, JSON or plain.

    >>> read_rewrite('{"question": "Was the fare a bargain?"}')
    'Was the fare a bargain?'
    >>> read_rewrite('{"question": "Was the 2019 ferry fare a barg')  # cut off
    'Was the 2019 ferry fare a barg'
    >>> read_rewrite("Was the fare a bargain?")
    'Was the fare a bargain?'
    """
    text = reply.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return AnswerStream(key="question").feed(text)  # cut off by the token limit
        value = data.get("question") if isinstance(data, dict) else None
        return value if isinstance(value, str) else ""
    return text


def _first_word(text: str) -> str:
    found = [w for w in words(_LEAD.sub("", text.strip())) if not w[0].isdigit()]
    return found[0] if found else ""


def accept_rewrite(question: str, reply: str) -> str | None:
    """The rewritten question if it keeps what was asked, else ``None``.

    >>> accept_rewrite("Was that a bargain?", "Was the 2019 ferry fare a bargain?")
    'Was the 2019 ferry fare a bargain?'
    >>> accept_rewrite("And in the spring?", "How many tickets did the ferry sell in the spring?")
    'How many tickets did the ferry sell in the spring?'
    >>> print(accept_rewrite("When did she retire?", "Who was hired on opening day?"))  # lost "retire"
    None
    >>> print(accept_rewrite("Who pulled out of that sale?", "Which bakery pulled out of the sale?"))
    None
    >>> accept_rewrite("And when were the two of them hired?", "When were Ana Ruiz and Tom Lee hired?")
    'When were Ana Ruiz and Tom Lee hired?'
    >>> accept_rewrite("Were both hired?", "Were Ana Ruiz and Tom Lee hired?")
    'Were Ana Ruiz and Tom Lee hired?'
    """
    line = " ".join(reply.strip().splitlines()[0].split()) if reply.strip() else ""
    line = line.strip("\"'“”` ")
    if line.lower().startswith(("question:", "standalone question:", "rewritten question:")):
        line = line.split(":", 1)[1].strip()
    if not line or len(line) > MAX_CHARS or NOT_FOUND.lower() in line.lower() or "[" in line:
        return None
    asked = _first_word(question)
    if asked in _QUESTION_WORDS and _first_word(line) != asked:
        return None
    wanted = {t for t in tokens(_REFERENCE.sub(" ", question)) if t not in _PRONOUNS}
    if not wanted <= set(tokens(line)):
        return None
    return line if line.endswith("?") else line.rstrip(".") + "?"


def standalone_question(llm: LLM, question: str, history: Sequence[Message], max_tokens: int = 48,
                        style: str = "grounded") -> str | None:
    """The follow-up rewritten by the model, or ``None`` when it is not a follow-up or the rewrite is unusable."""
    if not history or not is_follow_up(question):
        return None
    messages = rewrite_messages(question, history, style=style)
    if style == "json":
        # the JSON around the question costs a few tokens more
        reply = "".join(llm.stream_chat(messages, max_tokens=max_tokens + 16, temperature=0.0,
                                        schema=QUESTION_SCHEMA))
    else:
        reply = "".join(llm.stream_chat(messages, max_tokens=max_tokens, temperature=0.0, stop=["\n"]))
    return accept_rewrite(question, read_rewrite(reply))
