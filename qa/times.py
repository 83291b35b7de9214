"""The years and decades a question names must date the passage its answer comes from.

"Which clubs did Lund race against in the 1990s?" was answered "the Gulls and the harbour
crews", from a passage about 2019; "What was ferry ridership in Norvale's 2019 season?" was
answered with the 2020 ridership. Every word of both answers is in the passage or the question,
and the model's own check agreed. Only the time was wrong, so it is checked here.

A passage rarely restates the year of the events it reports: "a ridership of 1.2 million" names
no year, and sits in the section headed "Summer 2020 season"; "the regatta ... was to be held on
3 May, but was then called off" sits in a passage about the storm of November 2019, in an
article about the 2020 season. So what an answer quotes is dated by the
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

from .store import Passage
from .text import decades, fold

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
    """The years and decades a text names as dates (:func:`qa.text.decades`).

    >>> sorted(times("Did he race the Gulls in the ’90s, or in 2019, when 1500 riders paid 12.5 percent more?"))
    ['1990s', '2019']
    >>> times("Ridership has risen since 2019 and rose 2020 percent, up from 2018's, more than in 2017.")
    set()
    """
    found, rest = decades(fold(text))
    for match in _YEAR.finditer(rest):
        if not _BOUND.search(rest[:match.start()]):
            found.add(match.group(1))
    return found


def named_times(texts: Iterable[str]) -> set[str]:
    """Every year and decade the texts name, a year naming its decade and its century too.

    >>> sorted(named_times(["In 1995 he raced the Gulls.", "The 2020s began."]))
    ['1900s', '1990s', '1995', '2020s']
    """
    named: set[str] = set()
    for text in texts:
        for time in times(text):
            named |= {time, time[:3] + "0s", time[:2] + "00s"} if time.isdigit() else {time}
    return named


def headings(article: Sequence[Passage]) -> list[tuple[int, str]]:
    """The headings of an article, from its passages: (offset in the article, text), in order.

    >>> body = "Ridership was high.\\n\\nSummer 2020 season\\n\\nThe FLA counted."
    >>> headings([Passage("a", body, "x", "T", "x.txt", 100, 100 + len(body))])
    [(121, 'Summer 2020 season')]
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

    >>> head = Passage("h", "Rain fell.\\n\\nSummer 2020 season", "x", "T", "x.txt", 0, 30)
    >>> riders = Passage("t", "In 2019 it was low. Ridership was 1.2 million.", "x", "T", "x.txt", 32, 78)
    >>> sorted(dates("Ridership was 1.2 million.", riders, [head, riders]))
    ['2000s', '2020', '2020s']
    >>> sorted(dates("In 2019 it was low.", riders, [head, riders]))
    ['2000s', '2010s', '2019']
    >>> both = Passage("b", "November 2019 storm\\n\\nRuiz fled.\\n\\nSummer 2020 season\\n\\nRidership was high.",
    ...                "x", "T", "x.txt", 0, 72)
    >>> sorted(dates("Ridership was high.", both, [both])), sorted(dates("Ruiz fled.", both, [both]))
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

    >>> a = [Passage("1", "In October of 2019, Lund won.", "a", "T", "a.txt", 0, 29)]
    >>> b = [Passage("2", "In the 90s he raced the Gulls.", "b", "T", "b.txt", 0, 30)]
    >>> unnamed_times("Whom did Lund race in the 1990s?", [("Lund won.", a[0])], {"a": a})
    ['1990s']
    >>> unnamed_times("Whom did Lund race in the 1990s?", [("He raced the Gulls.", b[0])], {"b": b})
    []
    >>> unnamed_times("Were 1800 people evacuated?", [("In all, 1,800 people were moved.", a[0])], {"a": a})
    []
    """
    named = set().union(*(dates(quote, p, articles.get(p.article_id, [p])) for quote, p in cited))
    counted = {re.sub(r"\D", "", m) for quote, _ in cited for m in _COUNT.findall(quote)}  # "1,800 people"
    return sorted(times(question) - named - counted)
