"""Splitting an article into passages.

Passages are runs of whole sentences, packed up to ``max_chars`` and never
crossing a paragraph break unless the paragraph is short, so each passage
reads on its own. Consecutive passages of one paragraph share ``overlap``
sentences, so a fact stated across a sentence boundary is found whole in at
least one passage.

Everything here works on character offsets into the article text: a passage
is ``(start, end)`` and its text is ``text[start:end]``. That makes a
citation checkable: the quote shown is exactly what the article says.

Sentences are :func:`qa.text.sentence_spans`; a "sentence" longer than
``4 * max_chars`` (a page with no punctuation) is cut at whitespace as a last
resort, so no passage grows without bound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import Span, sentence_spans, trim


@dataclass(frozen=True)
class Chunking:
    """How articles are cut into passages."""

    max_chars: int = 700
    overlap: int = 1  # sentences shared by consecutive passages of one paragraph


DEFAULT_CHUNKING = Chunking()


def paragraph_spans(text: str) -> list[Span]:
    """Spans of the paragraphs (blocks separated by blank lines).

    >>> paragraph_spans("One.\\n\\nTwo.")
    [(0, 4), (6, 10)]
    """
    spans = []
    start = 0
    for match in re.finditer(r"\n[ \t]*\n\s*", text):
        spans.append(trim(text, start, match.start()))
        start = match.end()
    spans.append(trim(text, start, len(text)))
    return [s for s in spans if s[1] > s[0]]


def split_passages(text: str, chunking: Chunking = DEFAULT_CHUNKING) -> list[Span]:
    """Cut ``text`` into passages of whole sentences.

    Short paragraphs (a subheading, a one-line quote) are merged with the next
    paragraph; long ones are packed sentence by sentence with ``overlap``.

    >>> text = "Title line\\n\\nFirst fact. Second fact.\\n\\nThird fact."
    >>> [text[a:b] for a, b in split_passages(text, Chunking(max_chars=30, overlap=0))]
    ['Title line\\n\\nFirst fact.', 'Second fact.\\n\\nThird fact.']
    """
    limit = chunking.max_chars
    sentences: list[tuple[Span, int]] = []  # (span, paragraph index)
    for index, (p_start, p_end) in enumerate(paragraph_spans(text)):
        sentences.extend((s, index) for s in sentence_spans(text, p_start, p_end, hard_limit=4 * limit))

    passages: list[Span] = []
    group: list[tuple[Span, int]] = []

    def size(items: list[tuple[Span, int]]) -> int:
        return items[-1][0][1] - items[0][0][0] if items else 0

    for sentence in sentences:
        candidate = [*group, sentence]
        if group and size(candidate) > limit:
            passages.append((group[0][0][0], group[-1][0][1]))
            same_paragraph = [s for s in group if s[1] == sentence[1]]
            keep = same_paragraph[-chunking.overlap:] if chunking.overlap else []
            if keep and size([*keep, sentence]) > limit:
                keep = []
            group = [*keep, sentence]
        else:
            group = candidate
    if group:
        passages.append((group[0][0][0], group[-1][0][1]))
    return passages
