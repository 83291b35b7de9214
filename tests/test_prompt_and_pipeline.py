"""Prompt building and the pipeline's logic, with a fake LLM and embedder over real Chroma."""

from __future__ import annotations

import re

import pytest

from qa.answer import STAGES, Answer, Retrieved
from qa.citations import check_citations
from qa.config import Settings
from qa.errors import EmptyQuestionError, QAError
from qa.excerpt import spans_of, spans_read
from qa.pipeline import REFUSAL
from qa.prompt import EXAMPLES, NOT_FOUND, SYSTEM_PROMPT, build_messages, format_passages, passage_line
from qa.rewrite import EXAMPLE, INSTRUCTION
from qa.store import Passage

from .fakes import run_stream

NARROW = Settings.narrow_k  # how many of the passages found the model reads first
# worded for the bag-of-words fake embedder, which only matches shared words
TURNOUT = "What participation rate did the massive voter turnout of registered Bolivians reach?"


def test_prompt_puts_the_constant_part_first() -> None:
    p = Passage("x", "Turnout was 88.4%.", "a.txt", "Vote", "a.txt", 0, 18)
    history = [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1 [1]. " + "x" * 500}]
    messages = build_messages("And then?", [p], history)
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    # the worked examples follow, unchanged for every question (llama.cpp caches this prefix)
    assert messages[1:-1] == build_messages("Other?", [], [])[1:-1]
    last = messages[-1]["content"]
    assert last.startswith("Passages:\n[1] (Vote) Turnout was 88.4%.")
    assert "User: Q1\nYou: A1." in last and "[1]." not in last.split("Earlier")[1]
    assert len(last) < 500 and last.endswith("Question: And then?")


def test_worked_examples_pass_the_citation_check() -> None:
    # The model copies the worked examples' form, so each answer must be one the checks keep as it is:
    # every marker supported by its passage.
    refusals = 0
    for asked, answered in EXAMPLES:
        listed, question = asked.removeprefix("Passages:\n").split("\n\nQuestion: ")
        texts = [re.sub(r"^\[\d+\] (\(Town paper\) )?", "", line) for line in listed.split("\n\n")]
        passages = [Passage(str(n), t, "x", "Town paper", "x.txt", 0, len(t)) for n, t in enumerate(texts)]
        assert format_passages(passages) == listed  # laid out as every question's passages are
        if answered == NOT_FOUND:
            refusals += 1
            continue
        text, claims = check_citations(answered, passages, question=question)
        assert text == answered and claims, (question, text)
    assert refusals == 1


def test_plain_prompt_for_comparison() -> None:
    p = Passage("x", "Turnout was 88.4%.", "a.txt", "Vote", "a.txt", 0, 18)
    messages = build_messages("Turnout?", [p], style="plain")
    assert [m["role"] for m in messages] == ["system", "user"]


_run = run_stream


def test_supported_answer_keeps_its_checked_citation(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("placeholder")
    passages = pipeline.retrieve(TURNOUT)
    n = next(i for i, p in enumerate(passages, 1) if "88.4" in p.text)
    llm.replies = [f"Turnout was 88.4 percent [{n}]. It was the second-highest in history [9]."]
    streamed, answer = _run(pipeline, TURNOUT)
    assert answer.answered
    assert "[9]" not in streamed and "[9]" not in answer.text, "a marker naming no passage is never shown"
    assert [c.number for c in answer.citations] == [n]
    assert "88.4" in answer.citations[0].quote
    assert answer.citations[0].source == "002_91029d526ce3fca8.txt"


def test_not_found_becomes_a_plain_refusal_without_citations(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline("NOT FOUND")
    streamed, answer = _run(pipeline, "Who won Bolivia's 2025 election?")
    assert (answer.answered, answer.text, answer.citations) == (False, REFUSAL, [])
    assert "NOT FOUND" not in streamed and streamed == REFUSAL


def test_an_answer_no_passage_supports_is_refused(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline("Bolivia's capital is Sucre, founded in 1538 [1].")
    _, answer = _run(pipeline, "What is the capital of Bolivia?")
    assert not answer.answered and answer.citations == []


def test_an_answer_of_the_wrong_kind_is_refused(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    # "How many votes" answered with a share: true and cited, but not an answer to the question.
    pipeline, llm = fake_pipeline("placeholder")
    question = "How many votes did Luis Camacho get?"
    n = next(i for i, p in enumerate(pipeline.retrieve(question), 1) if "13 percent" in p.text)
    llm.replies = [f"Luis Camacho came third with 13 percent of the vote [{n}]."]
    _, answer = _run(pipeline, question)
    assert not answer.answered and answer.citations == []

    question = "What share of the vote did Luis Camacho get?"
    n = next(i for i, p in enumerate(pipeline.retrieve(question), 1) if "13 percent" in p.text)
    llm.replies = [f"Luis Camacho came third with 13 percent of the vote [{n}]."]
    _, answer = _run(pipeline, question)
    assert answer.answered and "13 percent" in answer.text


def test_an_answer_whose_quote_is_about_something_else_is_refused(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    # "Carlos Mesa" is in a passage, so the citation check passes it, but that passage's sentence
    # about him says nothing of the vice-presidency.
    pipeline, _ = fake_pipeline()
    passages = pipeline.retrieve("The MAS got a distance of over 26 points against the Citizen Community party, "
                                 "presided by Carlos Mesa; sworn in as president and vice-president respectively")
    mesa = next(i for i, p in enumerate(passages, 1) if "presided by Carlos Mesa" in p.text)
    sworn = next(i for i, p in enumerate(passages, 1) if "vice-president respectively" in p.text)
    question = "Who became Bolivia's vice-president alongside Luis Arce?"
    answer = pipeline.finish(f"Carlos Mesa [{mesa}].", question, question, passages)
    assert not answer.answered and answer.citations == []
    answer = pipeline.finish(f"David Choquehuanca [{sworn}].", question, question, passages)
    assert answer.answered and "vice-president" in answer.citations[0].quote


def _passage_lines(messages) -> list[str]:  # type: ignore[no-untyped-def]
    return [line for line in messages[-1]["content"].splitlines() if line[:1] == "["]


def test_the_best_passages_are_read_first(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("Turnout was 88.4 percent [1].")
    assert "88.4" in pipeline.retrieve(TURNOUT)[0].text
    streamed, answer = _run(pipeline, TURNOUT)
    assert len(llm.calls) == 1 and len(_passage_lines(llm.calls[0])) == NARROW
    assert answer.answered and streamed == answer.text == "Turnout was 88.4 percent [1]."
    assert len(answer.passages) == 6, "the answer lists every passage retrieved"


def _read_text(line: str) -> str:
    """What the model read of one passage: its line of the prompt without the number and any title."""
    return re.sub(r"^\[\d+\] (\([^)]*\) )?", "", line)


def _whole_sentences(read: str, passage: str) -> bool:
    """Is every piece of ``read`` (pieces joined by the excerpt's gap) whole sentences of ``passage``?"""
    from qa.excerpt import GAP
    from qa.text import sentence_spans

    starts = {a for a, _ in sentence_spans(passage)}
    ends = {b for _, b in sentence_spans(passage)}
    for piece in read.split(GAP.strip()):
        piece = piece.strip()
        at = passage.find(piece)
        if not piece or at < 0 or at not in starts or at + len(piece) not in ends:
            return False
    return True


def test_a_refusal_from_the_best_passages_ends_there_by_default(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("placeholder")
    passages = pipeline.retrieve(TURNOUT)
    n = next(i for i, p in enumerate(passages, 1) if "extreme poverty" in p.text)
    for first in ("NOT FOUND", "Turnout was 61.2 percent [1]."):  # refused by the model, and by a check
        llm.calls, llm.replies = [], [first, f"The rate of extreme poverty was dramatically reduced [{n}]."]
        _, answer = _run(pipeline, TURNOUT)
        assert [len(_passage_lines(c)) for c in llm.calls] == [NARROW] and answer.timings["readings"] == 1
        assert not answer.answered and answer.refused_by == ("model" if first == "NOT FOUND" else "citations")
        assert "second_reading_s" not in answer.timings
    found, read, reread = pipeline.found_and_read(TURNOUT)
    assert len(read) == NARROW and reread == read, "no second reading to measure"


def test_a_refusal_from_the_best_passages_reads_on(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    from qa.excerpt import estimate_tokens

    pipeline, llm = fake_pipeline("placeholder", read_on=True)
    passages = pipeline.retrieve(TURNOUT)
    n = next(i for i, p in enumerate(passages, 1) if "extreme poverty" in p.text)
    assert n > NARROW
    poverty = f"The rate of extreme poverty was dramatically reduced [{n}]."
    llm.replies = ["NOT FOUND", poverty]
    streamed, answer = _run(pipeline, TURNOUT)
    assert [len(_passage_lines(c)) for c in llm.calls] == [NARROW, 6] and answer.timings["readings"] == 2
    assert llm.calls[0][:-1] == llm.calls[1][:-1], "both readings share the cached prefix"
    first, second = (_passage_lines(c) for c in llm.calls)
    assert second[:NARROW] == first, "the first reading is read again, word for word, so llama.cpp reuses it"
    more = [_read_text(line) for line in second[NARROW:]]
    assert sum(estimate_tokens(t) + 1 for t in more) <= pipeline.settings.more_tokens
    by_id = {p.id: p.text for p in passages}
    assert all(_whole_sentences(t, by_id[p.id]) for t, p in zip(more, passages[NARROW:], strict=True))
    assert answer.answered and answer.text == streamed == poverty, "the second reply streams: nothing was shown"
    assert [c.number for c in answer.citations] == [n]

    # a first reply that was shown and then refused by the check: the second one is not streamed
    # after it; the final answer replaces it
    llm.replies = ["Turnout was 61.2 percent [1].", poverty]
    streamed, answer = _run(pipeline, TURNOUT)
    assert streamed == "Turnout was 61.2 percent [1]." and answer.text == poverty

    # refused twice: one refusal, shown once
    llm.replies = ["NOT FOUND", "NOT FOUND"]
    streamed, answer = _run(pipeline, TURNOUT)
    assert streamed == answer.text == REFUSAL and not answer.answered


def test_a_sure_refusal_of_the_best_passages_ends_there(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("NOT FOUND", "Turnout was 88.4 percent [3].", sure_refusal=0.9, read_on=True)
    opened: list[tuple[list[dict[str, str]], tuple[str, ...]]] = []
    surety = [0.95]

    def opening_probability(messages, words):  # type: ignore[no-untyped-def]
        opened.append((list(messages), tuple(words)))
        return surety[0]

    llm.opening_probability = opening_probability
    _, answer = _run(pipeline, TURNOUT)
    assert len(llm.calls) == 1 and answer.timings["readings"] == 1 and answer.timings["refusal_p"] == 0.95
    assert opened[0][0] == llm.calls[0] and "NOT FOUND" in opened[0][1], "asked of the prompt just answered"
    assert not answer.answered and answer.refused_by == "model" and "was sure of it (0.95)" in answer.reason
    assert [(v.check, v.score) for v in answer.checks] == [("model", 0.95)]

    surety[0] = 0.6  # not sure enough: the rest is read, and answers
    llm.replies = ["NOT FOUND", "Turnout was 88.4 percent [3]."]
    _, answer = _run(pipeline, TURNOUT)
    assert [len(_passage_lines(c)) for c in llm.calls[1:]] == [NARROW, 6] and answer.timings["refusal_p"] == 0.6
    assert answer.timings["readings"] == 2

    pipeline, llm = fake_pipeline("NOT FOUND", read_on=True)  # a backend that cannot say: the rest is read
    _, answer = _run(pipeline, TURNOUT)
    assert [len(_passage_lines(c)) for c in llm.calls] == [NARROW, 6] and "refusal_p" not in answer.timings


def test_an_answer_the_model_doubted_is_refused_by_doubt(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("Turnout was 88.4 percent [1].", doubt=0.5, read_on=True)
    doubt = [0.7]
    opened: list[list[dict[str, str]]] = []

    def opening_probability(messages, words):  # type: ignore[no-untyped-def]
        opened.append(list(messages))
        assert "NOT FOUND" in words
        return doubt[0]

    llm.opening_probability = opening_probability
    streamed, answer = _run(pipeline, TURNOUT)
    assert opened == llm.calls, "measured on the prompt just answered"
    assert not answer.answered and answer.refused_by == "doubt" and "0.70" in answer.reason
    assert len(llm.calls) == 1, "a doubted answer is not asked again"
    assert answer.draft == "Turnout was 88.4 percent [1]." and answer.timings["doubt_p"] == 0.7
    assert answer.checks[-1].check == "doubt" and answer.checks[-1].score == 0.7

    doubt[0] = 0.2  # below the threshold: the answer stands, its doubt recorded
    _, answer = _run(pipeline, TURNOUT)
    assert answer.answered and answer.timings["doubt_p"] == 0.2
    assert ("doubt", True, 0.2) in [(v.check, v.passed, v.score) for v in answer.checks]

    pipeline, llm = fake_pipeline("Turnout was 88.4 percent [1].", doubt=0.5, without=frozenset({"doubt"}))
    llm.opening_probability = opening_probability
    doubt[0] = 0.9  # switched off: not even measured
    _, answer = _run(pipeline, TURNOUT)
    assert answer.answered and "doubt_p" not in answer.timings

    pipeline, llm = fake_pipeline("Turnout was 88.4 percent [1].", doubt=0.5)  # a backend that cannot say
    _, answer = _run(pipeline, TURNOUT)
    assert answer.answered and "doubt_p" not in answer.timings


def test_a_passage_left_out_of_the_second_reading_keeps_the_numbering_right(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("placeholder", read_on=True)
    found, _, _, _, vector = pipeline._retrieve(TURNOUT, [], None)
    passages = found.passages
    first = pipeline.reading(TURNOUT, vector, passages)
    for budget in range(10, 400, 5):  # a budget that leaves out a passage before one it keeps
        pipeline.settings.more_tokens = budget
        ids = [p.id for p in pipeline.rereading(TURNOUT, vector, passages, first)]
        if ids != [p.id for p in passages[:len(ids)]]:
            break
    else:
        raise AssertionError("no budget leaves a gap")
    llm.replies = ["NOT FOUND", "NOT FOUND"]
    _run(pipeline, TURNOUT)
    second = _passage_lines(llm.calls[1])
    assert len(second) == len(ids)
    # the model cites a passage read after the gap, whose number in the reading is not its own
    last = next(n for n, i in enumerate(ids, 1) if i != passages[n - 1].id)
    position = [p.id for p in passages].index(ids[last - 1]) + 1
    assert position > last
    sentence = _read_text(second[last - 1]).split(" … ")[0].strip()
    llm.calls, llm.replies = [], ["NOT FOUND", f"{sentence} [{last}]"]
    streamed, answer = _run(pipeline, TURNOUT)
    assert answer.answered, answer.reason
    assert [c.number for c in answer.citations] == [position] and f"[{position}]" in answer.text
    assert answer.citations[0].chunk_id == passages[position - 1].id
    assert answer.citations[0].passage == passages[position - 1].text
    assert streamed == answer.text, "not streamed while its numbers differed; given whole at the end"


def test_a_passage_left_out_of_the_first_reading_goes_after_those_read(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    for budget in range(60, 400, 5):  # a budget the second passage's best sentence does not fit
        pipeline, llm = fake_pipeline("placeholder", first_tokens=budget)
        found, read, _ = pipeline.found_and_read(TURNOUT)
        positions = [[p.id for p in found].index(p.id) for p in read]
        if positions != list(range(len(read))):
            break
    else:
        raise AssertionError("no budget leaves a passage out of the first reading")
    skipped, second = found[positions[1] - 1], found[positions[1]]
    sentence = read[1].text.split(" … ")[0].strip()
    llm.replies = [f"{sentence.rstrip('.')} [2]."]
    items = list(pipeline.ask_stream(TURNOUT))
    retrieved, answer = items[0], items[-1]
    pieces = [i for i in items if isinstance(i, str)]
    assert isinstance(retrieved, Retrieved) and isinstance(answer, Answer)
    assert [p.id for p, _ in retrieved.read] == [p.id for p in read], "the page shows what the model reads"
    assert retrieved.passages[len(read)].id == skipped.id and retrieved.passages == answer.passages
    assert answer.answered and len(pieces) > 1 and "".join(pieces) == answer.text, "streamed as it came"
    assert answer.citations[0].number == 2 and answer.citations[0].chunk_id == second.id
    assert answer.passages[1].id == second.id and "[2]" in answer.text


def test_a_share_given_for_a_count_is_refused_by_the_kind_check_unless_it_is_off(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("placeholder", first_tokens=0, more_tokens=0)  # whole passages
    question = "How many votes did the MAS and the Citizen Community each get overall?"
    passages = pipeline.retrieve(question)
    share = next(i for i, p in enumerate(passages, 1) if "55 percent of the votes" in p.text)
    shares = f"The MAS got over 55 percent of the votes [{share}]."
    llm.replies = [shares, shares]
    _, answer = _run(pipeline, question)
    assert [len(_passage_lines(c)) for c in llm.calls] == [NARROW], "refused from the best passages"
    assert not answer.answered and answer.refused_by == "kind" and "percentage" in answer.reason
    assert answer.draft and [v.check for v in answer.checks] == ["kind"]
    assert answer.to_dict()["refused_by"] == "kind"

    pipeline, llm = fake_pipeline(shares, without=frozenset({"kind"}), narrow_k=0)
    _, answer = _run(pipeline, question)
    assert answer.answered and "kind" not in [v.check for v in answer.checks]
    assert "refused_by" not in answer.to_dict()


def test_a_negated_question_answered_from_a_sentence_that_negates_nothing_is_refused(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("placeholder", first_tokens=0, more_tokens=0)  # whole passages
    question = "How many Bolivians did not go to the polls?"
    passages = pipeline.retrieve(question)
    turnout = next(i for i, p in enumerate(passages, 1) if "6,483,893 Bolivians" in p.text)
    went = f"About 6,483,893 Bolivians went to the polls [{turnout}]."
    llm.replies = [went]
    _, answer = _run(pipeline, question)
    assert not answer.answered and answer.refused_by == "negation" and "not so" in answer.reason

    pipeline, llm = fake_pipeline(went, without=frozenset({"negation"}), first_tokens=0, more_tokens=0)
    _, answer = _run(pipeline, question)
    assert answer.answered and "negation" not in [v.check for v in answer.checks]

    question = "Which labor union confederation is not formally linked to the party?"
    pipeline, llm = fake_pipeline("placeholder", first_tokens=0, more_tokens=0)
    passages = pipeline.retrieve(question)
    union = next(i for i, p in enumerate(passages, 1) if "is not formally linked" in p.text)
    llm.replies = [f"The main labor union confederation, the COB, is not formally linked [{union}]."]
    _, answer = _run(pipeline, question)
    assert answer.answered, answer.reason
    assert any(v.check == "negation" and v.passed for v in answer.checks)


def test_a_question_whose_reading_holds_only_its_opposite_is_refused_before_the_model(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    question = "What was the lowest participation rate?"
    pipeline, llm = fake_pipeline("NOT FOUND")
    _, answer = _run(pipeline, question)
    assert not answer.answered and answer.refused_by == "opposite" and not llm.calls
    assert "\u201chighest\u201d" in answer.reason and "\u201clowest\u201d" in answer.reason
    assert [v.check for v in answer.checks] == ["opposite"] and answer.timings["total_s"] > 0

    pipeline, llm = fake_pipeline("NOT FOUND", without=frozenset({"opposite"}))
    _, answer = _run(pipeline, question)
    assert llm.calls and answer.refused_by == "model"

    pipeline, llm = fake_pipeline("NOT FOUND")  # a yes-or-no question: its answer may be the opposite
    _, answer = _run(pipeline, "Was the participation rate the lowest ever?")
    assert llm.calls and answer.refused_by != "opposite"

    # a follow-up: the word must be the user's own, not only the rewrite's
    pipeline, llm = fake_pipeline(question, "NOT FOUND")
    answer = pipeline.ask("And what about the rate?", [("How many Bolivians voted?", "About 6.4 million [1].")])
    assert answer.query == question and len(llm.calls) == 2 and answer.refused_by == "model"
    pipeline, llm = fake_pipeline(question, "NOT FOUND")
    answer = pipeline.ask("And the lowest rate?", [("How many Bolivians voted?", "About 6.4 million [1].")])
    assert answer.query == question and len(llm.calls) == 1 and answer.refused_by == "opposite"


def test_without_the_check_there_is_one_reading_of_all_passages(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("NOT FOUND", check=False)
    _, answer = _run(pipeline, TURNOUT)
    assert not answer.answered and [len(_passage_lines(c)) for c in llm.calls] == [6]
    assert answer.timings["readings"] == 1


def test_a_bare_marker_becomes_the_cited_sentence(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("placeholder")
    question = TURNOUT
    n = next(i for i, p in enumerate(pipeline.retrieve(question), 1) if "88.4" in p.text)
    llm.replies = [f"[{n}]"]
    _, answer = _run(pipeline, question)
    assert answer.answered and "88.4" in answer.text and answer.text.endswith(f"[{n}]")


def test_a_follow_up_is_rewritten_into_a_standalone_question(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("How many seats did the MAS win in the Senate?", "NOT FOUND", read_on=True)
    history = [("How many seats did the MAS win in the lower house?", "73 of 130 [1].")]
    answer = pipeline.ask("And in the Senate?", history)
    rewrite, narrow, prompt = llm.calls  # the refusal from the best passages leads to a reading of all
    assert narrow[:-1] == prompt[:-1]
    assert INSTRUCTION in rewrite[-1]["content"] and "User: And in the Senate?" in rewrite[-1]["content"]
    assert rewrite[:len(prompt) - 1] == prompt[:-1]  # the same cached prefix as the answer's prompt
    shown, rewritten = EXAMPLE  # then one worked rewrite
    assert shown in rewrite[-3]["content"] and rewrite[-2] == {"role": "assistant", "content": rewritten}
    assert "21 of the 36 seats in the Senate" in prompt[-1]["content"]
    assert "Question: How many seats did the MAS win in the Senate?" in prompt[-1]["content"]
    assert answer.query == "How many seats did the MAS win in the Senate?"
    assert answer.question == "And in the Senate?" and "rewrite_s" in answer.timings


def test_an_unusable_rewrite_falls_back_to_the_previous_question(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("How many seats did the MAS win in the lower house?", "NOT FOUND")
    history = [("How many seats did the MAS win in the lower house?", "73 of 130 [1].")]
    answer = pipeline.ask("And in the Senate?", history)
    prompt = llm.calls[1][-1]["content"]
    assert "21 of the 36 seats in the Senate" in prompt
    assert "User: How many seats did the MAS win in the lower house?" in prompt
    assert "Question: And in the Senate?" in prompt
    assert answer.query == "How many seats did the MAS win in the lower house? And in the Senate?"


def test_only_follow_ups_are_rewritten(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("NOT FOUND", narrow_k=0)
    pipeline.ask("How many seats did the MAS win in the Senate?")
    pipeline.ask("How many seats did the MAS win in the Senate?", [("Who won?", "Arce [1].")])
    assert len(llm.calls) == 2 and all(INSTRUCTION not in c[-1]["content"] for c in llm.calls)


def test_article_filter_limits_retrieval(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline()
    passages = pipeline.retrieve("turnout", articles=["003_41e6e3ef6e8987f6.txt"])
    assert passages and {p.source for p in passages} == {"003_41e6e3ef6e8987f6.txt"}


@pytest.mark.parametrize("question", ["", "   \n\t", "\x00\x01"])
def test_empty_questions_are_refused_clearly(fake_pipeline, question: str) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline()
    with pytest.raises(EmptyQuestionError, match="empty"):
        pipeline.ask(question)


def test_overlong_question_is_refused_before_the_model(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline()
    with pytest.raises(QAError, match="limited to"):
        pipeline.ask("why " * 30000)
    assert llm.calls == []


def test_the_first_reading_is_cut_to_whole_sentences_and_quoted_from_them(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    from qa.excerpt import estimate_tokens

    pipeline, llm = fake_pipeline("Turnout was 88.4 percent [1].", first_tokens=120)
    passages = pipeline.retrieve(TURNOUT)
    streamed, answer = _run(pipeline, TURNOUT)
    (call,) = llm.calls
    read = [_read_text(line) for line in _passage_lines(call)]
    assert 1 <= len(read) <= NARROW and sum(estimate_tokens(t) + 1 for t in read) <= 120
    assert all(_whole_sentences(t, p.text) for t, p in zip(read, passages, strict=False)), "no sentence cut"
    assert not read[0].startswith(passage_line(passages[0].text)), "the best passage itself was cut"
    (citation,) = answer.citations
    assert citation.quote in read[0], "the quote is a sentence the model read"
    whole = passages[0]
    assert citation.chunk_id == whole.id and citation.passage == whole.text
    assert whole.text[citation.quote_start - whole.start:][:len(citation.quote)] == citation.quote

    # 0: the best passages whole
    pipeline, llm = fake_pipeline("Turnout was 88.4 percent [1].", first_tokens=0)
    _run(pipeline, TURNOUT)
    lines = [_read_text(line) for line in _passage_lines(llm.calls[0])]
    assert len(lines) == NARROW
    assert all(t.startswith(passage_line(p.text)) for t, p in zip(lines, passages, strict=False))


def test_with_a_token_budget_the_model_reads_sentences_and_quotes_them(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    from qa.excerpt import estimate_tokens

    pipeline, llm = fake_pipeline("Turnout was 88.4 percent [1].", read_tokens=120, read_on=True)
    passages = pipeline.retrieve(TURNOUT)
    streamed, answer = _run(pipeline, TURNOUT)
    (call,) = llm.calls
    lines = _passage_lines(call)
    read = [_read_text(line) for line in lines]
    assert sum(estimate_tokens(t) for t in read) < sum(estimate_tokens(p.text) for p in passages)
    assert answer.timings["passage_tokens"] <= 120 + len(lines)
    assert answer.answered and streamed == answer.text
    (citation,) = answer.citations
    number = citation.number
    assert citation.quote in read[[p.id for p in passages].index(citation.chunk_id)], "the quote was read"
    whole = passages[number - 1]
    assert citation.chunk_id == whole.id and citation.passage == whole.text
    offset = citation.quote_start - whole.start
    assert whole.text[offset:offset + len(citation.quote)] == citation.quote

    # a refusal is final: no second reading of whole passages
    llm.replies, llm.calls = ["NOT FOUND"], []
    streamed, answer = _run(pipeline, TURNOUT)
    assert len(llm.calls) == 1 and not answer.answered and answer.timings["readings"] == 1


def test_the_passages_found_come_first_then_the_text_then_the_answer(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("Turnout was 88.4 percent [1].")
    items = list(pipeline.ask_stream(TURNOUT))
    found, pieces, answer = items[0], items[1:-1], items[-1]
    assert isinstance(found, Retrieved) and isinstance(answer, Answer)
    assert pieces and all(isinstance(p, str) for p in pieces) and "".join(pieces) == answer.text
    assert found.passages == answer.passages and found.reading == NARROW == len(found.read)
    for passage, sentence in zip(found.passages, found.sentences, strict=True):
        assert sentence.strip() and sentence in passage.text, "each passage's best sentence is one of its own"
    assert "88.4" in found.sentences[0], "the sentence closest to the question"
    assert found.to_dict()["passages"][0]["article"] == found.passages[0].title


def test_a_refusal_before_the_model_still_tells_what_was_found(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("never asked")
    items = list(pipeline.ask_stream("How many votes were cast in 1066?"))
    assert isinstance(items[0], Retrieved) and items[0].reading == 0, "the model reads nothing"
    assert items[1:-1] == [REFUSAL] and isinstance(items[-1], Answer) and not llm.calls


def test_what_only_the_audit_measures_is_left_out_of_the_wait(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    import time

    from qa.answer import Verdict
    from qa.checks import Check, failed

    def slow(draft: object) -> Verdict:
        time.sleep(0.5)
        return Verdict("judge", True, "", 0.9)

    def doubt(messages, words):  # type: ignore[no-untyped-def]
        time.sleep(0.5)
        return 0.1

    refusing = [Check("kind", lambda draft: failed("kind", "a test refusal")), Check("judge", slow)]
    for audit, checks, doubting in ((True, refusing, 1.0), (False, refusing, 1.0), (True, refusing[1:], 1.0),
                                    (True, refusing[1:], 0.5)):
        pipeline, llm = fake_pipeline("Turnout was 88.4 percent [1].", audit=audit, doubt=doubting)
        pipeline.checks = lambda checks=checks: checks  # type: ignore[method-assign,misc]
        llm.opening_probability = doubt
        started = time.perf_counter()
        answer = _run(pipeline, TURNOUT)[1]
        wall = time.perf_counter() - started
        timings = answer.timings
        assert timings["total_s"] >= timings["checks_s"]
        if doubting < 1:  # the doubt may refuse: a user waits for it
            assert answer.answered and "audit_s" not in timings and timings["checks_s"] >= 1.0
            continue
        if not audit:
            assert answer.refused_by == "kind" and [v.check for v in answer.checks] == ["kind"]
            assert "audit_s" not in timings, "nothing runs for the audit alone"
            continue
        # the checks after the refusing one, or the doubt of an answer while it refuses nothing
        assert answer.refused_by == ("kind" if len(checks) == 2 else "")
        assert [v.check for v in answer.checks][:len(checks)] == [c.name for c in checks]
        assert timings["audit_s"] >= 0.5 and timings["checks_s"] < 0.5 + (len(checks) == 1) * 0.5
        assert timings["total_s"] <= wall - 0.5, "the wait leaves the audit out"
        assert timings["first_token_s"] <= timings["total_s"]


def test_the_second_reading_never_reads_a_sentence_the_first_held(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline("NOT FOUND", read_on=True)
    shared = 0
    for question in (TURNOUT, "Which party won the presidential vote, and by how much?",
                     "What did the unions and the social movements do after the coup?",
                     "What happened to the lithium deal with the German firm?"):
        found, _, _, _, vector = pipeline._retrieve(question, [], None)
        whole = {p.id: p for p in found.passages}
        for first_tokens, more_tokens in ((60, 400), (120, 400), (270, 200), (270, 600)):
            pipeline.settings.first_tokens, pipeline.settings.more_tokens = first_tokens, more_tokens
            first = pipeline.reading(question, vector, found.passages)
            second = pipeline.rereading(question, vector, found.passages, first)
            assert second[:len(first)] == first, "the first reading again, word for word"
            held = {span for p in first for span in spans_read(p, whole[p.id])}
            later = [span for p in second[len(first):] for span in spans_read(p, whole[p.id])]
            assert not held & set(later) and len(later) == len(set(later)), "every sentence read once"
            rest = [p for p in found.passages if p.id not in {q.id for q in first}]
            shared += sum(1 for p in rest for span in spans_read(p, p) if span in held)
    assert shared, "some passage read second shares a sentence with the first reading"


def test_the_timings_break_the_time_into_stages(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("placeholder", read_on=True)
    passages = pipeline.retrieve(TURNOUT)
    n = next(i for i, p in enumerate(passages, 1) if "extreme poverty" in p.text)
    llm.replies = ["NOT FOUND", f"The rate of extreme poverty was dramatically reduced [{n}]."]
    timings = _run(pipeline, TURNOUT)[1].timings
    assert {"embed_s", "search_s", "prompt_s", "generate_s", "checks_s", "second_reading_s"} <= set(timings)
    assert "rewrite_s" not in timings, "no follow-up, no rewrite"
    stages = sum(timings[key] for key in STAGES if key in timings)
    assert all(timings[key] >= 0 for key in STAGES if key in timings) and stages <= timings["total_s"]
    assert timings["second_reading_s"] <= timings["prompt_s"] + timings["generate_s"] + timings["checks_s"]
    assert timings["embed_s"] + timings["search_s"] <= timings["retrieval_s"] <= timings["first_token_s"]


def test_the_sentence_shown_for_a_passage_read_is_one_the_model_reads_of_it(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = fake_pipeline("NOT FOUND")
    shown_otherwise = 0
    for question in (TURNOUT, "Which party won the presidential vote, and by how much?",
                     "What did the unions and the social movements do after the coup?",
                     "What happened to the lithium deal with the German firm?"):
        for budget in (40, 80, 120, 160, 240):
            pipeline.settings.first_tokens = budget
            before, _, _, _, vector = pipeline._retrieve(question, [], None)
            _, read, _ = pipeline.found_and_read(question)
            found = next(iter(pipeline.ask_stream(question)))
            assert isinstance(found, Retrieved) and [p.id for p, _ in found.read] == [p.id for p in read]
            best = dict(zip([p.id for p in before.passages], before.sentences, strict=True))
            chosen = pipeline._first_choice(before.passages)[0]
            scores = dict(zip([p.id for p in chosen], pipeline.sentences.scores(vector, chosen), strict=True))
            for (passage, sentence), excerpt in zip(found.read, read, strict=True):
                assert sentence.strip() and sentence in excerpt.text, "a sentence the model reads of that passage"
                sentences = [passage.text[a:b] for a, b in spans_of(passage)]
                score = dict(zip(sentences, scores[passage.id], strict=True))
                assert max(score[s] for s in sentences if s in excerpt.text) == score[sentence], "the closest"
                shown_otherwise += sentence != best[passage.id]
            for passage, sentence in list(zip(found.passages, found.sentences, strict=True))[found.reading:]:
                assert sentence == best[passage.id], "a passage not read shows its best sentence"
    assert shown_otherwise, "some passage's best sentence is not among those read of it"
