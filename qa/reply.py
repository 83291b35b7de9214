"""The model's reply as JSON: the schema, the answer read while it streams, the parsed reply.

With ``QA_PROMPT=json`` (``Settings.prompt = "json"``) the model replies in
JSON that llama.cpp's grammar-constrained decoding holds to :data:`SCHEMA`::

    {"found": true, "answer": "The bridge opened in May 1998.", "sources": [2]}

A small model picks the right fact more often when it fills in a short
answer field than when it writes free prose with markers (docs/quality.md).
What it says is checked all the same. ``"found": false`` is a refusal, but
``"found": true`` proves nothing (the model sets it for questions nothing
answers), so every answer still goes through the citation check, which
refuses the ones no passage supports.

The answer is streamed as it is generated: :class:`AnswerStream` picks the
characters of the ``answer`` string out of the JSON as they arrive.
:func:`parse_reply` reads the whole reply; it also accepts a reply that is not
JSON at all (an LLM server that ignores the schema), taking it as plain text
with ``[n]`` markers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "found": {"type": "boolean"},
        "answer": {"type": "string"},
        "sources": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["found", "answer", "sources"],
}

_FOUND = re.compile(r'"found"\s*:\s*(true|false)')
_SOURCES = re.compile(r'"sources"\s*:\s*\[([\d\s,]*)')
_HAS_MARKER = re.compile(r"\[\d+\]")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def reply_json(answer: str, sources: list[int]) -> str:
    """A reply in the schema's form, as the worked examples show it.

    >>> reply_json("The bridge opened.", [1])
    '{"found": true, "answer": "The bridge opened.", "sources": [1]}'
    >>> reply_json("", [])
    '{"found": false, "answer": "", "sources": []}'
    """
    return json.dumps({"found": bool(answer), "answer": answer, "sources": sources}, ensure_ascii=False)


@dataclass
class Reply:
    """What the model said: whether it found an answer, the answer, and the passages it named."""

    found: bool
    answer: str
    sources: list[int] = field(default_factory=list)
    structured: bool = True  # False: the reply was plain text, kept whole in ``answer``

    def text(self) -> str:
        """The answer with the passages it names as ``[n]`` markers; ``""`` when nothing was found.

        The markers go after the last sentence; the citation check then gives every sentence the
        passage that supports it. An answer that carries its own markers keeps them instead.

        >>> Reply(True, "The toll was 2.5 euros.", [2, 2, 5]).text()
        'The toll was 2.5 euros [2][5].'
        >>> Reply(True, "The toll was 2.5 euros [2].", [2]).text()
        'The toll was 2.5 euros [2].'
        >>> Reply(False, "Ruiz.", [1]).text()
        ''
        """
        if not self.structured:
            return self.answer.strip()  # prose keeps its lines: a list's items are checked one by one
        answer = " ".join(self.answer.split())
        if not self.found or not answer:
            return ""
        marks = "".join(f"[{n}]" for n in dict.fromkeys(self.sources))
        if not marks or _HAS_MARKER.search(answer):
            return answer
        stripped = answer.rstrip()
        end = re.search(r"[.!?]+[\"'”’)]*$", stripped)
        if end:
            return f"{stripped[:end.start()].rstrip()} {marks}{end.group(0)}"
        return f"{stripped} {marks}."


def parse_reply(raw: str) -> Reply:
    """Read the model's whole reply: JSON in the schema, a truncated one, or plain text.

    >>> parse_reply('{"found": true, "answer": "The bridge opened.", "sources": [1, 3]}')
    Reply(found=True, answer='The bridge opened.', sources=[1, 3], structured=True)
    >>> parse_reply('{"found": true, "answer": "The bridge opened in 19')  # cut off by the token limit
    Reply(found=True, answer='The bridge opened in 19', sources=[], structured=True)
    >>> parse_reply('{"found": true, "answer": "The bridge opened.", "sources": [2, 4')
    Reply(found=True, answer='The bridge opened.', sources=[2, 4], structured=True)
    >>> parse_reply("The bridge opened [1].")
    Reply(found=True, answer='The bridge opened [1].', sources=[], structured=False)
    """
    text = raw.strip()
    if not text.startswith("{"):
        return Reply(bool(text), text, [], structured=False)
    try:
        data = json.loads(text)
    except ValueError:
        stream = AnswerStream()
        partial = stream.feed(text)  # feed first: it reads "found" too
        listed = _SOURCES.search(text)
        return Reply(stream.found is not False, partial,
                     [int(n) for n in re.findall(r"\d+", listed.group(1))] if listed else [])
    if not isinstance(data, dict):
        return Reply(False, "", [])
    answer, listed_sources = data.get("answer"), data.get("sources")
    return Reply(found=data.get("found") is not False, answer=answer if isinstance(answer, str) else "",
                 sources=[n for n in listed_sources if isinstance(n, int) and not isinstance(n, bool)]
                 if isinstance(listed_sources, list) else [])


def _hex(digits: str) -> int:
    """The value of four hex digits, or -1."""
    try:
        return int(digits, 16) if len(digits) == 4 else -1
    except ValueError:
        return -1


class AnswerStream:
    """Feed the JSON reply piece by piece; get back the new characters of its ``answer`` string
    (or of the string under ``key``).

    Nothing comes out when ``found`` is false.

    >>> s = AnswerStream()
    >>> [s.feed(p) for p in ['{"found": tr', 'ue, "answ', 'er": "Ruiz', ' said \\\\"no', '\\\\" \\\\u00e1', '", "so']]
    ['', '', 'Ruiz', ' said "no', '" á', '']
    >>> s.closed
    True
    """

    def __init__(self, key: str = "answer") -> None:
        self._open = re.compile(rf'"{re.escape(key)}"\s*:\s*"')
        self._buffer = ""
        self._pos = -1  # where the next unread character of the answer string is; -1 before it opens
        self.found: bool | None = None
        self.closed = False

    def feed(self, piece: str) -> str:
        self._buffer += piece
        if self.found is None:
            match = _FOUND.search(self._buffer)
            if match:
                self.found = match.group(1) == "true"
        if self._pos < 0:
            opened = self._open.search(self._buffer)
            if not opened:
                return ""
            self._pos = opened.end()
        out: list[str] = []
        buffer, pos = self._buffer, self._pos
        while pos < len(buffer) and not self.closed:
            char = buffer[pos]
            if char == '"':
                self.closed = True
                pos += 1
            elif char == "\\":
                if pos + 1 >= len(buffer):
                    break  # the escape is not complete yet
                kind = buffer[pos + 1]
                if kind == "u":
                    code = _hex(buffer[pos + 2:pos + 6])
                    if 0xD800 <= code < 0xDC00:  # the first half of a pair: "\ud83d\ude00"
                        after = buffer[pos + 6:pos + 8]
                        if "\\u".startswith(after) and pos + 12 > len(buffer):
                            break  # the second half may still come
                        low = _hex(buffer[pos + 8:pos + 12]) if after == "\\u" else -1
                        if 0xDC00 <= low < 0xE000:
                            out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                            pos += 12
                            continue
                    if pos + 6 > len(buffer):
                        break
                    if code >= 0 and not 0xD800 <= code < 0xE000:
                        out.append(chr(code))
                    pos += 6
                else:
                    out.append(_ESCAPES.get(kind, kind))
                    pos += 2
            else:
                out.append(char)
                pos += 1
        self._pos = pos
        return "" if self.found is False else "".join(out)
