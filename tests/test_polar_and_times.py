"""Yes-or-no questions (qa.polar), times the question names (qa.times), long names the model adds
(qa.glossary.strip_expansions): the pipeline with a fake LLM and embedder over real Chroma."""

from __future__ import annotations

from qa.polar import HINT
from qa.prompt import build_messages
from qa.store import Passage

from .fakes import run_stream

RECORD = "Was the massive voter turnout of registered Bolivians a record participation rate?"


def test_a_yes_or_no_question_asks_for_what_the_passages_state() -> None:
    p = Passage("x", "Turnout was 88.4%.", "a.txt", "Vote", "a.txt", 0, 18)
    assert build_messages("Was that a record?", [p])[-1]["content"].endswith(f"Question: Was that a record? {HINT}")
    assert build_messages("Who won?", [p])[-1]["content"].endswith("Question: Who won?")
    assert HINT not in build_messages("Was that a record?", [p], style="plain")[-1]["content"]


def test_a_yes_or_no_question_is_not_answered_by_restating_it(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline("placeholder")
    passages = pipeline.retrieve(RECORD)
    n = next(i for i, p in enumerate(passages, 1) if "second-highest" in p.text)

    # every word is in the question or the passage, and the passage says "second-highest"
    for reply in (f"The massive voter turnout of registered Bolivians was a record participation rate [{n}].",
                  f"Yes, the participation rate of 88.4 percent was a record [{n}]."):
        answer = pipeline.finish(reply, RECORD, RECORD, passages)
        assert not answer.answered and answer.citations == [], reply

    answer = pipeline.finish(f"No, the participation rate of 88.4 percent was the second-highest in Bolivia’s "
                             f"history [{n}].", RECORD, RECORD, passages)
    assert answer.answered and "second-highest" in answer.citations[0].quote

    # a yes that its passage states stands
    asked = "Was the participation rate of 88.4 percent the second-highest in Bolivia’s history?"
    answer = pipeline.finish(f"Yes, 88.4 percent was the second-highest [{n}].", asked, asked, passages)
    assert answer.answered


def test_the_whole_pipeline_on_a_yes_or_no_question(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("placeholder")
    n = next(i for i, p in enumerate(pipeline.retrieve(RECORD), 1) if "second-highest" in p.text)
    # every word is in the question or the passage, so the citation check alone passes it
    reply = f"Yes, the participation rate of 88.4 percent was a record [{n}]."
    llm.replies = [reply]
    _, answer = run_stream(pipeline, RECORD)
    assert not answer.answered and answer.timings["readings"] == 2  # refused after the best and all passages
    assert all(call[-1]["content"].endswith(f"{RECORD} {HINT}") for call in llm.calls)
    assert pipeline.finish(reply, "What participation rate did registered Bolivians reach?", RECORD,
                           pipeline.retrieve(RECORD)).answered, "refused as a yes, not by the citation check"


MORALES = "Which two US agencies did Morales fight in the 1990s as leader of the coca growers union?"


def _passage(pipeline, needle: str) -> Passage:  # type: ignore[no-untyped-def]
    return next(p for p in pipeline.store.all_passages() if needle in p.text)


def test_an_answer_from_a_passage_about_another_time_is_refused(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline()
    elsewhere = _passage(pipeline, "ignoring constitutional limits")  # 2019, in an article without the 1990s
    nineties = _passage(pipeline, "when he fought USAID")  # "in the 90s"
    passages = [elsewhere, nineties]
    answer = pipeline.finish("Morales was running for a fourth term [1].", MORALES, MORALES, passages)
    assert not answer.answered
    answer = pipeline.finish("He fought USAID and the DEA [2].", MORALES, MORALES, passages)
    assert answer.answered and answer.citations[0].source == "003_41e6e3ef6e8987f6.txt"
    # without a time in the question, the same answer stands
    asked = "What was Morales running for?"
    assert pipeline.finish("Morales was running for a fourth term [1].", asked, asked, passages).answered


def test_a_passage_is_dated_by_its_section_heading(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    # The turnout passage names no year; it sits under the heading "October 2020 election".
    pipeline, _ = fake_pipeline()
    turnout = _passage(pipeline, "participation rate of 88.4 percent")
    assert "2020" not in turnout.text
    reply = "The voter turnout was 88.4 percent [1]."
    for year, stands in (("2020", True), ("2019", False)):
        asked = f"What was voter turnout in Bolivia's {year} election?"
        assert pipeline.finish(reply, asked, asked, [turnout]).answered is stands, year


def test_a_quote_without_a_year_is_dated_by_its_heading_title_or_article(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    # The passage names 2019 (the coup), not in the sentence quoted, which speaks of the 2020 vote.
    pipeline, _ = fake_pipeline()
    postponed = _passage(pipeline, "were then postponed, ostensibly owing to the coronavirus pandemic")
    assert "2019" in postponed.text and "2020" not in postponed.text
    reply = "The election was postponed owing to the coronavirus pandemic [1]."
    for year, stands in (("2020", True), ("2018", False)):  # the article names 2020, never 2018
        asked = f"Why was the {year} election postponed?"
        answer = pipeline.finish(reply, asked, asked, [postponed])
        assert answer.answered is stands, year
        assert not stands or "2019" not in answer.citations[0].quote


def test_a_decade_in_the_question_reaches_the_model(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    # "1990s" is in no passage as written ("in the 90s"): not a reason to refuse before asking
    pipeline, llm = fake_pipeline("NOT FOUND")
    run_stream(pipeline, MORALES)
    assert llm.calls


def test_long_names_the_model_adds_to_acronyms_are_dropped(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline()
    passages = [_passage(pipeline, "when he fought USAID")]
    reply = "The US Agency for International Development (USAID) and the Drug Enforcement Administration (DEA) [1]."
    answer = pipeline.finish(reply, MORALES, MORALES, passages)
    assert answer.answered and answer.text == "The USAID and the DEA [1]."


def test_a_yes_to_did_stands_on_the_past_tense(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline()
    won = _passage(pipeline, "Luis Arce resoundingly won elections")
    reply = "Yes, Luis Arce won the elections to become president [1]."
    asked = "Did Luis Arce win the elections to become president?"  # the passage says "won"
    assert pipeline.finish(reply, asked, asked, [won]).answered
    asked = "Did Luis Arce lose the elections to become president?"  # nor "lose" nor "lost"
    assert not pipeline.finish(reply, asked, asked, [won]).answered
