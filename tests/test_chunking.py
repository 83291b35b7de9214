from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.articles import load_folder
from qa.chunking import Chunking, paragraph_spans, split_passages
from qa.text import sentence_spans

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def _check_passages(text: str, spans: list[tuple[int, int]]) -> None:
    last_start = -1
    for start, end in spans:
        assert 0 <= start < end <= len(text)
        assert start > last_start, "passages go forward"
        last_start = start
        assert text[start:end] == text[start:end].strip(), "no passage starts or ends with white space"
    covered = [False] * len(text)
    for start, end in spans:
        for i in range(start, end):
            covered[i] = True
    missing = "".join(c for c, hit in zip(text, covered, strict=True) if not hit and not c.isspace())
    assert missing == "", "every non-space character belongs to some passage"


@pytest.mark.parametrize("max_chars", [200, 400, 700, 1200])
def test_seed_passages_round_trip_and_end_on_sentences(max_chars: int) -> None:
    articles, skipped = load_folder(SEEDS)
    assert len(articles) == 5 and not skipped
    for article in articles:
        spans = split_passages(article.text, Chunking(max_chars=max_chars))
        _check_passages(article.text, spans)
        for start, end in spans:
            passage = article.text[start:end]
            # never cut mid-sentence: a passage ends at sentence punctuation or a paragraph end
            assert re.search(r"[.!?…\"'”’)\]:]$", passage) or end == len(article.text) or \
                article.text[end:end + 2] == "\n\n", passage[-60:]
            # sizes bounded unless a single sentence is longer than the limit
            if end - start > max_chars:
                assert len(sentence_spans(article.text, start, end)) == 1


def test_overlap_repeats_one_sentence_within_a_paragraph() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(20))
    spans = split_passages(text, Chunking(max_chars=120, overlap=1))
    for (_a1, b1), (a2, _b2) in zip(spans, spans[1:], strict=False):
        assert a2 < b1, "consecutive passages of one paragraph overlap"
    no_overlap = split_passages(text, Chunking(max_chars=120, overlap=0))
    for (_, b1), (a2, _) in zip(no_overlap, no_overlap[1:], strict=False):
        assert a2 > b1


def test_abbreviations_and_decimals_do_not_end_sentences() -> None:
    text = "The U.S. backed it. Turnout was 88.4 percent. Dr. Mesa lost."
    assert [text[a:b] for a, b in sentence_spans(text)] == [
        "The U.S. backed it.", "Turnout was 88.4 percent.", "Dr. Mesa lost."]


def test_paragraph_spans() -> None:
    text = "  A.\n\n\nB.\n  \nC"
    assert [text[a:b] for a, b in paragraph_spans(text)] == ["A.", "B.", "C"]


def test_a_huge_unpunctuated_line_is_cut_at_spaces() -> None:
    text = ("word " * 5000).strip()
    spans = split_passages(text, Chunking(max_chars=500))
    _check_passages(text, spans)
    assert max(b - a for a, b in spans) <= 2000


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .!?\n\tXY1,’”")), max_size=600),
       st.integers(min_value=20, max_value=300), st.integers(min_value=0, max_value=2))
def test_any_text_splits_into_passages_that_reproduce_it(text: str, max_chars: int, overlap: int) -> None:
    _check_passages(text, split_passages(text, Chunking(max_chars=max_chars, overlap=overlap)))


_PIECES = st.one_of(
    st.text(max_size=60),  # any Unicode, control characters and odd white space included
    st.sampled_from(["\n\n", "\n", ". ", "Dr. ", "U.S. ", "?! ", "… ", "     ", "\t", "\r\n", "\u2028", "\xa0",
                     "88.4% ", "“Quote.” ", "(A.) ", "e.g. ", "A", "Z"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=40), st.integers(min_value=10, max_value=500), st.integers(min_value=0, max_value=3))
def test_any_unicode_text_splits_into_passages_that_reproduce_it(parts: list[str], max_chars: int,
                                                                 overlap: int) -> None:
    text = "".join(parts)
    _check_passages(text, split_passages(text, Chunking(max_chars=max_chars, overlap=overlap)))


@settings(max_examples=200, deadline=None)
@given(st.lists(_PIECES, max_size=40), st.sampled_from([".txt", ".md", ".html"]))
def test_any_file_text_becomes_passages_whose_offsets_reproduce_the_article(parts: list[str], suffix: str) -> None:
    from qa.articles import parse_article
    from qa.ingest import article_passages

    article = parse_article("".join(parts), f"a{suffix}", suffix)
    passages = article_passages(article)
    assert len({p.id for p in passages}) == len(passages)
    for p in passages:
        assert article.text[p.start:p.end] == p.text and p.text.strip() == p.text and p.text
