"""The evaluation harness: scoring rules on hand-made cases, and a real run on a small subset."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from qa.answer import Answer, Citation
from qa.config import Settings
from qa.errors import QAError
from qa.evaluate import (
    EvalQuestion,
    Record,
    check_table,
    doubt_curve,
    is_correct,
    judge_curve,
    latency_ratios,
    load_questions,
    precise_citations,
    summarise,
)

ROOT = Path(__file__).resolve().parent.parent
EVALSET = ROOT / "qa" / "evalsets" / "bolivia.jsonl"
NARROW = Settings.narrow_k  # how many of the passages found the model reads first


def _record(id: str, answerable: bool, answered: bool, correct: bool, hit: bool = True,
            precise: list[bool] | None = None, latency: float = 1.0) -> Record:
    return Record(id=id, kind="", question="?", answerable=answerable, answered=answered, correct=correct, hit=hit,
                  text="", citations=[], precise=precise or [], latency_s=latency, first_token_s=latency / 2)


def test_the_project_question_set_meets_its_brief() -> None:
    questions = load_questions(EVALSET)
    assert len(questions) >= 60
    assert len({q.id for q in questions}) == len(questions)
    unanswerable = [q for q in questions if not q.answerable]
    assert len(unanswerable) >= 15
    articles = {a for q in questions for a in q.articles}
    assert articles == {p.name for p in (ROOT / "seeds").glob("*.txt")}
    assert sum(bool(q.history) for q in questions) >= 5
    seeds = {p.name: p.read_text() for p in (ROOT / "seeds").glob("*.txt")}
    from qa.evaluate import normalise

    for q in questions:
        for group in q.answers:
            assert any(normalise(alt) in normalise(seeds[a]) for alt in group for a in q.articles), (q.id, group)


def test_scoring_normalises_case_space_and_thousands() -> None:
    q = EvalQuestion("1", "?", [["6483893"], ["7,332,926"]], ["a"])
    assert is_correct(q, True, "About 6,483,893  of 7332926 voted [1].")
    assert not is_correct(q, True, "About 6,483,893 voted [1].")
    assert not is_correct(q, False, "6483893 of 7332926")
    assert is_correct(EvalQuestion("2", "?", [], []), False, "anything")
    assert not is_correct(EvalQuestion("2", "?", [], []), True, "anything")


def test_citation_precision_per_citation() -> None:
    q = EvalQuestion("1", "?", [["88.4"]], ["b.txt"])
    good = Citation(1, "T", "b.txt", "c1", "turnout", passage="Turnout was 88.4%.")
    bad = Citation(2, "T", "b.txt", "c2", "other", passage="Something else.")
    assert precise_citations(q, Answer("x", True, [good, bad])) == [True, False]
    free = EvalQuestion("2", "?", [["why"]], ["b.txt"], free_text=True)
    assert precise_citations(free, Answer("x", True, [bad])) == [True]


def test_summary_metrics_on_a_worked_example() -> None:
    # answerable: a correct with 2 citations (1 precise), b correct with none precise,
    #             c refused (false refusal), d wrong answer with a miss in retrieval
    # unanswerable: e refused, f answered
    records = [
        _record("a", True, True, True, precise=[True, False], latency=1),
        _record("b", True, True, True, precise=[False], latency=2),
        _record("c", True, False, False, latency=3),
        _record("d", True, True, False, hit=False, precise=[True], latency=4),
        _record("e", False, False, True, latency=5),
        _record("f", False, True, False, latency=6),
    ]
    m = summarise(records, k=4)
    assert m["hit_rate"] == 0.75
    assert m["accuracy"] == 0.5
    assert m["citation_precision"] == 0.5  # 2 precise of 4 citations on answered answerable questions
    assert m["citation_coverage"] == 0.5  # of the 2 correct answers, 1 has a precise citation
    assert m["refusal_rate"] == 0.5
    assert m["false_refusal_rate"] == 0.25
    assert m["latency_median_s"] == 3.5
    assert m["latency_p90_s"] == 6
    assert m["first_word_median_s"] == 1.5  # a, b, d, f answered: 0.5, 1, 2, 3
    assert m["refusal_median_s"] == 4  # c and e refused, at 3 and 5 s
    failed = replace(_record("g", True, False, False, latency=0.0), error="the model could not be loaded")
    assert summarise([*records, failed], k=4)["refusal_median_s"] == 4  # an error is no refusal


def test_latency_ratios_say_none_where_a_figure_is_missing() -> None:
    yardstick = summarise([_record("a", True, True, True, latency=10), _record("b", False, True, False, latency=20)],
                          k=4)
    answered = summarise([_record("a", True, True, True, latency=4), _record("b", False, True, False, latency=6)],
                         k=4)
    assert latency_ratios(answered, yardstick) == {"median": 0.333, "p90": 0.3, "first_word": 0.333,
                                                   "refusal": None}
    refused = summarise([_record("a", True, False, False, latency=3)], k=4)
    assert latency_ratios(refused, yardstick)["first_word"] is None
    assert latency_ratios(refused, yardstick)["refusal"] == 0.2
    assert latency_ratios(answered, {**yardstick, "latency_median_s": 0.0, "latency_p90_s": None})["median"] is None
    assert latency_ratios(answered, {})["p90"] is None


def test_malformed_question_set_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "q", "answers": [], "articles": []}\n{"id": 2}\n')
    with pytest.raises(QAError, match="line 2"):
        load_questions(bad)
    with pytest.raises(QAError, match="No question set"):
        load_questions(tmp_path / "missing.jsonl")


@pytest.mark.slow
def test_qa_eval_runs_the_real_pipeline_on_a_subset(seeded_copy: Path, smollm_path: Path, tmp_path: Path) -> None:
    import os

    out = tmp_path / "report.json"
    env = {**os.environ, "QA_DATA_DIR": str(seeded_copy), "QA_MODEL": str(smollm_path)}
    result = subprocess.run([sys.executable, "-m", "qa", "eval", str(EVALSET), "--limit", "4", "--json", str(out),
                             "--compare", "plain", "json"], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert "answer accuracy" in result.stdout and "default against plain: median latency" in result.stdout
    assert "default against json: median latency" in result.stdout
    report = json.loads(out.read_text())
    metrics = report["metrics"]["default"]
    for key in ("hit_rate", "accuracy", "citation_precision", "refusal_rate", "false_refusal_rate",
                "latency_median_s", "first_token_p90_s"):
        assert key in metrics
    assert metrics["questions"] == 4 and len(report["records"]["default"]) == 4
    assert len(report["records"]["plain"]) == 4 and len(report["records"]["json"]) == 4
    assert {"latency_ratios_vs_plain", "latency_ratios_vs_json"} <= set(metrics)
    assert set(metrics["latency_ratios_vs_plain"]) == {"median", "p90", "first_word", "refusal"}
    assert metrics["latency_ratios_vs_plain"]["median"] > 0
    # the index measured, so a run on one left from other passage sizes shows as such
    assert report["index"]["passages"] == 89 and report["index"]["articles"] == 5
    assert 400 < report["index"]["median_passage_chars"] <= 700
    assert "Index: 89 passages of 5 articles" in result.stderr


@pytest.mark.slow
def test_qa_eval_measures_any_folder_with_a_check_switched_off(smollm_path: Path, tmp_path: Path) -> None:
    """--articles ingests into a temporary index; --without switches a check off; every verdict is recorded."""
    import os

    out, data = tmp_path / "report.json", tmp_path / "never-used"
    env = {**os.environ, "QA_DATA_DIR": str(data), "QA_MODEL": str(smollm_path)}
    result = subprocess.run([sys.executable, "-m", "qa", "eval", str(EVALSET), "--limit", "3", "--articles",
                             str(ROOT / "seeds"), "--without", "numbers", "--judge-threshold", "0", "--seed", "7",
                             "--json", str(out)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "5 articles: 89 passages added" in result.stderr and "Index: 89 passages of 5 articles" in result.stderr
    assert not data.exists(), "the user's index is never touched"
    report = json.loads(out.read_text())
    assert report["without"] == ["numbers"] and report["articles"] == str(ROOT / "seeds") and report["seed"] == 7
    records = report["records"]["default"]
    assert len(records) == 3 and all("refused_by" in r and "checks" in r for r in records)
    assert not any(c["check"] == "numbers" for r in records for c in r["checks"])
    assert [c["threshold"] for c in report["judge_curve"]["default"]][:3] == [0.0, 0.05, 0.1]
    assert "right_article" in report["metrics"]["default"]


@pytest.mark.slow
def test_qa_eval_retrieval_only_needs_no_model(tmp_path: Path) -> None:
    import os

    out = tmp_path / "retrieval.json"
    env = {**os.environ, "QA_MODEL": str(tmp_path / "no-such-model.gguf")}
    result = subprocess.run([sys.executable, "-m", "qa", "eval", str(EVALSET), "--limit", "12", "--articles",
                             str(ROOT / "seeds"), "--retrieval-only", "--json", str(out)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())["retrieval"]
    answerable = sum(1 for q in load_questions(EVALSET)[:12] if q.answerable)
    assert figures["questions"] == answerable and figures["k"] == 6 and figures["first"] == NARROW
    assert 0.5 <= figures["answer_in_k"] <= 1.0 and figures[f"answer_in_first_{NARROW}"] <= figures["answer_in_k"]
    assert sum(figures["ranks"].values()) == answerable
    assert figures["answer_in_read"] <= figures["answer_in_k"] and figures["median_read_tokens"] > 0
    assert figures["answer_in_reread"] == figures["answer_in_read"], "by default there is no second reading"
    assert figures["median_reread_tokens"] == figures["median_read_tokens"]

    def preset(name: str) -> dict[str, float]:
        result = subprocess.run([sys.executable, "-m", "qa", "eval", str(EVALSET), "--limit", "12", "--articles",
                                 str(ROOT / "seeds"), "--retrieval-only", "--preset", name, "--json", str(out)],
                                capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
        assert result.returncode == 0, result.stderr
        return json.loads(out.read_text())["retrieval"]  # type: ignore[no-any-return]

    # a preset's settings hold: "read-on" reads the other passages' best sentences after the first
    more = preset("read-on")
    assert more["answer_in_read"] == figures["answer_in_read"]
    assert more["answer_in_read"] <= more["answer_in_reread"] <= more["answer_in_k"]
    assert more["median_read_tokens"] < more["median_reread_tokens"]
    # and "passages" reads the best few whole
    whole = preset("passages")
    assert whole["median_read_tokens"] > figures["median_read_tokens"]


def test_qa_eval_refuses_an_unknown_check_or_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    from qa.cli import main

    assert main(["eval", str(EVALSET), "--without", "speed"]) == 2
    assert "No check is called 'speed'" in capsys.readouterr().err
    assert main(["eval", str(EVALSET), "--judge-threshold", "1.5"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err
    assert main(["eval", str(EVALSET), "--articles", "/no/such/folder"]) == 2
    assert "No folder of articles" in capsys.readouterr().err
    for seed in ("-1", str(2**32 - 1)):  # llama.cpp reads the largest as "a random seed"
        assert main(["eval", str(EVALSET), "--seed", seed]) == 2
        assert "--seed must be a whole number" in capsys.readouterr().err


def test_the_local_model_samples_with_the_seed_it_is_given(tmp_path: Path) -> None:
    from qa.api import build_llm
    from qa.config import Settings
    from qa.llm import LlamaCppLLM

    llm = build_llm(Settings(model_path=tmp_path / "any.gguf", llm_url=None, seed=7))
    assert isinstance(llm, LlamaCppLLM) and llm.seed == 7
    assert build_llm(Settings(model_path=tmp_path / "any.gguf", llm_url=None)).seed == 0  # type: ignore[attr-defined]


def _audited(answerable: bool, answered: bool, correct: bool, score: float | None, refused_by: str = "",
            fails: tuple[str, ...] = (), draft_correct: bool = False) -> Record:
    checks = [{"check": f, "passed": False, "score": None} for f in fails]
    if score is not None:
        checks.append({"check": "judge", "passed": refused_by != "judge", "score": score})
    return Record("x", "", "?", answerable, answered, correct, True, "A [1]." if answered else "", [], [], 1.0, 0.5,
                  refused_by=refused_by, checks=checks, draft_correct=draft_correct)


def test_the_judge_curve_reads_every_threshold_from_one_run() -> None:
    records = [_audited(True, True, True, 0.9), _audited(True, True, False, 0.3),
               _audited(True, False, False, 0.2, "judge", draft_correct=True),  # refused in the run at 0.5
               _audited(False, True, False, 0.4), _audited(False, False, True, None, "model"),
               _audited(True, False, False, 0.8, "kind", fails=("kind",))]
    curve = {c["threshold"]: c for c in judge_curve(records, [0.0, 0.25, 0.5, 0.95])}
    assert curve[0.0] == {"threshold": 0.0, "accuracy": 0.5, "refusal_rate": 0.5, "false_refusal_rate": 0.25}
    assert curve[0.25]["accuracy"] == 0.25 and curve[0.25]["false_refusal_rate"] == 0.5, "the draft refused at 0.2"
    assert curve[0.5]["refusal_rate"] == 1.0 and curve[0.5]["false_refusal_rate"] == 0.75
    assert curve[0.95]["false_refusal_rate"] == 1.0 and curve[0.95]["accuracy"] == 0.0


def test_the_doubt_curve_reads_every_threshold_from_one_run() -> None:
    def doubted(answerable: bool, answered: bool, correct: bool, score: float | None, refused_by: str = "",
                draft_correct: bool = False) -> Record:
        record = _audited(answerable, answered, correct, None, refused_by, draft_correct=draft_correct)
        if score is not None:
            record.checks.append({"check": "doubt", "passed": refused_by != "doubt", "score": score})
        return record

    records = [doubted(True, True, True, 0.01), doubted(True, True, False, 0.2),
               doubted(True, False, False, 0.5, "doubt", draft_correct=True),  # refused in the run at 0.4
               doubted(False, True, False, 0.3), doubted(False, False, True, None, "judge")]
    curve = {c["threshold"]: c for c in doubt_curve(records, [1.0, 0.4, 0.25, 0.1])}
    assert curve[1.0] == {"threshold": 1.0, "accuracy": 0.6667, "refusal_rate": 0.5, "false_refusal_rate": 0.0}
    assert curve[0.4]["false_refusal_rate"] == 0.3333 and curve[0.4]["refusal_rate"] == 0.5
    assert curve[0.25]["refusal_rate"] == 1.0 and curve[0.1]["false_refusal_rate"] == 0.6667


def test_the_check_table_counts_what_each_check_refuses_alone() -> None:
    records = [_audited(True, False, False, 0.9, "kind", fails=("kind",), draft_correct=True),
               _audited(False, False, True, 0.1, "kind", fails=("kind", "judge")),
               _audited(False, False, True, None, "model")]
    table = check_table(records)
    assert table["kind"] == {"unanswerable": 1, "answerable": 1, "would_be_correct": 1, "alone_unanswerable": 0,
                             "alone_answerable": 1}
    assert table["model"]["alone_unanswerable"] == 1
    # with a threshold, the judge refuses below it: the kind check is then not alone on its false refusal
    at = check_table(records, threshold=0.95)
    assert at["judge"]["answerable"] == 1 and at["kind"]["alone_answerable"] == 0
