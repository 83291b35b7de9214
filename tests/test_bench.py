"""`qa bench --quick`: every section of the report, with the SmolLM2 model and a tiny corpus.

The figures of a quick run mean little; this checks that the bench runs end to end and reports what
docs/performance.md is made of. The full run is a documented command, not a test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.bench import Options, percentile, render_markdown, run, write_report

pytestmark = pytest.mark.slow


def test_quick_bench_reports_every_figure(seeded_dir: Path, smollm_path: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    options = Options(quick=True, model=smollm_path, runs=2, questions=2, passages=300, sample=32, max_tokens=16,
                      top_k=2, sentences=60, retrieval_passes=1, threads=False, llm_threads=1,
                      seeded_data=seeded_dir)
    report = run(options, log=lines.append)

    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    answers = report["answers"]
    assert len(answers["questions"]) == 2
    for row in answers["questions"]:
        assert row["runs"] == 2
        for side in ("pipeline", "raw"):
            figures = row[side]
            assert figures["ttft_s"] > 0 and figures["total_s"] >= figures["ttft_s"]
            assert figures["prompt_tokens"] > figures["prompt_tokens_evaluated"] > 0
    s = answers["summary"]
    assert s["system_prompt_tokens"] > 20 and s["min_prompt_tokens_reused"] >= s["system_prompt_tokens"], \
        "every question reuses the cached system prompt"
    for key in ("overhead_s", "gen_ratio", "raw_prompt_eval_s", "pipeline_ttft_s", "answer_tokens"):
        assert key in s
    cost = report["pipeline_cost"]
    assert cost["before_model_ms"] > 0 and cost["per_token_us"] > 0 and cost["after_last_token_ms"] >= 0
    assert report["retrieval"]["passages"] >= 300 and report["retrieval"]["queries"] >= 80
    assert 0 < report["retrieval"]["p50_ms"] <= report["retrieval"]["p95_ms"]
    ingest = report["ingest"]
    assert ingest["embedder_alone_per_s"] > 0 and ingest["ingest_per_s"] > 0 and ingest["our_code_per_s"] > 0
    assert ingest["torch_per_s"] > 0 and ingest["ingest_vs_torch"] == pytest.approx(
        ingest["ingest_per_s"] / ingest["torch_per_s"], rel=0.01), "ingest set against plain torch encoding"
    assert report["serve"]["cold_start_s"] > 0 and report["serve"]["peak_rss_mb"] > 100
    assert report["serve"]["first_answer_s"] is not None, "the started page answered a question over HTTP"
    eager = report["serve"]["eager"]
    assert eager["cold_start_s"] > 0 and eager["first_answer_s"] is not None, "`qa serve --eager` measured too"
    assert report["serve"]["start_ratio"] == pytest.approx(eager["cold_start_s"] / report["serve"]["cold_start_s"],
                                                           rel=0.01)
    stages = answers["stages"]
    assert {"embed_s", "search_s", "prompt_s", "generate_s", "checks_s", "total_s"} <= set(stages)
    assert all(value >= 0 for value in stages.values()) and stages["prompt_s"] > 0
    assert {t["target"].split(" ")[0] for t in report["targets"]} >= {"overhead", "generation", "retrieval"}

    json_path, md_path = write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text())["kind"] == "quick"
    markdown = md_path.read_text()
    assert markdown == render_markdown(report) + "\n"
    assert "## Targets" in markdown and "| q" in markdown and "`qa serve --eager`" in markdown
    assert "| prompt evaluation |" in markdown and "times sooner" in markdown


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (10.0, 19.0, 20.0)
    assert percentile([5.0], 95) == 5.0
