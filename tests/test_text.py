"""The shared text tools: one stemmer and one stop-word list for retrieval and the checks alike."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from qa.citations import key_terms
from qa.text import STOP_WORDS, stem, tokens

WORDS = ["ferries", "designed", "resignation", "harbours", "bakeries", "rescued", "running", "cities"] * 200


def test_the_keyword_index_and_the_citation_check_stem_alike() -> None:
    for word in ["ferries", "ferry", "rescued", "rescues", "organisers"]:
        assert set(tokens(word)) == key_terms(word)[0] == {stem(word)}


def test_a_word_family_shares_one_stem() -> None:
    assert len({stem(w) for w in ["ferry", "ferries"]}) == 1
    assert len({stem(w) for w in ["rescue", "rescued", "rescuing"]}) == 1
    assert stem("ferry") != stem("fern")


def test_stop_words_are_left_out_of_both_and_won_is_no_stop_word() -> None:
    assert {"the", "said", "according", "many"} <= STOP_WORDS and "won" not in STOP_WORDS
    assert tokens("the mayor said many things") == ["mayor", "thing"]
    assert key_terms("the mayor said many things")[0] == {"mayor", "thing"}
    assert tokens("she won") == ["won"]


def test_stemming_from_many_threads_at_once_gives_the_same_stems() -> None:
    expected = [stem(w) for w in WORDS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: [stem(w) for w in WORDS], range(16)))
    assert all(result == expected for result in results)
