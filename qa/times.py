"""The years and decades a question names must date the passage its answer comes from.

"Which agencies did Morales fight in the 1990s?" was answered "the US state and the corrupt
police", from a passage about 2019; "What was voter turnout in Bolivia's 2019 election?" was
answered with the 2020 turnout. Every word of both answers is in the passage or the question,
and the model's own check agreed. Only the time was wrong, so it is checked here.

A passage rarely restates the year of the events it reports: "a participation rate of 88.4
percent" names no year, and sits in the section headed "October 2020 election"; "elections ...
were scheduled to be held on 3 May, but were then postponed" sits in a passage about the coup of
November 2019, in an article about the 2020 election. So what an answer quotes is dated by the
nearest context that names any time: the quoted sentences themselves, else their section
heading (the nearest heading before them, in their passage or an earlier one: a paragraph of one
short line that ends without punctuation), else its article's title, else every time its article
names. Each time the question names must be among the dates of a cited quote. A decade or a
century is named by itself or by any of its years ("in 1995" names the 1990s and the 1900s); a
year only by itself. A year after "since", "before", "until", "than" or "up from" is a bound
or a comparison, not a date, and is not asked for; nor is a count ("1,800 people"). Pure and
deterministic; the pipeline reads the cited articles only for a question that names a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from .citations import decades, fold
from .store import Passage

# a year from 1800 to 2099: not part of a larger number, nor a share ("2020 percent")
_YEAR = re.compile(r"(?<![\d.,])(18\d\d|19\d\d|20\d\d)(?![\d.,]*\d)(?!\s*(?:%|percent|per cent))")
# a number written as a count, which a question may write as a year: "1,800" for "1800 people"
_COUNT = re.compile(r"(?<![\d.,])(?:1[,\u202f\u00a0][89]|2[,\u202f\u00a0]0)\d\d(?![\d.,]*\d)")
# before a year that is a bound or a comparison, not a date: "since 2019", "after the 2019 crisis",
# "up from 2019's 85 percent", "higher than in 2019"
_BOUND = re.compile(r"\b(?:since|after|before|until|till|prior to|pre|post|than(?: in)?|compared (?:with|to)"
                    r"|versus|vs\.?|(?:up|down) from)[\s-]+(?:the\s+)?$")
# a paragraph of one line (inside a passage, or at its start or end)
_LINE = re.compile(r"(?:^|\n[ \t]*\n)[ \t]*([^\n]{3,100}?)[ \t]*(?=\n[ \t]*\n|\s*$)")
_CLOSED = re.compile(r"[.!?:;,\"”’')\]…—–-]$")
_NOT_HEADING = re.compile(r"^(?:published|updated|posted|by|read more|see also|photo|image|source|credit|share"
                          r"|advertisement|caption)\b",
                          re.IGNORECASE)


def times(text: str) -> set[str]:
    """The years and decades a text names as dates (:func:`qa.citations.decades`).

    >>> sorted(times("Did he fight the DEA in the ’90s, or in 2019, when 1500 troops got 12.5 percent?"))
    ['1990s', '2019']
    >>> times("Turnout has risen since 2019 and rose 2020 percent, up from 2018's, more than in 2017.")
    set()
    """
    found, rest = decades(fold(text))
    for match in _YEAR.finditer(rest):
        if not _BOUND.search(rest[:match.start()]):
            found.add(match.group(1))
    return found


def named_times(texts: Iterable[str]) -> set[str]:
    """Every year and decade the texts name, a year naming its decade and its century too.

    >>> sorted(named_times(["In 1995 he fought the DEA.", "The 2020s began."]))
    ['1900s', '1990s', '1995', '2020s']
    """
    named: set[str] = set()
    for text in texts:
        for time in times(text):
            named |= {time, time[:3] + "0s", time[:2] + "00s"} if time.isdigit() else {time}
    return named


def headings(article: Sequence[Passage]) -> list[tuple[int, str]]:
    """The headings of an article, from its passages: (offset in the article, text), in order.

    >>> body = "Turnout was high.\\n\\nOctober 2020 election\\n\\nThe TSE counted."
    >>> headings([Passage("a", body, "x", "T", "x.txt", 100, 100 + len(body))])
    [(119, 'October 2020 election')]
    """
    found: dict[int, str] = {}
    for passage in article:
        for match in _LINE.finditer(passage.text):
            line = match.group(1)
            if not _CLOSED.search(line) and not _NOT_HEADING.match(line) and (
                    any(c.isalpha() for c in line) or _YEAR.fullmatch(line)):
                found[passage.start + match.start(1)] = line
    return sorted(found.items())


def dates(quote: str, passage: Passage, article: Sequence[Passage]) -> set[str]:
    """The years and decades that date what a passage's ``quote`` says (see the module's note).

    >>> head = Passage("h", "Rain fell.\\n\\nOctober 2020 election", "x", "T", "x.txt", 0, 32)
    >>> turnout = Passage("t", "In 2019 it was low. Turnout was 88.4 percent.", "x", "T", "x.txt", 34, 79)
    >>> sorted(dates("Turnout was 88.4 percent.", turnout, [head, turnout]))
    ['2000s', '2020', '2020s']
    >>> sorted(dates("In 2019 it was low.", turnout, [head, turnout]))
    ['2000s', '2010s', '2019']
    >>> both = Passage("b", "November 2019 coup\\n\\nMorales fled.\\n\\nOctober 2020 election\\n\\nTurnout was high.",
    ...                "x", "T", "x.txt", 0, 75)
    >>> sorted(dates("Turnout was high.", both, [both])), sorted(dates("Morales fled.", both, [both]))
    (['2000s', '2020', '2020s'], ['2000s', '2010s', '2019'])
    """
    found = passage.text.find(quote)
    at = passage.start + max(found, 0)  # a heading inside the passage, above the quote, is its section's
    above = [text for offset, text in headings(article) if offset <= at]
    for context in ([quote], above[-1:], [passage.title]):
        named = named_times(context)
        if named:
            return named
    return named_times(p.text for p in article)


def unnamed_times(question: str, cited: Sequence[tuple[str, Passage]],
                  articles: Mapping[str, Sequence[Passage]]) -> list[str]:
    """The years and decades of ``question`` that date none of the ``cited`` quotes (with their passages).

    ``articles`` holds every passage of each cited passage's article, by article id.

    >>> a = [Passage("1", "In October of 2019, Morales won.", "a", "T", "a.txt", 0, 32)]
    >>> b = [Passage("2", "In the 90s he fought the DEA.", "b", "T", "b.txt", 0, 29)]
    >>> unnamed_times("Whom did Morales fight in the 1990s?", [("Morales won.", a[0])], {"a": a})
    ['1990s']
    >>> unnamed_times("Whom did Morales fight in the 1990s?", [("He fought the DEA.", b[0])], {"b": b})
    []
    >>> unnamed_times("Were 1800 people arrested?", [("In all, 1,800 people were held.", a[0])], {"a": a})
    []
    """
    named = set().union(*(dates(quote, p, articles.get(p.article_id, [p])) for quote, p in cited))
    counted = {re.sub(r"\D", "", m) for quote, _ in cited for m in _COUNT.findall(quote)}  # "1,800 people"
    return sorted(times(question) - named - counted)
