"""What the model reads: whole sentences under a token budget (qa.excerpt)."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from qa.excerpt import GAP, choose, estimate_tokens, spans_of, spans_read
from qa.store import Passage
from qa.text import sentence_spans

WORDS = ["ferry", "harbour", "crew", "tide", "the", "left", "at", "noon", "gulls", "rope", "42", "3.5"]

sentence = st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(lambda w: " ".join(w).capitalize() + ".")
passage_text = st.lists(sentence, min_size=1, max_size=8).map(" ".join)


def _passages(texts: list[str]) -> list[Passage]:
    return [Passage(f"p{i}", t, "a", "T", "a.txt", 1000 * i, 1000 * i + len(t)) for i, t in enumerate(texts)]


@given(st.lists(passage_text, min_size=1, max_size=6), st.integers(min_value=0, max_value=400), st.randoms())
def test_the_budget_never_cuts_inside_a_sentence(texts: list[str], budget: int, rnd) -> None:  # type: ignore[no-untyped-def]
    passages = _passages(texts)
    scores = [[rnd.random() for _ in spans_of(p)] for p in passages]
    excerpts = choose(passages, scores, budget)
    assert excerpts and excerpts[0].passage is passages[0], "the best passage is always read"
    cost = 0
    for excerpt in excerpts:
        whole = set(spans_of(excerpt.passage))
        assert set(excerpt.spans) <= whole, "only whole sentences are kept"
        assert list(excerpt.spans) == sorted(excerpt.spans), "in passage order"
        cost += sum(estimate_tokens(excerpt.passage.text[a:b]) + 1 for a, b in excerpt.spans)
        # every piece the model reads is text of the passage
        for piece in excerpt.text.split(GAP):
            assert piece in excerpt.passage.text
    first = excerpts[0]
    alone = len(excerpts) == 1 and len(first.spans) == 1
    assert cost <= budget or alone, "over the budget only with the best passage's best sentence alone"


def test_best_sentences_first_then_their_neighbours() -> None:
    a, b = _passages(["Rain fell. The ferry left at noon. Gulls sat on the rope.",
                      "The pier is old. It was built of oak in the spring of that year."])
    small = choose([a, b], [[0.1, 0.9, 0.2], [0.3, 0.6]], budget=21)
    assert [e.text for e in small] == ["The ferry left at noon.", "It was built of oak in the spring of that year."]
    wide = choose([a, b], [[0.1, 0.9, 0.2], [0.3, 0.6]], budget=1000)
    assert [e.text for e in wide] == [a.text, b.text]
    (c,) = _passages(["Rain fell. The ferry left at noon with all of its crew and cargo on board. Gulls sat."])
    gapped = choose([c], [[0.9, 0.1, 0.8]], budget=10)
    assert gapped[0].text == f"Rain fell.{GAP}Gulls sat."
    assert gapped[0].as_passage().id == c.id and sentence_spans(gapped[0].as_passage().text)


def _overlapping(article: str, cuts: list[tuple[int, int]]) -> list[Passage]:
    return [Passage(f"p{i}", article[a:b], "a", "T", "a.txt", a, b) for i, (a, b) in enumerate(cuts)]


@given(st.lists(sentence, min_size=2, max_size=10), st.lists(st.tuples(st.integers(0, 9), st.integers(1, 4)),
                                                          min_size=2, max_size=5),
       st.integers(min_value=0, max_value=400), st.randoms())
def test_no_sentence_of_an_article_is_read_twice(sentences: list[str], cuts: list[tuple[int, int]], budget: int,
                                                 rnd: random.Random) -> None:
    # passages cut from one article that share sentences, as consecutive passages of a paragraph do
    article = " ".join(sentences)
    starts = [0]
    for s in sentences[:-1]:
        starts.append(starts[-1] + len(s) + 1)
    ends = [start + len(s) for start, s in zip(starts, sentences, strict=True)]
    last = len(sentences) - 1
    passages = _overlapping(article, [(starts[min(first, last)], ends[min(first + count, len(sentences)) - 1])
                                      for first, count in cuts])
    scores = [[rnd.random() for _ in spans_of(p)] for p in passages]
    excerpts = choose(passages, scores, budget)
    assert excerpts[0].passage is passages[0], "the best passage is always read"
    read = [(e.passage.start + a, e.passage.start + b) for e in excerpts for a, b in e.spans]
    assert len(read) == len(set(read)), "a sentence two passages share is read once"
    everything = [(e.passage.start + a, e.passage.start + b) for e in choose(passages, scores, 10_000)
                  for a, b in e.spans]
    covered = {(p.start + a, p.start + b) for p in passages for a, b in spans_of(p)}
    assert sorted(everything) == sorted(covered), "with budget to spare, every sentence once"


def test_a_sentence_an_earlier_reading_held_is_not_read_again() -> None:
    article = "Rain fell. The ferry left at noon. Gulls sat on the rope. The tide turned."
    first, second = _overlapping(article, [(0, 34), (11, 58)])  # both hold "The ferry left at noon."
    read = choose([first], [[0.1, 0.9]], budget=8)[0].as_passage()
    assert read.text == "The ferry left at noon."
    assert spans_read(read, first) == [("a", 11, 34)]
    again = choose([second], [[0.9, 0.5]], budget=100, read=spans_read(read, first))
    assert [e.text for e in again] == ["Gulls sat on the rope."]
    other = replace(second, article_id="b")  # the same words in another article are another sentence
    assert [e.text for e in choose([other], [[0.9, 0.5]], budget=100, read=[("a", 11, 34)])] == [other.text.strip()]


def test_a_sentence_that_only_partly_repeats_one_read_is_kept() -> None:
    # the heading has no full stop, so one passage reads it with the next sentence as one
    article = "Prices rose sharply\n\nFirst fact. Second fact is here. Third fact."
    whole, later = _overlapping(article, [(0, 32), (21, 53)])
    excerpts = choose([later, whole], [[0.9, 0.1], [0.8]], budget=100)
    assert "Prices rose sharply" in "".join(e.text for e in excerpts)


def test_a_passage_whose_best_sentence_was_read_gives_its_next_best() -> None:
    article = "Rain fell. The ferry left at noon. Gulls sat on the rope. The tide turned."
    first, second = _overlapping(article, [(0, 34), (11, 58)])  # both hold "The ferry left at noon."
    excerpts = choose([first, second], [[0.1, 0.9], [0.9, 0.5]], budget=14)
    assert [e.text for e in excerpts] == ["The ferry left at noon.", "Gulls sat on the rope."]
