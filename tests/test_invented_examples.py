"""The worked examples in ``qa/`` are invented, never taken from the seeds or the evaluation sets.

The project's rule: an example in a docstring, a comment, a prompt or a doctest is made up, on a
topic unlike any evaluation question, so that no tuning quietly fits the questions the project is
scored on. Two checks hold it over the whole text of every ``qa/*.py`` file:

- no run of four words of an evaluation question appears in it, nor a whole question of three
  words or more. The questions are those of ``qa/evalsets/*.jsonl`` and, when the shared
  development set lies beside the project (``../shared/dev/squad2/questions.jsonl``, as on CI),
  those too; where that folder is absent, only the project's own sets are checked. Words are
  compared case-blind, accents and punctuation dropped; a run needs two words that are not stop
  words (bm25s's English list, and "many", "much", "first"), so "what is the name of" or "how
  many people were" is no hit.
- no proper name of the seed articles appears in it (case-sensitive, whole words). The names are
  read off ``seeds/*.txt`` by a rule that holds for any articles (see ``seed_names``).

The chat page's example questions (``EXAMPLES`` in ``qa/web.py``) are about the seeds on purpose
and are the one exemption.
"""

from __future__ import annotations

import ast
import calendar
import json
import re
import unicodedata
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from bm25s.stopwords import STOPWORDS_EN_PLUS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "qa"
SEEDS = ROOT / "seeds"
SHARED_QUESTIONS = ROOT.parent / "shared" / "dev" / "squad2" / "questions.jsonl"
RUN = 4  # words in a row that make a question's run
MIN_CONTENT = 2  # of which at least this many are not stop words
# bm25s's English stop words, and the words that open counting questions ("how many people were",
# "how much did the", "in the first place"): a run needs more than these to be a question's own.
STOP = frozenset(STOPWORDS_EN_PLUS) | {"many", "much", "first"}
CALENDAR = frozenset(calendar.month_name[1:]) | frozenset(calendar.day_name) | frozenset(calendar.month_abbr[1:])

# a word, or a mark after which a capital letter starts a sentence (or a quotation, or a bracket)
_PIECE = re.compile(r"[^\W\d_]+|[.!?:;\"“”‘(\[—–…]")


# --- the evaluation questions' runs ---------------------------------------------------------

_WORD = re.compile(r"[^\W_]+")


def fold(word: str) -> str:
    """A word case-blind, without accents: "Café" and "cafe" alike."""
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)).casefold()


def words(text: str) -> list[str]:
    """Word tokens, folded; punctuation and quotes dropped, so "Didn’t" and "didn't" alike."""
    return [fold(m.group()) for m in _WORD.finditer(text)]


def question_files() -> list[Path]:
    files = sorted((PACKAGE / "evalsets").glob("*.jsonl"))
    return files + [SHARED_QUESTIONS] if SHARED_QUESTIONS.is_file() else files


def questions() -> list[str]:
    return [json.loads(line)["question"] for path in question_files()
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def content(word: str) -> bool:
    return word not in STOP and len(word) > 1


@cache
def question_runs() -> frozenset[tuple[str, ...]]:
    """Every run of ``RUN`` words of a question with at least ``MIN_CONTENT`` content words."""
    runs = set()
    for question in questions():
        tokens = words(question)
        for i in range(len(tokens) - RUN + 1):
            run = tuple(tokens[i:i + RUN])
            if sum(map(content, run)) >= MIN_CONTENT:
                runs.add(run)
    return frozenset(runs)


@cache
def short_questions() -> frozenset[tuple[str, ...]]:
    """Whole questions of three words or more that hold no such run ("When did he die?")."""
    runs = question_runs()
    found = set()
    for question in questions():
        tokens = tuple(words(question))
        if len(tokens) >= 3 and not any(tokens[i:i + RUN] in runs for i in range(len(tokens) - RUN + 1)):
            found.add(tokens)
    return frozenset(found)


# --- the seeds' proper names ------------------------------------------------------------------

def prose_lines(text: str) -> list[str]:
    """An article's lines, its front matter's values as lines of their own; Title Case lines left out.

    A title such as "Why Small Towns Keep Their Old Bridges" capitalises every word by its place,
    so it says nothing about which words are names.
    """
    lines = text.splitlines()
    if lines and lines[0].strip() == "---" and "---" in (line.strip() for line in lines[1:]):
        end = next(i for i, line in enumerate(lines) if i and line.strip() == "---")
        lines = [line.partition(":")[2] for line in lines[1:end]] + lines[end + 1:]
    return [line for line in lines if not title_case(line)]


def title_case(line: str) -> bool:
    found = re.findall(r"[^\W\d_]+", line)
    long = [w for w in found if len(w) >= 4]
    return len(found) >= 4 and bool(long) and all(w[0].isupper() for w in long)


def pieces(line: str) -> Iterator[tuple[str, bool]]:
    """Each word of a line, with whether it starts a sentence (or a quotation, or a bracket)."""
    start = True
    for m in _PIECE.finditer(line):
        piece = m.group()
        if piece[0].isalpha():
            yield piece, start
        start = not piece[0].isalpha()


@cache
def seed_names() -> tuple[str, ...]:
    """The seeds' proper names, read off the articles by a rule that holds for any articles.

    On the articles' prose (their Title Case lines left out, see ``prose_lines``), a name is

    - a word of three letters or more, capitalised at least once where it does not start a
      sentence, whose lower-case form never occurs in the articles, and that is no month or
      weekday name ("The" and "President" have lower-case forms; a word seen capitalised only at
      the start of sentences may be an ordinary word there); a name of several words ("Port
      Ellen") gives each of its words; or
    - an acronym: a word of two or more capitals, wherever it stands.
    """
    lines = [line for path in sorted(SEEDS.glob("*.txt")) for line in prose_lines(path.read_text(encoding="utf-8"))]
    seen = [piece for line in lines for piece in pieces(line)]
    lower = {word.casefold() for word, _ in seen if word[0].islower()}
    names = {word for word, _ in seen if len(word) >= 2 and word.isupper() and word not in CALENDAR}
    names |= {word for word, first in seen if not first and len(word) >= 3 and word[0].isupper()
              and word.casefold() not in lower and word not in CALENDAR}
    return tuple(sorted(names))


# --- the package's text -----------------------------------------------------------------------

def without_examples(path: Path, text: str) -> str:
    """``qa/web.py`` with the ``EXAMPLES`` assignment blanked out (its lines kept, as blank space)."""
    if path.name != "web.py":
        return text
    lines = text.splitlines(keepends=True)
    for node in ast.parse(text).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "EXAMPLES" for t in targets) and node.end_lineno is not None:
            assert node.end_col_offset is not None
            first, last = node.lineno - 1, node.end_lineno - 1
            for i in range(first, last + 1):
                a = node.col_offset if i == first else 0
                b = node.end_col_offset if i == last else len(lines[i].rstrip("\n"))
                lines[i] = lines[i][:a] + " " * (b - a) + lines[i][b:]
    return "".join(lines)


def package_texts() -> list[tuple[Path, str]]:
    files = sorted(PACKAGE.glob("*.py"))
    return [(path, without_examples(path, path.read_text(encoding="utf-8"))) for path in files]


def where(path: Path, text: str, offset: int) -> str:
    return f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, offset) + 1}"


def question_runs_in(path: Path, text: str) -> list[str]:
    """file:line and the words, for each stretch of the text made of question runs or short questions."""
    phrases: dict[str, list[tuple[str, ...]]] = {}
    for phrase in question_runs() | short_questions():
        phrases.setdefault(phrase[0], []).append(phrase)
    found = [(m.group(), m.start()) for m in _WORD.finditer(text)]
    tokens = [fold(token) for token, _ in found]
    spans: list[list[int]] = []
    for i, token in enumerate(tokens):
        for phrase in phrases.get(token, ()):
            if tuple(tokens[i:i + len(phrase)]) == phrase:
                if spans and i < spans[-1][1]:
                    spans[-1][1] = max(spans[-1][1], i + len(phrase))
                else:
                    spans.append([i, i + len(phrase)])
    return [f"{where(path, text, found[a][1])}: {' '.join(token for token, _ in found[a:b])}" for a, b in spans]


def seed_names_in(path: Path, text: str) -> list[str]:
    """file:line and the names, for each line that names something of the seeds."""
    found = {(m.start(), name) for name in seed_names() for m in re.finditer(rf"\b{re.escape(name)}\b", text)}
    by_line: dict[str, list[str]] = {}
    for (offset, name) in sorted(found):
        names = by_line.setdefault(where(path, text, offset), [])
        if name not in names:
            names.append(name)
    return [f"{at}: {', '.join(names)}" for at, names in by_line.items()]


# --- the tests ------------------------------------------------------------------------------

def test_the_name_rule_finds_the_seeds_people_places_and_bodies_but_not_ordinary_words() -> None:
    names = set(seed_names())
    assert names, "the seeds yield names"
    assert not names & {"The", "This", "President", "Minister"} and not names & CALENDAR, sorted(names)


def test_the_question_runs_skip_runs_of_stop_words() -> None:
    assert question_runs(), "the evaluation sets yield runs"
    assert all(sum(map(content, run)) >= MIN_CONTENT for run in question_runs())
    assert ("what", "is", "the", "name") not in question_runs()


def test_the_chat_page_examples_are_the_only_exemption() -> None:
    text = (PACKAGE / "web.py").read_text(encoding="utf-8")
    blanked = without_examples(PACKAGE / "web.py", text)
    assert blanked.count("\n") == text.count("\n") and len(blanked) == len(text)
    assert "EXAMPLES =" not in blanked


def test_no_file_of_the_package_quotes_an_evaluation_question() -> None:
    hits = [hit for path, text in package_texts() for hit in question_runs_in(path, text)]
    assert not hits, ("words of evaluation questions in qa/ (invent the example instead):\n"
                      + "\n".join(hits))


def test_no_file_of_the_package_names_anyone_or_anything_of_the_seed_articles() -> None:
    hits = [hit for path, text in package_texts() for hit in seed_names_in(path, text)]
    assert not hits, ("names from the seed articles in qa/ (invent the example instead):\n"
                      + "\n".join(hits))
