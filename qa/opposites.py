"""Words of opposite meaning, and a question read only as its opposite.

A question can ask about the one thing its passages do not say by changing one word of a sentence
they hold: "least" for "most", "before" for "after", "unofficial" for "official". When what the
model reads holds the opposite of a word of the question and never the word itself (nor a word
of the same meaning), any answer drawn from it answers the other question.

Each entry is two sets of words of opposite meaning, with the forms a verb takes: degree and size,
order in time, direction and place, and a few common opposites. A word made opposite by "un-" or
"non-" ("unusual", "nonviolent") is read as the opposite of the word without it; written with a
hyphen ("non-religious") it is often a name for a kind of thing, and is read as two words. Left
out: words with another common sense ("first" and "last", "start" and "end", "lower", "fall";
"earlier" and "later" count only as words of the same meaning as "before" and "after"), and
opposites that tell one fact from either side ("won" and "lost", "imported" and "exported").
Neither side is read in a comparison with "than" or a bound ("larger than", "at least"), which
can be told from either side, nor in a name (a capitalised word other than a sentence's first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .polar import is_polar
from .text import last_sentence, negates, with_apostrophes, words

_PAIRS = [
    # degree and size
    ("most", "least fewest"), ("more", "less fewer"), ("highest tallest", "lowest"),
    ("largest biggest greatest", "smallest"), ("larger bigger greater", "smaller"), ("longest", "shortest"),
    ("longer", "shorter"), ("maximum", "minimum"), ("oldest", "youngest newest"), ("older", "younger newer"),
    ("best", "worst"), ("better", "worse"), ("majority", "minority"),
    ("increase increases increased increasing rise rises rose risen rising grow grows grew grown growing",
     "decrease decreases decreased decreasing reduce reduces reduced reducing decline declines declined declining"),
    # order in time
    ("before", "after"), ("earliest", "latest"),
    # direction and place
    ("north", "south"), ("east", "west"), ("northern", "southern"), ("eastern", "western"),
    ("northeast", "southwest"), ("northwest", "southeast"), ("above", "below"), ("inside", "outside"),
    # common opposites
    ("public", "private"), ("success successful", "failure"), ("positive", "negative"),
    ("accept accepts accepted", "reject rejects rejected"),
]

# words of the same meaning as a word of the table that are never read as an opposite, having
# another common sense ("earlier this week", "later that day")
_ALSO = {"before": "prior earlier preceding", "after": "later afterwards following"}


def _table(pairs: list[tuple[str, str]], also: dict[str, str]) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    table: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
    for one, other in pairs:
        for same, opposite in ((frozenset(one.split()), frozenset(other.split())),
                               (frozenset(other.split()), frozenset(one.split()))):
            for word in same:
                had_same, had_opposite = table.get(word, (frozenset(), frozenset()))
                table[word] = (had_same | same | frozenset(also.get(word, "").split()), had_opposite | opposite)
    return table


OPPOSITES = _table(_PAIRS, _ALSO)
"""For a word: the words of the same meaning (itself among them), and those of the opposite meaning."""

_NEGATED = re.compile(r"^(?:un|non)([a-z]{5,})$")  # "unofficial", "nonviolent"; not "unless", "unit"
_NOT_NEGATED = frozenset("""uncover uncovered uncovers uncovering unearth unearthed unearths unravel unravelled
unraveled unravels nonsense nonprofit nonprofits""".split())  # "un-" and "non-" that do not deny the rest
# a comparison, which can be told from either side, and a bound: "larger than", "more voters than",
# "at least", "no fewer"
_COMPARED = re.compile(r"\b(?:more|less|fewer|[a-z]+er)(?:\s+[a-z]+){0,3}?\s+than\b"
                       r"|\b(?:at|no) (?:the )?(?:least|most|fewer|less|more|earliest|latest)\b|\bmore or less\b",
                       re.IGNORECASE)
_ENDS = tuple(".!?:;")


def _negated(word: str) -> str | None:
    match = _NEGATED.match(word)
    return match.group(1) if match and word not in _NOT_NEGATED else None


def _unnamed(text: str) -> list[str]:
    """The words of ``text`` that may be read as opposites: not a comparison (``_COMPARED``), nor a
    name ("West", "Rose"), which is a word written with a capital other than a sentence's first."""
    kept, opening = [], True
    for token in _COMPARED.sub(" ", text).split():
        if opening or not token.lstrip("\"'“‘(")[:1].isupper():
            kept.append(token)
        opening = token.rstrip("\"'”’)").endswith(_ENDS)
    return words(" ".join(kept))


def opposed(question: str, texts: Iterable[str], own: str | None = None) -> tuple[str, str] | None:
    """A word of the question's last sentence and its opposite, when ``texts`` hold the opposite
    and never the word (nor one of the same meaning); else ``None``. With ``own`` (what the user
    typed, of which ``question`` is a rewrite), only a word the user used counts. A yes-or-no
    question passes (the opposite may be its answer: "no, the highest"), as does one that negates
    (left to the ``negation`` check) or names both opposites ("higher or lower?").

    >>> opposed("Which is the least visited lighthouse?", ["The most visited lighthouse is on the cape."])
    ('least', 'most')
    >>> opposed("What did the ferry do before the storm?", ["After the storm, the ferry sailed."])
    ('before', 'after')
    >>> opposed("What is the unofficial name of the bay?", ["Its official name is Grey Bay."])
    ('unofficial', 'official')

    Each of these passes: the word is read too, a word of the same meaning, a yes-or-no question, a
    comparison on either side, a bound, a name.

    >>> [opposed(question, [text]) for question, text in [
    ...     ("Which lighthouse is least visited?", "The least and the most visited ones."),
    ...     ("Which town grew fastest?", "The town's population rose quickly."),
    ...     ("Was it the least visited lighthouse?", "It was the most visited one."),
    ...     ("Which pier is longer than the old one?", "The old pier is shorter than the new."),
    ...     ("Where did more gulls nest?", "Fewer gulls than ever nested on the cliffs."),
    ...     ("Which is the most visited lighthouse?", "At least 900 people visit it."),
    ...     ("What did the mayor say in the East Hall?", "In the west wing she spoke."),
    ...     ("What did the mayor say after the vote?", "Earlier, she met Rose Hill.")]]
    [None, None, None, None, None, None, None, None]
    >>> opposed("Which protest was violent?", ["Only the nonviolent march took place."])
    ('violent', 'nonviolent')
    >>> opposed("What did the ferry do before the storm?", ["After it, the ferry sailed."], own="And then?") is None
    True
    """
    last = with_apostrophes(last_sentence(question))
    if is_polar(last) or negates(last, strictly=True):
        return None
    asked = _unnamed(last)
    if own is not None:
        mine = set(_unnamed(own))
        asked = [w for w in asked if w in mine]
    said = [w for text in texts for w in _unnamed(text)]
    said_words = set(said)
    for word in dict.fromkeys(asked):
        same, opposite = OPPOSITES.get(word, (frozenset(), frozenset()))
        if opposite & set(asked):  # "higher or lower?"
            continue
        if opposite and not same & said_words:
            found = next((w for w in said if w in opposite), None)
            if found:
                return word, found
        base = _negated(word)
        if base and base not in asked and word not in said_words and base in said_words:
            return word, base
        if word not in said_words and not any(_negated(w) == word for w in asked) \
                and any(_negated(w) == word for w in said_words):
            return word, next(w for w in said if _negated(w) == word)
    return None
