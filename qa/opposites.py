"""Words of opposite meaning, and a question read only as its opposite.

A question can ask about the one thing its passages do not say by changing one word of a sentence
they hold: "least" for "most", "before" for "after", "unofficial" for "official". When what the
model reads holds the opposite of a word of the question and never the word itself (nor a word
of the same meaning), any answer drawn from it answers the other question.

Each entry is two sets of words of opposite meaning, with the forms a verb takes: degree and size,
order in time, direction and place, and a few common opposites. A word made opposite by "un-" or
"non-" ("unusual", "non-violent") is read as the opposite of the word without it. Words with
another common sense ("first" and "last", "start" and "end", "fall", "following") are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .polar import is_polar
from .text import last_sentence, with_apostrophes, words

_PAIRS = [
    # degree and size
    ("most", "least fewest"), ("more", "less fewer"), ("highest tallest", "lowest"), ("higher taller", "lower"),
    ("largest biggest greatest", "smallest"), ("larger bigger greater", "smaller"), ("longest", "shortest"),
    ("longer", "shorter"), ("maximum", "minimum"), ("oldest", "youngest newest"), ("older", "younger newer"),
    ("best", "worst"), ("better", "worse"), ("majority", "minority"),
    ("increase increases increased increasing rise rises rose risen rising grow grows grew grown growing",
     "decrease decreases decreased decreasing reduce reduces reduced reducing decline declines declined declining"),
    # order in time
    ("before prior earlier preceding", "after later"), ("earliest", "latest"),
    # direction and place
    ("north", "south"), ("east", "west"), ("northern", "southern"), ("eastern", "western"),
    ("northeast", "southwest"), ("northwest", "southeast"), ("above", "below"), ("inside", "outside"),
    ("upper", "lower"),
    # common opposites
    ("public", "private"), ("import imports imported", "export exports exported"),
    ("win wins won winning", "lose loses lost losing"), ("success successful", "failure"),
    ("positive", "negative"), ("gain gains gained", "loss losses"),
    ("accept accepts accepted", "reject rejects rejected"),
]

OPPOSITES: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
"""For a word: the words of the same meaning (itself among them), and those of the opposite meaning."""
for _one, _other in _PAIRS:
    for _same, _opposite in ((frozenset(_one.split()), frozenset(_other.split())),
                             (frozenset(_other.split()), frozenset(_one.split()))):
        for _word in _same:
            _had = OPPOSITES.get(_word, (frozenset(), frozenset()))
            OPPOSITES[_word] = (_had[0] | _same, _had[1] | _opposite)

_NEGATED = re.compile(r"^(?:un|non)-?([a-z]{5,})$")  # "unofficial", "non-violent"; not "unless", "unit"


def _negated(word: str) -> str | None:
    match = _NEGATED.match(word)
    return match.group(1) if match else None


def opposed(question: str, texts: Iterable[str]) -> tuple[str, str] | None:
    """A word of the question's last sentence and its opposite, when ``texts`` hold the opposite
    and never the word (nor one of the same meaning); else ``None``. A yes-or-no question passes:
    the opposite may be its answer ("no, the highest").

    >>> opposed("Which is the least visited lighthouse?", ["The most visited lighthouse is on the cape."])
    ('least', 'most')
    >>> opposed("Which lighthouse is least visited?", ["The least and the most visited ones."]) is None
    True
    >>> opposed("What did the ferry do before the storm?", ["After the storm, the ferry sailed."])
    ('before', 'after')
    >>> opposed("What is the unofficial name of the bay?", ["Its official name is Grey Bay."])
    ('unofficial', 'official')
    >>> opposed("Which town grew fastest?", ["The town's population rose quickly."]) is None
    True
    >>> opposed("Was it the least visited lighthouse?", ["It was the most visited one."]) is None
    True
    """
    last = with_apostrophes(last_sentence(question))
    if is_polar(last):
        return None
    asked = words(last)
    said = [w for text in texts for w in words(text)]
    said_words = set(said)
    for word in dict.fromkeys(asked):
        same, opposite = OPPOSITES.get(word, (frozenset(), frozenset()))
        if opposite and not same & said_words:
            found = next((w for w in said if w in opposite), None)
            if found:
                return word, found
        base = _negated(word)
        if base and word not in said_words and base in said_words:
            return word, base
        if word not in said_words and any(_negated(w) == word for w in said_words):
            return word, next(w for w in said if _negated(w) == word)
    return None
