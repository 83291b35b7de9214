"""From the model's text to checked citations.

The model writes ``[n]`` after its sentences, where ``n`` numbers a passage it
was given. This module

1. parses markers in their common forms (``[2]``, ``[1, 3]``, ``[Passage 2]``)
   and drops every number that names no passage given to the model;
2. checks each sentence against the passages it cites by lexical support:
   the share of the sentence's key terms found in the passage, where every
   number in the sentence must appear in the passage. A citation that does not
   support its sentence moves to the passage that does, or is dropped; a
   sentence with no marker gets the passage that clearly supports it;
3. picks, for each cited passage, the sentence(s) that support the claim as
   the quote, with offsets into the article.

Everything here is pure and deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .answer import Citation
from .glossary import glosses
from .store import Passage
from .text import MONTHS, STOP_WORDS, WEEKDAYS, answer_sentences, decades, fold, sentence_spans, spelled_numbers, stem

_MARKER = re.compile(r"\[\s*(?:passages?|sources?|p)?\s*(\d+(?:\s*(?:,|;|and)\s*(?:passage\s*)?\d+)*)\s*\]",
                     re.IGNORECASE)
_NUMBER = re.compile(r"\d+")
# what a marker looks like before its "]": held back while streaming, however long the number grows
_MARKER_START = re.compile(r"\[\s*(?:passages?|sources?|p)?\s*[\d\s,;]*(?:and[\d\s,;]*)*", re.IGNORECASE)

def marker_numbers(inner: str) -> list[int]:
    """The numbers inside one marker's brackets.

    >>> marker_numbers("1, 3 and passage 4"), marker_numbers("2, " + "9" * 5000)
    ([1, 3, 4], [2])
    """
    return [int(n) for n in _NUMBER.findall(inner) if len(n) <= 6]  # no passage has a 7-digit number


def renumber(text: str, numbers: dict[int, int]) -> str:
    """Rewrite each ``[n]`` marker as ``[numbers[n]]`` (markers already normalised to ``[n]`` runs).

    >>> renumber("The ferry carried 3,214,905 riders [1][2].", {1: 4, 2: 6})
    'The ferry carried 3,214,905 riders [4][6].'
    """
    return re.sub(r"\[(\d+)\]", lambda m: f"[{numbers.get(int(m.group(1)), int(m.group(1)))}]", text)


def normalise_markers(text: str, n_passages: int) -> str:
    """Rewrite markers as ``[n]`` runs and remove numbers outside ``1..n_passages``.

    >>> normalise_markers("Ruiz spoke [Passage 1, 7]. Lund left [9].", 2)
    'Ruiz spoke [1]. Lund left.'
    """
    def repl(match: re.Match[str]) -> str:
        numbers = [n for n in marker_numbers(match.group(1)) if 1 <= n <= n_passages]
        return "".join(f"[{n}]" for n in dict.fromkeys(numbers))

    out = _MARKER.sub(repl, text)
    out = re.sub(r"[ \t]+([.,;:!?])", r"\1", out)
    return re.sub(r"[ \t]{2,}", " ", out).strip()


class MarkerStreamFilter:
    """Normalises markers in streamed text, so an invalid ``[n]`` is never shown.

    Text after a ``[`` is held back until the bracket closes (or clearly is
    not a marker), then released in normalised form.

    >>> f = MarkerStreamFilter(2)
    >>> "".join([f.feed("Ridership [1"), f.feed("] and [5]"), f.feed(" [x]"), f.flush()])
    'Ridership [1] and  [x]'
    >>> "".join([f.feed("High [" + "9" * 100), f.feed("] [2]."), f.flush()])
    'High  [2].'
    """

    def __init__(self, n_passages: int, max_hold: int = 24) -> None:
        self.n_passages = n_passages
        self.max_hold = max_hold
        self._held = ""

    def feed(self, piece: str) -> str:
        out = []
        for char in piece:
            if self._held and char == "[":
                out.append(self._held)  # an unclosed "[" was no marker; start again here
                self._held = char
            elif self._held:
                self._held += char
                if char == "]":
                    out.append(self._release())
                elif char == "\n" or (len(self._held) > self.max_hold and not (
                        len(self._held) < 10_000 and _MARKER_START.fullmatch(self._held))):
                    out.append(self._held)
                    self._held = ""
            elif char == "[":
                self._held = char
            else:
                out.append(char)
        return "".join(out)

    def _release(self) -> str:
        held, self._held = self._held, ""
        match = _MARKER.fullmatch(held)
        if not match:
            return held
        numbers = [n for n in marker_numbers(match.group(1)) if 1 <= n <= self.n_passages]
        return "".join(f"[{n}]" for n in dict.fromkeys(numbers))

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


# --- lexical support ---------------------------------------------------------------------

def key_terms(text: str) -> tuple[set[str], set[str]]:
    """(words, numbers) that carry a sentence's content; numbers in words from 13 up count as numbers.

    Words are stems (:func:`qa.text.stem`) of the words that are not stop words (:data:`qa.text.STOP_WORDS`).

    >>> sorted(key_terms("The bakery sold 1,204,518 loaves, 62.5% of them rye.")[1])
    ['1204518', '62.5']
    >>> sorted(key_terms("Twenty-six people were rescued.")[1])
    ['26']
    >>> key_terms("Norvale’s mayor") == key_terms("the mayor of Norvale")
    True
    >>> key_terms("He ran the ferry in the 1990s.")[1] == key_terms("when he ran the ferry in the 90s")[1]
    True
    """
    found, folded = decades(fold(text))
    numbers = found | {n.replace(",", "") for n in re.findall(r"\d[\d,]*(?:\.\d+)?", folded)}
    numbers = {n.rstrip(".") for n in numbers if n} | spelled_numbers(folded)
    words = {re.sub(r"['’]s$", "", w).strip("'’-") for w in re.findall(r"[a-z][a-z'’-]+", folded)}
    return {stem(w) for w in words if len(w) > 2 and w not in STOP_WORDS}, numbers


def term_share(question: str, sentence: str) -> float:
    """The share of the question's key terms (stemmed words, numbers) that ``sentence`` uses.

    >>> term_share("When did the ferry leave the harbour?", "The ferry left the harbour at noon.")
    0.6666666666666666
    """
    words, numbers = key_terms(question)
    asked = words | numbers
    if not asked:
        return 0.0
    s_words, s_numbers = key_terms(sentence)
    return len(asked & (s_words | s_numbers)) / len(asked)


def _coverage(words: set[str], numbers: set[str], p_words: set[str], p_numbers: set[str],
              required: set[str]) -> float:
    total = len(words) + len(numbers)
    if not total:
        return 1.0
    score = (len(words & p_words) + len(numbers & p_numbers)) / total
    return score / 5 if required - p_numbers else score


def support(claim: str, passage_text: str, known: str = "") -> float:
    """How well ``passage_text`` supports ``claim``, from 0 to 1.

    The share of the claim's key terms found in the passage. The same share is
    taken of the terms that ``known`` (the question) does not already hold,
    and the lower of the two counts: restating the question proves nothing,
    the new information must be in the passage. A number that the claim adds
    (not one it repeats from the question) missing from the passage cuts the
    score to a fifth. A new number is weighed against the sentences around
    it (:func:`number_context`) rather than the whole passage.

    >>> support("Attendance was 62.5 percent.", "participation of 62.5 percent, a record")
    0.6667
    >>> support("Attendance was 71 percent.", "participation of 62.5 percent")
    0.0667
    >>> support("The capital of Norvale is Eastport.", "Norvale's capital, Westport", known="capital of Norvale?")
    0.0
    >>> support("Attendance in 2016 was 62.5 percent.", "attendance of 62.5 percent", known="Attendance in 2016?")
    0.75

    A new number is weighed with the sentences around it: here "19" counts the Gulls' prizes, not Lund's.

    >>> prizes = "Lund's Harbour Club came second. Attendance was high. The Gulls took 19 of 30 Regatta prizes."
    >>> support("Lund's Harbour Club won 19 Regatta prizes.", prizes, known="How many prizes did Lund win?")
    0.125
    """
    words, numbers = key_terms(claim)
    if not words and not numbers:
        return 0.0
    p_words, p_numbers = key_terms(passage_text)
    known_words, known_numbers = key_terms(known)
    novel_words, novel_numbers = words - known_words, numbers - known_numbers
    score = _coverage(words, numbers, p_words, p_numbers, novel_numbers)
    if novel_words or novel_numbers:
        score = min(score, _coverage(novel_words, novel_numbers, p_words, p_numbers, novel_numbers))
    if novel_numbers and novel_numbers <= p_numbers:
        # A number is only evidence next to what it counts: weigh the claim against the sentences
        # around the ones that hold its new numbers, not against the whole passage.
        w_words, w_numbers = key_terms(number_context(passage_text, novel_numbers))
        score = min(score, _coverage(words, numbers, w_words, w_numbers, novel_numbers))
        names = proper_names(claim)
        if names and len(names & w_words) / len(names) < 0.5:
            score = min(score, len(names & w_words) / len(names) / 2)
    return round(score, 4)


_CALENDAR = frozenset(stem(w) for w in MONTHS + WEEKDAYS)


def proper_names(claim: str) -> set[str]:
    """The claim's capitalised words (names of people, parties, places), as key terms.

    >>> sorted(proper_names("In 2019 Ana Ruiz's bakery sold 12 percent in October."))
    ['ana', 'ruiz']
    >>> proper_names("Attendance was 62.5 percent.")
    set()
    """
    words = claim.split()
    if len(words) > 1 and not words[1][:1].isupper():
        words = words[1:]  # a capital that only opens the sentence: "Attendance was ..."
    found = re.findall(r"(?<![\w’'])[A-ZÀ-Þ][\w’'-]*", " ".join(words))
    terms: set[str] = set()
    for word in found:
        terms |= key_terms(word)[0]
    return terms - _CALENDAR


def number_context(text: str, numbers: set[str], around: int = 1) -> str:
    """The sentences of ``text`` that hold any of ``numbers``, with ``around`` sentences either side.

    >>> number_context("Rain fell. Ruiz spoke. The Gulls took 19 of 30 prizes. Lund's club won 11. The end.", {"19"}, 0)
    'The Gulls took 19 of 30 prizes.'
    """
    spans = sentence_spans(text)
    hits = [i for i, (a, b) in enumerate(spans) if key_terms(text[a:b])[1] & numbers]
    keep = sorted({j for i in hits for j in range(i - around, i + around + 1) if 0 <= j < len(spans)})
    return " ".join(text[spans[j][0]:spans[j][1]] for j in keep)


# --- checking ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckPolicy:
    """Thresholds of the citation check."""

    min_support: float = 0.34  # a citation must reach this to stand
    add_support: float = 0.5  # an uncited sentence gets a marker when a passage reaches this
    relative: float = 0.6  # a cited passage is kept if it reaches this share of the best one's support


def bare_claim(sentence: str) -> str:
    """A sentence without its markers.

    >>> bare_claim("Attendance was 62.5% [1][2].")
    'Attendance was 62.5%.'
    """
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", _MARKER.sub("", sentence)).strip()


# "Yes," "No." "No -" open an answer; "No one", "No-confidence" do not
_INTERJECTION = re.compile(r"^\W*(?:yes|no)(?:\s*[,.;:!]|\s+[-–—](?=\s)|\s*$)[\s,.;:!–—-]*", re.IGNORECASE)


def stated(claim: str) -> str:
    """What a claim states, without the "Yes," or "No," that opens an answer to a yes-or-no question.

    Whether that yes stands is :mod:`qa.polar`'s to check; the passage is checked for the rest.

    >>> stated("Yes, attendance was 62.5 percent."), stated("No - it fell."), stated("Nobody came.")
    ('attendance was 62.5 percent.', 'it fell.', 'Nobody came.')
    >>> stated("No one came."), stated("No-show fees rose.")
    ('No one came.', 'No-show fees rose.')
    """
    return _INTERJECTION.sub("", claim)


def _attach_markers(sentence: str, numbers: Sequence[int]) -> str:
    bare = bare_claim(sentence)
    if not numbers:
        return bare
    marks = "".join(f"[{n}]" for n in numbers)
    match = re.search(r"([.!?]+[\"'”’)]*)$", bare)
    if match:
        return f"{bare[:match.start()].rstrip()} {marks}{match.group(1)}"
    return f"{bare} {marks}"


def _best_pair(claim: str, passages: Sequence[Passage], scores: dict[int, float], question: str,
               floor: float) -> list[int]:
    """Two passages that together support a claim neither supports alone (a fact cut by a passage break)."""
    top = sorted(scores, key=lambda n: -scores[n])[:3]
    pairs = [(a, b) for i, a in enumerate(top) for b in top[i + 1:]]
    best: tuple[float, list[int]] = (0.0, [])
    for a, b in pairs:
        score = support(claim, passages[a - 1].text + " " + passages[b - 1].text, question)
        if score > best[0]:
            best = (score, sorted([a, b]))
    return best[1] if best[0] >= max(floor, 0.5) else []


def check_citations(text: str, passages: Sequence[Passage], policy: CheckPolicy = CheckPolicy(),
                    question: str = "") -> tuple[str, dict[int, list[str]]]:
    """Verify every sentence's markers against the passages.

    Returns the corrected text and, for each passage number kept, the claim
    sentences that cite it (for choosing quotes). A run of markers standing
    alone after a sentence belongs to that sentence.

    >>> from qa.store import Passage
    >>> p = [Passage("a", "Attendance was 62.5 percent.", "x", "T", "x", 0, 28)]
    >>> check_citations("Attendance was 62.5 percent. [1]", p)
    ('Attendance was 62.5 percent [1].', {1: ['Attendance was 62.5 percent.']})
    """
    text = normalise_markers(text, len(passages))
    units: list[list[Any]] = []  # [leading white space, sentence, cited numbers]
    cursor = 0
    for start, end in answer_sentences(text):
        sentence = text[start:end]
        cited = marker_numbers(" ".join(_MARKER.findall(sentence)))
        claim = bare_claim(sentence)
        if not claim.strip(" .,;:!?\"'") and units:
            units[-1][2].extend(cited)  # markers alone: they belong to the sentence before
        else:
            units.append([text[cursor:start], sentence, cited])
        cursor = end
    out: list[str] = []
    claims: dict[int, list[str]] = {}
    for lead, sentence, cited in units:
        claim = bare_claim(sentence)
        scores = {n: support(stated(claim), p.text, question) for n, p in enumerate(passages, 1)}
        best = max(scores, key=lambda n: scores[n]) if scores else 0
        words, numbers = key_terms(stated(claim))
        if not words and not numbers:
            keep = list(cited)  # nothing to check ("Yes [1].")
        else:
            floor = max(policy.min_support, policy.relative * scores.get(best, 0.0))
            keep = [n for n in cited if scores[n] >= floor]
            if not keep and best and scores[best] >= (policy.min_support if cited else policy.add_support):
                keep = [best]
            if not keep and cited:
                keep = _best_pair(stated(claim), passages, scores, question, policy.min_support)
        keep = list(dict.fromkeys(keep))
        for n in keep:
            claims.setdefault(n, []).append(claim)
        out.append(lead + _attach_markers(sentence, keep))
    return "".join(out).strip(), claims


def cited_claims(text: str, n_passages: int) -> tuple[str, dict[int, list[str]]]:
    """Markers as the model wrote them (invalid ones removed), without checking.

    >>> cited_claims("Ruiz spoke [1]. Lund left [7].", 2)
    ('Ruiz spoke [1]. Lund left.', {1: ['Ruiz spoke.']})
    """
    text = normalise_markers(text, n_passages)
    claims: dict[int, list[str]] = {}
    for start, end in answer_sentences(text):
        sentence = text[start:end]
        for n in marker_numbers(" ".join(_MARKER.findall(sentence))):
            claims.setdefault(n, []).append(bare_claim(sentence))
    return text, claims


def best_quote(passage: Passage, claims: Sequence[str], max_sentences: int = 2,
               question: str = "") -> tuple[str, int, int]:
    """The passage sentence(s) that best support ``claims``, with article offsets.

    Among sentences that support the claims equally, the one that shares most with ``question``
    wins: a short answer ("Corvale") is quoted from the sentence that speaks of what was asked.
    Returns (quote, start, end); ``start``/``end`` index the article text.

    >>> from qa.store import Passage
    >>> p = Passage("x", "Ana left Corvale in May. The old mill stood in Corvale.", "a", "T", "a.txt", 0, 55)
    >>> best_quote(p, ["Corvale"], question="Where did the old mill stand?")[0]
    'The old mill stood in Corvale.'
    """
    spans = sentence_spans(passage.text)
    if not spans:
        return passage.text, passage.start, passage.end
    words, numbers = key_terms(" ".join(claims))
    terms = {s: key_terms(passage.text[s[0]:s[1]]) for s in spans}
    topical = {s: term_share(question, passage.text[s[0]:s[1]]) for s in spans}

    def gain(span: tuple[int, int], covered: set[str]) -> float:
        s_words, s_numbers = terms[span]
        return len((words & s_words) - covered) + 3 * len((numbers & s_numbers) - covered)

    chosen: list[tuple[int, int]] = []
    covered: set[str] = set()
    for _ in range(max_sentences):
        candidates = [s for s in spans if s not in chosen]
        if not candidates:
            break
        top = max(candidates, key=lambda s: (gain(s, covered), topical[s]))
        if gain(top, covered) <= 0 and chosen:
            break
        chosen.append(top)
        s_words, s_numbers = terms[top]
        covered |= (words & s_words) | (numbers & s_numbers)
    start = min(s[0] for s in chosen)
    end = max(s[1] for s in chosen)
    return passage.text[start:end], passage.start + start, passage.start + end


def make_citations(claims: dict[int, list[str]], passages: Sequence[Passage],
                   question: str = "") -> list[Citation]:
    """One :class:`Citation` per cited passage number, in number order.

    Quotes are :func:`best_quote`'s, ties broken by ``question``.
    """
    out = []
    for number in sorted(claims):
        passage = passages[number - 1]
        quote, start, end = best_quote(passage, claims[number], question=question)
        out.append(Citation(number=number, article=passage.title, source=passage.source, chunk_id=passage.id,
                            quote=quote, outlet=passage.outlet, quote_start=start, quote_end=end,
                            passage=passage.text, date=passage.date))
    return out


def off_subject(question: str, citations: Sequence[Citation], passages: Sequence[Passage]) -> bool:
    """True when the answer's quotes share no key term with the question: they speak of something else.

    The citation check asks whether a passage supports the answer; this asks whether what it
    supports is what was asked. A small model asked for the deputy mayor can answer "Tom Lund"
    from "the HRC, a rowing club chaired by Tom Lund": the passage supports every word of the
    answer, and none of the question. Words match on their first five letters ("designed",
    "designer"; "rowed", "row"), numbers exactly. A quote counts with its article's outlet
    ("according to the Harbour Gazette"), and acronyms count with their long names, in the quote
    and in the question alike; not the title, whose words ("the ferry's new timetable") are in
    most questions about that article.

    >>> from qa.answer import Citation
    >>> lund = Citation(1, "Harbour news", "a.txt", "a#1", "The HRC, a rowing club chaired by Tom Lund, won 17 races.")
    >>> off_subject("Who became deputy mayor alongside Ana Ruiz?", [lund], [])
    True
    >>> off_subject("Which club did Tom Lund chair?", [lund], [])
    False
    >>> off_subject("Who designed the bridge?", [Citation(1, "", "a.txt", "a#1", "Ana Ruiz was its designer.")], [])
    False
    """
    if not citations:
        return False
    texts = [question] + [c.quote for c in citations]
    notes = glosses(texts + [p.text for p in passages])[: len(texts)]
    asked_words, asked_numbers = key_terms(f"{question} {notes[0]}")
    if not asked_words and not asked_numbers:
        return False
    words, numbers = key_terms(" ".join(f"{c.quote} {note} {c.outlet}"
                                        for c, note in zip(citations, notes[1:], strict=True)))
    if asked_numbers & numbers:
        return False
    return not any(related(a, b) for a in asked_words for b in words)


def related(a: str, b: str) -> bool:
    """Two key words of one family: the same first five letters, or all of the shorter one (three or more).

    >>> related("builder", "build"), related("rowed", "row"), related("resign", "resignation")
    (True, True, True)
    >>> related("won", "women"), related("lund", "lunar")
    (False, False)
    """
    n = min(5, len(a), len(b))
    return n >= 3 and a[:n] == b[:n] and (n == 5 or n == min(len(a), len(b)))
