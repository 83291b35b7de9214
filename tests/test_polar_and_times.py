"""Yes-or-no questions (qa.polar), times the question names (qa.times), long names the model adds
(qa.glossary.strip_expansions): the pipeline with a fake LLM and embedder over real Chroma."""

from __future__ import annotations

from qa.polar import HINT, unsupported
from qa.prompt import build_messages
from qa.store import Passage
from qa.times import times, unnamed_times

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
    assert not answer.answered and answer.timings["readings"] == 1  # refused after the best passages
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


def _article(text: str, title: str = "Notes") -> list[Passage]:
    """One article of hand-made passages, cut at blank-line pairs marked '||'."""
    out, start = [], 0
    for n, part in enumerate(text.split("||")):
        out.append(Passage(f"p{n}", part, "a", title, "a.txt", start, start + len(part)))
        start += len(part) + 2
    return out


def test_a_heading_inside_the_passage_dates_the_quote_below_it() -> None:
    article = _article("November 2019 coup\n\nMorales fled.\n\nOctober 2020 election\n\nTurnout was 88.4 percent.")
    passage = article[0]
    turnout = [("Turnout was 88.4 percent.", passage)]
    assert unnamed_times("What was turnout in the 2020 election?", turnout, {"a": article}) == []
    assert unnamed_times("What was turnout in the 2019 election?", turnout, {"a": article}) == ["2019"]
    assert unnamed_times("Who fled in 2019?", [("Morales fled.", passage)], {"a": article}) == []


def test_a_quote_without_heading_or_title_time_is_dated_by_its_whole_article() -> None:
    article = _article("Rain fell all week.||In March 2021 the river rose.")
    rain = [("Rain fell all week.", article[0])]
    assert unnamed_times("Did rain fall in 2021?", rain, {"a": article}) == []
    assert unnamed_times("Did rain fall in 2022?", rain, {"a": article}) == ["2022"]
    # the title names a time before the article's body does
    titled = _article("Rain fell all week.||In March 2021 the river rose.", title="Floods of 2020")
    assert unnamed_times("Did rain fall in 2021?", [("Rain fell all week.", titled[0])], {"a": titled}) == ["2021"]


def test_bounds_comparisons_ages_and_counts_are_not_dates() -> None:
    assert times("How has turnout changed since 2019?") == set()
    assert times("Was turnout higher than in 2019, up from 2018's?") == set()
    assert times("Who was the man in his mid-30s arrested?") == set()
    assert times("What happened in the mid-’90s?") == {"1990s"}
    article = _article("Police held 1,800 people.")
    assert unnamed_times("Were 1800 people arrested?", [("Police held 1,800 people.", article[0])],
                         {"a": article}) == []


def test_negative_questions_and_denials_the_passage_states() -> None:
    won = ["Luis Arce won the election."]
    assert not unsupported("Didn't Arce win the election?", "Yes, Arce won the election [1].", won)
    assert not unsupported("Did the no-confidence vote pass?", "The no-confidence vote passed [1].",
                           ["The no-confidence vote passed on Tuesday."])
    asked = "Did Morales attend the inauguration?"
    denial = "No, Morales did not attend the inauguration [1]."
    assert not unsupported(asked, denial, ["Arce was sworn in. Morales did not attend the inauguration."])
    # a passage silent on the claim does not deny it
    assert unsupported(asked, denial, ["Arce was sworn in at the inauguration. Morales was in Argentina."])
