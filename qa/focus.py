"""Passages put in order by their best sentence.

Retrieval ranks whole passages, and a passage of five sentences about the
regatta can outrank the one whose single sentence answers the question ("the
HWA (the harbour workers' association) had kept the mayor busy all week").
The model reads only the best few passages (``narrow_k``), so that order
decides what it reads. Here each passage's sentences are embedded
on their own, with the long names of the acronyms they use, and the passages
reordered by reciprocal rank fusion of their retrieval rank and the rank of
their best sentence's similarity to the question. The set of passages is
unchanged; only its order moves.

Sentence vectors are cached by text, so a passage met again costs nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

from .embedder import Embedder
from .glossary import glosses
from .retrieval import RRF_K
from .store import Passage
from .text import sentence_spans


def fuse_orders(best: Sequence[float], k: int = RRF_K) -> list[int]:
    """Indices of passages given in retrieval order, reordered by fusion with their best-sentence scores.

    Reciprocal rank fusion of the two ranks; a tie keeps the retrieval order.

    >>> fuse_orders([0.2, 0.3, 0.9, 0.1])  # the third passage's best sentence lifts it to second
    [0, 2, 1, 3]
    >>> fuse_orders([0.5, 0.4, 0.3])
    [0, 1, 2]
    """
    by_sentence = sorted(range(len(best)), key=lambda i: (-best[i], i))
    sentence_rank = {i: r for r, i in enumerate(by_sentence)}
    return sorted(range(len(best)), key=lambda i: (-(1 / (k + i) + 1 / (k + sentence_rank[i])), i))


def _sentences(passage: Passage) -> list[str]:
    """The passage's sentences (the whole passage when it has none)."""
    return [passage.text[start:end] for start, end in sentence_spans(passage.text)] or [passage.text]


def passage_sentences(passages: Sequence[Passage]) -> list[list[str]]:
    """Each passage's sentences, each followed by the long names of the acronyms its passage uses bare.

    The note is the passage's (:func:`qa.glossary.glosses`), so every sentence of a passage that
    uses "FLA" carries it: the passage, not only the sentence, is about the authority.

    >>> from qa.store import Passage
    >>> a = Passage("a", "The Ferry Line Authority (FLA) met. It agreed.", "x", "T", "x.txt", 0, 46)
    >>> b = Passage("b", "The FLA’s chair spoke.", "x", "T", "x.txt", 60, 82)
    >>> for sentences in passage_sentences([a, b]): print(sentences)
    ['The Ferry Line Authority (FLA) met.', 'It agreed.']
    ['The FLA’s chair spoke. (FLA: Ferry Line Authority)']
    """
    notes = glosses([p.text for p in passages])
    return [[f"{s} {note}" if note else s for s in _sentences(passage)]
            for passage, note in zip(passages, notes, strict=True)]


class SentenceRanker:
    """Reorders passages by their best sentence (see the module's note), with sentence vectors cached."""

    def __init__(self, embedder: Embedder, cache_size: int = 20_000) -> None:
        self.embedder = embedder
        self.cache_size = cache_size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _vectors(self, sentences: Sequence[str]) -> list[list[float]]:
        with self._lock:
            have = {s: self._cache[s] for s in sentences if s in self._cache}
        missing = list(dict.fromkeys(s for s in sentences if s not in have))
        fresh = dict(zip(missing, self.embedder.embed(missing), strict=True)) if missing else {}
        found = have | fresh
        with self._lock:  # another thread may have added or evicted entries meanwhile
            for sentence in dict.fromkeys(sentences):
                self._cache[sentence] = found[sentence]
                self._cache.move_to_end(sentence)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return [found[s] for s in sentences]

    def scores(self, question_vector: Sequence[float], passages: Sequence[Passage]) -> list[list[float]]:
        """Each passage's sentences' similarity to the question (sentences as :func:`passage_sentences`)."""
        groups = passage_sentences(passages)
        if not question_vector:
            return [[0.0] * len(group) for group in groups]
        vectors = self._vectors([s for group in groups for s in group])
        similarity = [sum(a * b for a, b in zip(question_vector, v, strict=True)) for v in vectors]
        out, start = [], 0
        for group in groups:
            out.append(similarity[start:start + len(group)])
            start += len(group)
        return out

    def best(self, question_vector: Sequence[float], passages: Sequence[Passage]) -> list[tuple[float, str]]:
        """Each passage's sentence closest to the question, with its similarity (the first sentence, 0.0,
        without a question vector)."""
        out = []
        for passage, scores in zip(passages, self.scores(question_vector, passages), strict=True):
            top = max(range(len(scores)), key=lambda i: (scores[i], -i))
            out.append((scores[top], _sentences(passage)[top]))
        return out

    def order(self, question_vector: Sequence[float], passages: Sequence[Passage]) -> list[Passage]:
        """``passages`` (in retrieval order) reordered by fusion with their best sentence's similarity."""
        if len(passages) < 2 or not question_vector:
            return list(passages)
        return [passages[i] for i in fuse_orders([score for score, _ in self.best(question_vector, passages)])]
