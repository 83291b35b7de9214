"""Questions restricted to a period of article dates: parsing, filters, and retrieval over real Chroma."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from qa.answer import Answer, Retrieved
from qa.config import Settings
from qa.errors import PeriodError, QAError
from qa.ingest import ingest
from qa.period import Period, parse_day
from qa.pipeline import Pipeline
from qa.retrieval import KeywordIndex, Retriever
from qa.store import ChromaStore, where

from .fakes import FakeEmbedder, FakeLLM

# An invented harbour town's news, three dated articles (front matter in .md and .txt) and two undated ones.
ARTICLES = {
    "january.md": ("Ferry timetable changes for winter", "2024-01-10",
                   "The Norvale ferry will sail twice a day in winter. The harbour office said the ferry timetable "
                   "changes because of storms on the crossing."),
    "march.txt": ("Ferry returns to full service", "14 March 2024",
                  "The Norvale ferry returned to its full timetable on Monday. Ferry crews repaired the ramp "
                  "at the harbour during the spring weeks."),
    "june.md": ("Summer ferry brings record crowds", "June 2, 2024",
                "The Norvale ferry carried record crowds of visitors in June. The harbour café opened late "
                "for passengers of the evening ferry."),
    "undated-notes.md": ("Notes on the ferry ramp", "",
                         "The ferry ramp at Norvale harbour is older than the pier. Ferry passengers walk "
                         "across it to the quay."),
    "undated-letter.txt": ("A letter about the ferry", "",
                           "A reader writes that the Norvale ferry should keep its winter timetable. The ferry "
                           "is quieter then, the reader says."),
}
DATES = {"january.md": "2024-01-10", "march.txt": "2024-03-14", "june.md": "2024-06-02"}
QUESTION = "When does the Norvale ferry sail, and what changed in its timetable?"


def write_articles(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (title, day, body) in ARTICLES.items():
        front = f"---\ntitle: {title}\n" + (f"date: {day}\n" if day else "") + "---\n"
        (folder / name).write_text(front + body + "\n")
    return folder


# --- parsing and filters (pure) ----------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("2024-03-14", date(2024, 3, 14)),
    (" 2024-03-14 ", date(2024, 3, 14)),
    (date(2024, 3, 14), date(2024, 3, 14)),
    (datetime(2024, 3, 14, 18, 30), date(2024, 3, 14)),
    (None, None),
    ("", None),
])
def test_a_bound_is_a_date_or_an_iso_day(value: object, expected: date | None) -> None:
    assert parse_day(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value, says", [
    ("14 March 2024", "YYYY-MM-DD"),
    ("20240314", "YYYY-MM-DD"),
    ("2024-W11", "YYYY-MM-DD"),
    ("2024-02-30", "no day of the calendar"),
    (20240314, "not int"),
])
def test_a_bad_bound_is_a_clear_error_naming_it(value: object, says: str) -> None:
    with pytest.raises(PeriodError, match=says) as raised:
        parse_day(value, "until")  # type: ignore[arg-type]
    assert "until" in str(raised.value) and isinstance(raised.value, QAError)


def test_a_period_that_starts_after_it_ends_is_refused() -> None:
    with pytest.raises(PeriodError, match="starts on 2024-05-01, after it ends"):
        Period.of("2024-05-01", date(2024, 4, 1))
    assert Period.of("2024-04-01", "2024-04-01") == Period(date(2024, 4, 1), date(2024, 4, 1))


@pytest.mark.parametrize("articles, period, expected", [
    (None, None, None),
    ([], Period(until=date(2024, 3, 31)), {"date_int": {"$lte": 20240331}}),
    (None, Period(date(2024, 1, 1), date(2024, 3, 31)),
     {"$and": [{"date_int": {"$gte": 20240101}}, {"date_int": {"$lte": 20240331}}]}),
    (["a.md"], Period(date(2024, 1, 1)), {"$and": [{"article_id": "a.md"}, {"date_int": {"$gte": 20240101}}]}),
    (["a.md", "b.md"], None, {"article_id": {"$in": ["a.md", "b.md"]}}),
])
def test_the_chroma_filter_joins_articles_and_period(articles: list[str] | None, period: Period | None,
                                                      expected: dict[str, object] | None) -> None:
    assert where(articles, period) == expected


def test_the_note_on_an_answer_counts_the_undated_articles() -> None:
    assert Answer("x", True).note == "" and "undated" not in Answer("x", True).to_dict()
    answer = Answer("x", True, undated=2)
    assert answer.note == "2 articles have no date and were left out."
    assert answer.to_dict()["undated"] == 2 and answer.to_dict()["note"] == answer.note


# --- over real Chroma ------------------------------------------------------------------------------

def _in(period: Period, passages: list) -> bool:  # type: ignore[type-arg]
    return bool(passages) and all(p.date and period.contains(p.date) for p in passages)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_retrieval_keeps_to_the_period_and_counts_the_undated(mode: str, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    ingest(write_articles(tmp_path / "articles"), store, embedder, data)
    assert {r["id"]: r["date"] for r in store.articles() if r["date"]} == DATES
    retriever = Retriever(store, embedder, KeywordIndex(data / "keyword"))

    everything = retriever.retrieve(QUESTION, [], k=10, mode=mode)
    assert {p.article_id for p in everything.passages} == set(ARTICLES) and everything.undated == 0

    for since, until, expected in [("2024-02-01", "2024-04-30", {"march.txt"}),
                                   ("2024-03-14", None, {"march.txt", "june.md"}),
                                   (None, "2024-03-13", {"january.md"}),
                                   ("2024-01-10", "2024-06-02", set(DATES))]:
        period = Period.of(since, until)
        assert period is not None
        found = retriever.retrieve(QUESTION, [], k=10, mode=mode, period=period)
        assert {p.article_id for p in found.passages} == expected, (since, until)
        assert _in(period, found.passages) and found.undated == 2

    march_only = retriever.retrieve(QUESTION, [], k=10, mode=mode, period=Period.of("2024-03-01"),
                                    articles=["march.txt", "january.md", "undated-notes.md"])
    assert {p.article_id for p in march_only.passages} == {"march.txt"} and march_only.undated == 1

    empty = retriever.retrieve(QUESTION, [], k=10, mode=mode, period=Period.of("2025-01-01"))
    assert empty.passages == [] and empty.undated == 2


@pytest.mark.slow
def test_keyword_search_alone_keeps_to_the_period(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    ingest(write_articles(tmp_path / "articles"), store, embedder, data)
    keyword = KeywordIndex(data / "keyword")
    keyword.load(store)
    period = Period.of("2024-03-01", "2024-12-31")
    assert period is not None
    unfiltered = store.get(keyword.search("Norvale ferry", 10))
    assert {p.article_id for p in unfiltered} == set(ARTICLES)
    allowed = store.ids_in(None, period)
    hits = store.get(keyword.search("Norvale ferry", 10, ids=allowed))
    assert {p.article_id for p in hits} == {"march.txt", "june.md"} and _in(period, hits)
    hits = store.get(keyword.search("Norvale ferry", 10, articles=["june.md", "january.md"], ids=allowed))
    assert {p.article_id for p in hits} == {"june.md"}
    assert keyword.search("Norvale ferry", 10, ids=set()) == []
    assert store.undated_articles() == {"undated-notes.md", "undated-letter.txt"}


# --- the pipeline (fake embedder and model, real Chroma) --------------------------------------------

def _pipeline(tmp_path: Path, *replies: str) -> tuple[Pipeline, FakeLLM]:
    embedder = FakeEmbedder()
    settings = Settings(data_dir=tmp_path / "data")
    store = ChromaStore(settings.chroma_dir, embedder_name=embedder.name)
    ingest(write_articles(tmp_path / "articles"), store, embedder, settings.data_dir)
    llm = FakeLLM(*replies)
    return Pipeline(store, embedder, llm, settings), llm


def test_a_period_with_no_article_is_refused_plainly_without_the_model(tmp_path: Path) -> None:
    pipeline, llm = _pipeline(tmp_path, "never asked")
    streamed = list(pipeline.ask_stream(QUESTION, [("Earlier question about the ferry?", "An answer [1].")],
                                        since="2025-01-01"))
    answer = streamed[-1]
    assert isinstance(answer, Answer) and streamed[1:-1] == [answer.text]
    assert isinstance(streamed[0], Retrieved) and streamed[0].passages == [], "nothing found, said first"
    assert answer.text == "No article is dated 2025-01-01 or later, so there is nothing to answer from."
    assert not answer.answered and answer.refused_by == "retrieval" and "2025-01-01" in answer.reason
    assert answer.undated == 2 and answer.note == "2 articles have no date and were left out."
    assert llm.calls == [], "neither the rewrite nor the answer asked the model"

    chosen = pipeline.ask(QUESTION, None, ["january.md"], since="2024-02-01")
    assert chosen.text.startswith("No article of those chosen is dated 2024-02-01 or later") and chosen.undated == 0


def test_an_answer_within_a_period_cites_only_its_articles_and_counts_the_undated(tmp_path: Path) -> None:
    pipeline, llm = _pipeline(tmp_path, "The ferry returned to its full timetable on Monday [1].")
    answer = pipeline.ask("When did the Norvale ferry return to its full timetable?", since=date(2024, 3, 1),
                          until="2024-03-31")
    assert {p.article_id for p in answer.passages} == {"march.txt"} and answer.undated == 2
    assert answer.answered, answer.reason
    assert [(c.source, c.date) for c in answer.citations] == [("march.txt", "2024-03-14")]
    assert answer.to_dict()["note"] == "2 articles have no date and were left out."
    assert len(llm.calls) >= 1
    assert pipeline.ask("When did the Norvale ferry return to its full timetable?").undated == 0


def test_a_bad_period_fails_before_any_work(tmp_path: Path) -> None:
    pipeline, llm = _pipeline(tmp_path, "never asked")
    with pytest.raises(PeriodError, match="after it ends"):
        pipeline.ask(QUESTION, since="2024-06-01", until="2024-01-01")
    with pytest.raises(PeriodError, match="YYYY-MM-DD"):
        pipeline.ask(QUESTION, until="March")
    assert llm.calls == []


def test_qa_ask_prints_each_sources_date_and_the_note(capsys: pytest.CaptureFixture[str]) -> None:
    from qa.answer import Citation
    from qa.cli import _print_answer

    cited = [Citation(1, "Ferry returns", "march.txt", "c1", "The ferry returned.", outlet="Gazette",
                      date="2024-03-14"),
             Citation(2, "Ferry notes", "notes.md", "c2", "The ramp is old.")]
    _print_answer(Answer("The ferry returned [1]. The ramp is old [2].", True, cited, undated=2))
    shown = capsys.readouterr().out
    assert "[1] Ferry returns — Gazette, 2024-03-14 (march.txt)" in shown
    assert "[2] Ferry notes (notes.md)" in shown and "(2 articles have no date and were left out.)" in shown
