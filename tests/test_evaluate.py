"""The evaluation harness: scoring rules on hand-made cases, and a real run on a small subset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa.answer import Answer, Citation
from qa.errors import QAError
from qa.evaluate import EvalQuestion, Record, is_correct, load_questions, precise_citations, summarise

ROOT = Path(__file__).resolve().parent.parent
EVALSET = ROOT / "qa" / "evalsets" / "bolivia.jsonl"


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
    assert "answer accuracy" in result.stdout and "median latency default / plain" in result.stdout
    assert "median latency default / json" in result.stdout
    report = json.loads(out.read_text())
    metrics = report["metrics"]["default"]
    for key in ("hit_rate", "accuracy", "citation_precision", "refusal_rate", "false_refusal_rate",
                "latency_median_s", "first_token_p90_s"):
        assert key in metrics
    assert metrics["questions"] == 4 and len(report["records"]["default"]) == 4
    assert len(report["records"]["plain"]) == 4 and len(report["records"]["json"]) == 4
    assert {"latency_ratio_vs_plain", "latency_ratio_vs_json"} <= set(metrics)
    # the index measured, so a run on one left from other passage sizes shows as such
    assert report["index"]["passages"] == 89 and report["index"]["articles"] == 5
    assert 400 < report["index"]["median_passage_chars"] <= 700
    assert "Index: 89 passages of 5 articles" in result.stderr
