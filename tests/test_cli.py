"""The ``qa`` command, run as a user runs it: a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa.checks import REFUSERS

ROOT = Path(__file__).resolve().parent.parent


def qa(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "qa", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT)


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


def test_empty_question_is_one_clear_line(seeded_copy: Path, smollm_path: Path) -> None:
    result = qa("ask", "  ", env={"QA_DATA_DIR": str(seeded_copy), "QA_MODEL": str(smollm_path)})
    assert result.returncode == 2
    _no_traceback(result)
    assert result.stderr.strip().count("\n") == 0 and "question is empty" in result.stderr


def test_missing_model_names_the_path_and_the_fix(seeded_copy: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    result = qa("ask", "Who won?", env={"QA_DATA_DIR": str(seeded_copy), "QA_MODEL": str(missing)})
    assert result.returncode == 2
    _no_traceback(result)
    assert str(missing) in result.stderr and "qa setup" in result.stderr


def test_not_a_gguf_is_refused(seeded_copy: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_text("hello" * 1000)
    result = qa("ask", "Who won?", env={"QA_DATA_DIR": str(seeded_copy), "QA_MODEL": str(fake)})
    assert result.returncode == 2 and "not a GGUF" in result.stderr
    _no_traceback(result)


def test_ingest_of_a_folder_without_articles(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = qa("ingest", str(tmp_path / "empty"))
    assert result.returncode == 2 and "No readable" in result.stderr
    _no_traceback(result)


def test_ask_on_an_empty_index(tmp_path: Path, smollm_path: Path) -> None:
    result = qa("ask", "Who won?", env={"QA_MODEL": str(smollm_path)})
    assert result.returncode == 2 and "qa ingest" in result.stderr
    _no_traceback(result)


def test_ask_within_a_period_without_dated_articles(seeded_copy: Path, smollm_path: Path) -> None:
    env = {"QA_DATA_DIR": str(seeded_copy), "QA_MODEL": str(smollm_path)}
    result = qa("ask", "--since", "2020-01-01", "--until", "2020-12-31", "Who won?", env=env)
    assert result.returncode == 0, result.stderr
    assert "No article is dated from 2020-01-01 to 2020-12-31, so there is nothing to answer from." in result.stdout
    assert "(5 articles have no date and were left out.)" in result.stdout
    data = json.loads(qa("ask", "--until", "2020-12-31", "--json", "Who won?", env=env).stdout)
    assert (data["answered"], data["refused_by"], data["undated"]) == (False, "retrieval", 5)

    bad = qa("ask", "--since", "2020-13-01", "Who won?", env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "qa: The since date '2020-13-01' is no day of the calendar (check the month and the day).")
    _no_traceback(bad)


@pytest.mark.slow
def test_ingest_twice_then_ask_json(articles_dir: Path, smollm_path: Path, tmp_path: Path) -> None:
    env = {"QA_DATA_DIR": str(tmp_path / "cli-data"), "QA_MODEL": str(smollm_path)}
    first = qa("ingest", str(articles_dir), env=env)
    assert first.returncode == 0, first.stderr
    assert "5 articles:" in first.stdout and "0 replaced, 0 removed" in first.stdout
    second = qa("ingest", str(articles_dir), env=env)
    assert "0 passages added, 0 replaced, 0 removed (5 articles unchanged)" in second.stdout

    listed = qa("articles", env=env)
    assert listed.returncode == 0 and listed.stdout.count("passages)") == 5

    result = qa("ask", "What was the voter turnout in the October 2020 election?", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    refusal = {"refused_by", "reason"} if not data["answered"] else set()
    assert set(data) == {"text", "answered", "citations"} | refusal
    assert isinstance(data["answered"], bool) and data["text"]
    for c in data["citations"]:
        assert {"number", "article", "source", "chunk_id", "quote"} <= set(c)
        assert f"[{c['number']}]" in data["text"]
    if not data["answered"]:
        assert data["citations"] == [] and data["refused_by"] in REFUSERS and data["reason"]
