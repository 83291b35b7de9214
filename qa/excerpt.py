"""What the model reads: the best sentences of the passages found, under a token budget.

A passage of 700 characters holds one or two sentences that bear on a question
and five that do not; the model reads, and pays for, all of them. Here each
passage is cut down to whole sentences, chosen in rounds until the budget is
spent: first every passage's best sentence (best first), then the sentences
beside those (a sentence often needs the one before it for its "he" or "the
deal"), then the rest by their likeness to the question. A sentence is kept
whole or not at all, and once: consecutive passages of a paragraph share a
sentence, which is read in the first passage that keeps it, and the other
passage gives its next best. Sentences not side by side in the passage are
joined by :data:`GAP`. Citations still point at passages, and every quote is
a sentence the model read (:func:`restore_citation`).

Token counts are estimated (:func:`estimate_tokens`), not taken from the
model's tokenizer, so the budget holds for any model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .answer import Citation
from .citations import term_share
from .store import Passage
from .text import Span, sentence_spans

GAP = " … "  # between sentences that are not side by side in the passage
TERM_WEIGHT = 0.5  # what naming every key term of the question adds to a sentence's likeness


def sentence_scores(question: str, passages: Sequence[Passage], likeness: Sequence[Sequence[float]]
                    ) -> list[list[float]]:
    """Each sentence's score for :func:`choose`: its embedding likeness to the question plus
    :data:`TERM_WEIGHT` times its :func:`term_share` (an embedding of a short sentence misses a
    name or number the question asks about more often than the words do)."""
    return [[like + TERM_WEIGHT * term_share(question, p.text[a:b]) for like, (a, b) in zip(row, spans_of(p),
                                                                                         strict=True)]
            for p, row in zip(passages, likeness, strict=True)]


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` takes: one per four characters, as English text runs in BPE.

    >>> estimate_tokens("The ferry left at noon.")
    6
    """
    return math.ceil(len(text) / 4)


def spans_of(passage: Passage) -> list[Span]:
    """The sentence spans of a passage (the whole text when it has no sentence boundary)."""
    return sentence_spans(passage.text) or [(0, len(passage.text))]


@dataclass(frozen=True)
class Excerpt:
    """Some whole sentences of a passage, given by their spans in its text, in passage order."""

    passage: Passage
    spans: tuple[Span, ...]

    @property
    def text(self) -> str:
        """The kept sentences; neighbours keep the text between them, others are joined by :data:`GAP`.

        >>> p = Passage("p", "One. Two. Three. Four.", "a", "T", "a.txt", 0, 22)
        >>> Excerpt(p, ((0, 4), (5, 9), (17, 22))).text
        'One. Two. … Four.'
        """
        parts: list[str] = []
        end = None
        for a, b in self.spans:
            if end is not None:
                between = self.passage.text[end:a]
                parts.append(between if not between.strip() else GAP)
            parts.append(self.passage.text[a:b])
            end = b
        return "".join(parts)

    def as_passage(self) -> Passage:
        """The passage as the model reads it: same id, article and offsets, the excerpt as its text."""
        return replace(self.passage, text=self.text)


ArticleSpan = tuple[str, int, int]  # an article id, and the start and end of a span of its text


def sentences_held(excerpt: Passage, whole: Passage) -> list[int]:
    """Which sentences of ``whole`` (indices into :func:`spans_of`) ``excerpt``, what was read of it,
    holds, each found by its text.

    >>> p = Passage("p", "One. Two. Three.", "a", "T", "a.txt", 100, 116)
    >>> sentences_held(replace(p, text="One. … Three."), p)
    [0, 2]
    """
    spans = spans_of(whole)
    return [j for j, (a, b) in enumerate(spans) if whole.text[a:b].strip() and whole.text[a:b] in excerpt.text]


def spans_read(excerpt: Passage, whole: Passage) -> list[ArticleSpan]:
    """Where in their article the sentences of ``whole`` lie that ``excerpt`` holds (:func:`sentences_held`).

    >>> p = Passage("p", "One. Two. Three.", "a", "T", "a.txt", 100, 116)
    >>> spans_read(replace(p, text="One. … Three."), p)
    [('a', 100, 104), ('a', 110, 116)]
    """
    if whole.end - whole.start != len(whole.text):  # not its article's text at its offsets
        return []
    spans = spans_of(whole)
    return [(whole.article_id, whole.start + spans[j][0], whole.start + spans[j][1])
            for j in sentences_held(excerpt, whole)]


def choose(passages: Sequence[Passage], scores: Sequence[Sequence[float]], budget: int,
           read: Sequence[ArticleSpan] = ()) -> list[Excerpt]:
    """Excerpts of ``passages`` (best first) whose texts together fit ``budget`` estimated tokens.

    ``scores[i][j]`` is the likeness to the question of sentence ``j`` of passage ``i`` (in the order
    of :func:`spans_of`). The first passage's best sentence is kept even when it alone is over the
    budget; a passage none of whose sentences fit is left out. A sentence already read in
    another passage of the same article is not kept again, nor one inside a span of ``read`` (what
    an earlier reading held, :func:`spans_read`).

    >>> a = Passage("a", "Rain fell. The ferry left at noon. Gulls sat.", "x", "T", "x.txt", 0, 45)
    >>> b = Passage("b", "The pier is old. It was built of oak.", "x", "T", "x.txt", 50, 87)
    >>> [e.text for e in choose([a, b], [[0.1, 0.9, 0.2], [0.3, 0.6]], budget=20)]
    ['Rain fell. The ferry left at noon.', 'It was built of oak.']
    """
    spans = [spans_of(p) for p in passages]
    kept: list[set[int]] = [set() for _ in passages]
    used = 0

    placed = [p.end - p.start == len(p.text) for p in passages]  # its text is its article's, at its offsets

    def repeated(i: int, j: int) -> bool:
        """Whether sentence ``j`` of passage ``i`` lies, in their article, inside one kept of another passage
        or inside a span of ``read``."""
        a, b = spans[i][j]
        start, end, article = passages[i].start + a, passages[i].start + b, passages[i].article_id
        return placed[i] and (any(k != i and placed[k] and passages[k].article_id == article
                                  and passages[k].start + spans[k][m][0] <= start
                                  and end <= passages[k].start + spans[k][m][1]
                                  for k in range(len(passages)) for m in kept[k])
                              or any(other == article and s <= start and end <= e for other, s, e in read))

    def take(i: int, j: int, always: bool = False) -> None:
        nonlocal used
        if j in kept[i] or not 0 <= j < len(spans[i]) or repeated(i, j):
            return
        a, b = spans[i][j]
        cost = estimate_tokens(passages[i].text[a:b]) + 1
        if always or used + cost <= budget:
            kept[i].add(j)
            used += cost

    best: list[int] = []
    for i in range(len(passages)):  # each passage's best sentence not already read in another
        fresh = [j for j in range(len(spans[i])) if not repeated(i, j)]
        best.append(max(fresh, key=lambda j: (scores[i][j], -j)) if fresh else -1)
        take(i, best[i], always=i == 0)
    for i, j in enumerate(best):  # the sentence before the best one, then the one after
        if j in kept[i]:
            take(i, j - 1)
            take(i, j + 1)
    rest = sorted(((i, j) for i in range(len(passages)) for j in range(len(spans[i]))),
                  key=lambda ij: (-scores[ij[0]][ij[1]], ij))
    for i, j in rest:
        take(i, j)
    return [Excerpt(p, tuple(spans[i][j] for j in sorted(kept[i]))) for i, p in enumerate(passages) if kept[i]]


def restore_citation(citation: Citation, passage: Passage) -> Citation:
    """``citation``, made on an excerpt, pointed at the whole ``passage``: its quote and offsets.

    A quote that runs across a gap keeps its longest side, so it is still a sentence the model read.

    >>> p = Passage("p", "One. Two. Three. Four.", "a", "T", "a.txt", 100, 122)
    >>> c = Citation(1, "T", "a.txt", "p", "Two. … Four.", passage="Two. … Four.")
    >>> restored = restore_citation(c, p)
    >>> restored.quote, restored.quote_start, restored.quote_end, restored.passage == p.text
    ('Four.', 117, 122, True)
    """
    pieces = [piece.strip() for piece in citation.quote.split(GAP.strip())]
    found = [piece for piece in pieces if piece and piece in passage.text]
    if not found:
        return replace(citation, passage=passage.text)
    quote = citation.quote if citation.quote in passage.text else max(found, key=len)
    start = passage.text.index(quote)
    return replace(citation, quote=quote, quote_start=passage.start + start,
                   quote_end=passage.start + start + len(quote), passage=passage.text)
