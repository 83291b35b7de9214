"""A period of article dates that a question is restricted to.

Every passage carries its article's date (:mod:`qa.store`): ``date`` as ``YYYY-MM-DD`` (``""``
when the article has none) and ``date_int``, the number ``YYYYMMDD``, for filters that compare.
A :class:`Period` has a first day, a last day, or both, each inclusive. Dense search filters on
``date_int`` in Chroma (:meth:`Period.conditions`), keyword search on the passage ids Chroma
finds in the period. An article without a date is in no period: a question asked within one
leaves undated articles out, and the answer says how many.

Bounds are given as :class:`datetime.date` or as ISO strings (``"2024-03-14"``); anything else,
or a first day after the last, is a :class:`~qa.errors.PeriodError` whose message says what to
write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .errors import PeriodError

DateLike = date | str | None
"""A bound as the user gives it: a date, an ISO string ``YYYY-MM-DD``, or nothing."""

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(value: DateLike, name: str = "date") -> date | None:
    """A bound as a :class:`datetime.date`; ``None`` for no bound (``None`` or blank text).

    >>> parse_day("2024-03-14"), parse_day(date(2024, 3, 14)), parse_day("  ")
    (datetime.date(2024, 3, 14), datetime.date(2024, 3, 14), None)
    >>> parse_day("14/03/2024", "since")
    Traceback (most recent call last):
    ...
    qa.errors.PeriodError: The since date '14/03/2024' is not a date written as YYYY-MM-DD, such as 2024-03-14.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise PeriodError(f"The {name} date must be a date or text such as 2024-03-14, not {type(value).__name__}.")
    text = value.strip()
    if not text:
        return None
    if _ISO_DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise PeriodError(f"The {name} date {text!r} is no day of the calendar (check the month and the "
                              "day).") from None
    raise PeriodError(f"The {name} date {text!r} is not a date written as YYYY-MM-DD, such as 2024-03-14.")


def _number(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


@dataclass(frozen=True)
class Period:
    """The days from ``since`` to ``until``, both included; either may be open (``None``)."""

    since: date | None = None
    until: date | None = None

    @classmethod
    def of(cls, since: DateLike = None, until: DateLike = None) -> Period | None:
        """The period between two bounds as the user gives them; ``None`` when neither is given.

        >>> Period.of("2024-01-01", date(2024, 3, 31))
        Period(since=datetime.date(2024, 1, 1), until=datetime.date(2024, 3, 31))
        >>> Period.of(None, "") is None
        True
        >>> Period.of("2024-04-01", "2024-03-31")
        Traceback (most recent call last):
        ...
        qa.errors.PeriodError: The period starts on 2024-04-01, after it ends (2024-03-31). Swap the two dates.
        """
        start, end = parse_day(since, "since"), parse_day(until, "until")
        if start is None and end is None:
            return None
        if start is not None and end is not None and start > end:
            raise PeriodError(f"The period starts on {start}, after it ends ({end}). Swap the two dates.")
        return cls(start, end)

    def conditions(self) -> list[dict[str, Any]]:
        """Chroma ``where`` conditions on ``date_int``; a passage without a date meets none of them.

        >>> Period(date(2024, 1, 1), date(2024, 3, 31)).conditions()
        [{'date_int': {'$gte': 20240101}}, {'date_int': {'$lte': 20240331}}]
        """
        out: list[dict[str, Any]] = []
        if self.since is not None:
            out.append({"date_int": {"$gte": _number(self.since)}})
        if self.until is not None:
            out.append({"date_int": {"$lte": _number(self.until)}})
        return out

    def contains(self, iso: str) -> bool:
        """Is an article dated ``iso`` (``YYYY-MM-DD``, or ``""`` for no date) in the period?

        >>> march = Period(date(2024, 3, 1), date(2024, 3, 31))
        >>> march.contains("2024-03-14"), march.contains("2024-04-01"), march.contains("")
        (True, False, False)
        """
        if not iso:
            return False
        day = date.fromisoformat(iso)
        return (self.since is None or self.since <= day) and (self.until is None or day <= self.until)

    def __str__(self) -> str:
        """The period in words, to follow "dated".

        >>> str(Period(date(2024, 1, 1), date(2024, 3, 31))), str(Period(date(2024, 1, 1)))
        ('from 2024-01-01 to 2024-03-31', '2024-01-01 or later')
        >>> str(Period(until=date(2024, 3, 31))), str(Period(date(2024, 3, 14), date(2024, 3, 14)))
        ('2024-03-31 or earlier', '2024-03-14')
        """
        if self.since is not None and self.until is not None:
            return str(self.since) if self.since == self.until else f"from {self.since} to {self.until}"
        return f"{self.since} or later" if self.since is not None else f"{self.until} or earlier"


def undated_note(count: int) -> str:
    """What the reader is told about the articles a period left out for having no date.

    >>> undated_note(0), undated_note(1), undated_note(3)
    ('', '1 article has no date and was left out.', '3 articles have no date and were left out.')
    """
    if count <= 0:
        return ""
    if count == 1:
        return "1 article has no date and was left out."
    return f"{count} articles have no date and were left out."
