"""What kind of answer a question asks for, and whether an answer is of that kind.

A small model asked "How many votes did Camacho get?" by passages that only
give his share of the vote answers "13 percent [1]": a true sentence, cited
correctly, that does not answer the question. The citation check cannot see
this, since the passage supports every word. This check compares the shape of
the answer with the question's:

- "how many" / "how much" / "what percentage" asks for an amount: an answer
  with no number (in digits or words, or "tripled", "halved") gives none;
- "how much" did something cost (or pay, spend, borrow) asks for a sum of
  money: "twice the unit price" gives none;
- "how many" asks for a count, so an answer whose only numbers are
  percentages answers another question, unless the question itself asks
  about a share or percentage;
- "when" / "what date" / "what year" asks for a time: an answer with no year,
  month, day or other time word gives none.

Any other question is taken to be answered in kind. Pure and deterministic;
the pipeline turns an answer of the wrong kind into a refusal.
"""

from __future__ import annotations

import re

_AMOUNT = re.compile(r"\b(?:how (?:many|much)|what (?:percentage|share|proportion|fraction|amount)|"
                     r"by what (?:percentage|margin|factor))\b", re.IGNORECASE)
_MONEY = re.compile(r"\bhow much\b.*\b(?:cost|costs|paid|pay|spend|spent|worth|price|money|budget|loan|debt)\b",
                    re.IGNORECASE)
_CURRENCY = re.compile(r"\d|[$€£¥]|\b(?:dollars?|euros?|pounds?|pesos?|bolivianos?|yuan|yen|rupees?|"
                       r"million|billion|thousand|hundred)\b", re.IGNORECASE)
_COUNT = re.compile(r"\bhow many\b", re.IGNORECASE)
_ABOUT_SHARES = re.compile(r"%|percent|per cent|share|proportion|points|rate|margin", re.IGNORECASE)
_TIME = re.compile(r"^\W*(?:(?:and|so|but)\s+)?(?:when\b|(?:on |in |by )?what (?:date|day|year|month|time)\b|"
                   r"(?:in |by )?which (?:date|day|year|month)\b)", re.IGNORECASE)

_NUMBER_WORDS = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundreds?|thousands?|millions?|billions?|dozens?|half|quarter|third|twice|double[sd]?|triple[sd]?|"
    r"quadruple[sd]?|halved|tenfold|\w+fold)\b", re.IGNORECASE)
_PERCENT_NUMBER = re.compile(r"\d[\d,.]*\s*(?:%|percent\b|per cent\b|percentage points?\b|points?\b)",
                             re.IGNORECASE)
_ANY_NUMBER = re.compile(r"\d(?:[\d,.]*\d)?")
_YEAR = re.compile(r"(?:19|20)\d\d")
_TIME_WORDS = re.compile(
    r"\d|\b(?:january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec|monday|tuesday|wednesday|thursday|friday|saturday|"
    r"sunday|today|yesterday|tomorrow|day|days|week|weeks|month|months|year|years|decade|century|morning|"
    r"evening|night|midnight|noon|after|before|during|since|until|later|earlier|ago|when|while|once)\b",
    re.IGNORECASE)


def mismatch(question: str, answer: str) -> str:
    """Why ``answer`` (markers removed) is not the kind of answer ``question`` asks for; ``""`` when it is.

    >>> mismatch("How many votes did Camacho get?", "Camacho received 13 percent of the vote.")
    'a count was asked for, and the answer gives only a percentage'
    >>> mismatch("How many votes did the MAS get?", "The MAS got 3,393,978 votes, 55.1%.")
    ''
    >>> mismatch("How many votes did Camacho get in 2020?", "In 2020 Camacho got 13 percent.")
    'a count was asked for, and the answer gives only a percentage'
    >>> mismatch("How much did the ventilators cost?", "They were bought at twice their unit price.")
    'a sum of money was asked for, and the answer gives none'
    >>> mismatch("How much could the new taxes raise?", "They could raise $400 million a year.")
    ''
    >>> mismatch("How much did the ventilators cost in total?", "They were unsuitable for intensive care.")
    'an amount was asked for, and the answer gives no number'
    >>> mismatch("By how much did unemployment rise?", "Unemployment tripled.")
    ''
    >>> mismatch("When did he come back?", "He returned triumphantly.")
    'a time was asked for, and the answer gives none'
    >>> mismatch("When did he come back?", "He returned on 9 November.")
    ''
    >>> mismatch("Who won?", "Luis Arce won.")
    ''
    """
    if _AMOUNT.search(question):
        if not _ANY_NUMBER.search(answer) and not _NUMBER_WORDS.search(answer):
            return "an amount was asked for, and the answer gives no number"
        if _MONEY.search(question) and not _CURRENCY.search(answer):
            return "a sum of money was asked for, and the answer gives none"
        asked = set(_ANY_NUMBER.findall(question))
        numbers = [n for n in _ANY_NUMBER.findall(answer) if n not in asked and not _YEAR.fullmatch(n)]
        percents = [p for p in _PERCENT_NUMBER.findall(answer) if _ANY_NUMBER.match(p)]
        if (_COUNT.search(question) and not _ABOUT_SHARES.search(question) and numbers
                and len(percents) >= len(numbers)):
            return "a count was asked for, and the answer gives only a percentage"
    if _TIME.search(question) and not _TIME_WORDS.search(answer):
        return "a time was asked for, and the answer gives none"
    return ""
