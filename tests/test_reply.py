"""The JSON reply (qa.reply): streaming extraction and parsing, pure; then the pipeline with a JSON reply."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.config import DEFAULT_PROMPT, Settings
from qa.errors import ConfigError
from qa.pipeline import REFUSAL
from qa.reply import SCHEMA, AnswerStream, Reply, parse_reply
from qa.rewrite import EXAMPLE, QUESTION_SCHEMA

from .fakes import run_stream

TURNOUT = "What participation rate did the massive voter turnout of registered Bolivians reach?"


@settings(max_examples=200, deadline=None)
@given(answer=st.text(), cuts=st.lists(st.integers(min_value=1, max_value=7), max_size=60),
       ascii_only=st.booleans())
def test_the_streamed_answer_is_the_json_answer_however_the_reply_is_cut(answer: str, cuts: list[int],
                                                                         ascii_only: bool) -> None:
    raw = json.dumps({"found": True, "answer": answer, "sources": [1]}, ensure_ascii=ascii_only)
    stream, out, pos = AnswerStream(), [], 0
    for cut in cuts:
        out.append(stream.feed(raw[pos:pos + cut]))
        pos += cut
    out.append(stream.feed(raw[pos:]))
    assert "".join(out) == answer
    assert stream.closed


def test_nothing_is_streamed_when_nothing_was_found() -> None:
    stream = AnswerStream()
    assert stream.feed('{"found": false, "answer": "Sucre", "sources": [1]}') == ""
    assert parse_reply('{"found": false, "answer": "Sucre", "sources": [1]}').text() == ""


@pytest.mark.parametrize(("raw", "text"), [
    ('{"found": true, "answer": "Turnout was 88.4 percent.", "sources": [2]}', "Turnout was 88.4 percent [2]."),
    ('{"found": true, "answer": "88.4 percent", "sources": [2, 3, 2]}', "88.4 percent [2][3]."),
    ('{"found": true, "answer": "88.4 percent", "sources": []}', "88.4 percent"),
    ('{"found": true, "answer": "88.4 per', "88.4 per"),  # cut off by the token limit
    ('{"found": true, "answer": "", "sources": [1]}', ""),
    ('{"found": true, "answer": 88.4, "sources": ["1", true]}', ""),
    ("{\"found\": true}", ""),
    ("{\"found\": true, \"answer\": \"x\"} trailing", "x"),
    ("Turnout was 88.4 percent [2].", "Turnout was 88.4 percent [2]."),  # a server that ignored the schema
])
def test_parse_reply(raw: str, text: str) -> None:
    assert parse_reply(raw).text() == text


def test_sources_that_are_not_numbers_are_dropped() -> None:
    assert parse_reply('{"found": true, "answer": "x", "sources": [1, "2", true, 3]}') == Reply(True, "x", [1, 3])


@pytest.fixture()
def json_pipeline(fake_pipeline):  # type: ignore[no-untyped-def]
    # all passages in one reading, so that each test's reply is the one answer the pipeline asks for
    return lambda *replies: fake_pipeline(*replies, prompt="json", narrow_k=0)


_run = run_stream


def test_a_json_reply_streams_its_answer_and_is_checked(json_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = json_pipeline("placeholder")
    n = next(i for i, p in enumerate(pipeline.retrieve(TURNOUT), 1) if "88.4" in p.text)
    wrong = n % len(pipeline.retrieve(TURNOUT)) + 1
    llm.replies = [json.dumps({"found": True, "answer": "Turnout was 88.4 percent.", "sources": [wrong]})]
    streamed, answer = _run(pipeline, TURNOUT)
    assert llm.schemas == [SCHEMA]
    assert llm.calls[0][0]["content"].startswith("You answer questions") and "JSON" in llm.calls[0][0]["content"]
    assert streamed == "Turnout was 88.4 percent.", "the reader sees the answer, never the JSON"
    assert answer.answered and answer.text == f"Turnout was 88.4 percent [{n}].", "the citation moved to its passage"
    assert "88.4" in answer.citations[0].quote


def test_json_replies_read_the_best_passages_first_too(fake_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = fake_pipeline("placeholder", prompt="json", read_on=True)
    question = "What participation rate did the massive voter turnout of registered Bolivians reach?"
    n = next(i for i, p in enumerate(pipeline.retrieve(question), 1) if "extreme poverty" in p.text)
    poverty = json.dumps({"found": True, "answer": "The rate of extreme poverty was dramatically reduced.",
                          "sources": [n]})
    llm.replies = ['{"found": false, "answer": "", "sources": []}', poverty]
    streamed, answer = _run(pipeline, question)
    assert llm.schemas == [SCHEMA, SCHEMA]
    assert streamed == "The rate of extreme poverty was dramatically reduced.", "the second reply streams"
    assert answer.answered and answer.text == f"The rate of extreme poverty was dramatically reduced [{n}]."


def test_a_json_reply_that_found_nothing_is_a_refusal(json_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = json_pipeline('{"found": false, "answer": "", "sources": []}')
    streamed, answer = _run(pipeline, TURNOUT)
    assert (streamed, answer.answered, answer.text, answer.citations) == (REFUSAL, False, REFUSAL, [])


def test_an_unsupported_json_answer_is_refused(json_pipeline) -> None:  # type: ignore[no-untyped-def]
    # found: true is not trusted: a small model sets it for questions nothing answers.
    pipeline, _ = json_pipeline('{"found": true, "answer": "Turnout was 61.2 percent.", "sources": [1]}')
    _, answer = _run(pipeline, TURNOUT)
    assert not answer.answered and answer.citations == []


def test_a_follow_up_is_rewritten_in_json_too(json_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = json_pipeline('{"question": "How many seats did the MAS win in the Senate?"}',
                                  '{"found": false, "answer": "", "sources": []}')
    history = [{"role": "user", "content": "How many seats did the MAS win in the lower house?"},
               {"role": "assistant", "content": "73 of 130 [1]."}]
    _, answer = _run(pipeline, "And in the Senate?", history)
    assert llm.schemas == [QUESTION_SCHEMA, SCHEMA]
    assert answer.query == "How many seats did the MAS win in the Senate?"
    assert llm.calls[0][:7] == llm.calls[1][:7], "the rewrite shares the answer's cached prefix"
    assert json.loads(llm.calls[0][-2]["content"]) == {"question": EXAMPLE[1]}, "a worked rewrite, in JSON"


def test_the_answer_format_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QA_PROMPT", raising=False)
    assert Settings().prompt == DEFAULT_PROMPT
    monkeypatch.setenv("QA_PROMPT", "JSON")
    assert Settings().prompt == "json"
    monkeypatch.setenv("QA_PROMPT", "yaml")
    with pytest.raises(ConfigError, match="QA_PROMPT must be one of grounded, json, not 'yaml'"):
        Settings()


def test_a_json_answer_saying_not_found_is_never_shown(json_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, _ = json_pipeline('{"found": true, "answer": "NOT FOUND", "sources": []}')
    streamed, answer = _run(pipeline, TURNOUT)
    assert (streamed, answer.answered) == (REFUSAL, False)


def test_a_server_that_ignores_the_schema_is_read_as_prose(json_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline, llm = json_pipeline("placeholder")
    n = next(i for i, p in enumerate(pipeline.retrieve(TURNOUT), 1) if "88.4" in p.text)
    llm.replies = [f"Turnout was 88.4 percent [{n}].\n- It was the second-highest ever [{n}]."]
    streamed, answer = _run(pipeline, TURNOUT)
    assert answer.answered and "88.4 percent" in streamed
    assert answer.text.splitlines()[0] == f"Turnout was 88.4 percent [{n}].", "the reply's lines are kept"
