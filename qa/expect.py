"""What kind of answer a question asks for, and whether an answer is of that kind.

A small model asked "How many loaves did the bakery sell?" by passages that
only give its share of the town's bread sales answers "12 percent [1]": a true
sentence, cited correctly, that does not answer the question. The citation
check cannot see this, since the passage supports every word. This check compares the shape of
the answer with the question's:

- a question that opens with "how many" / "how much" / "what percentage"
  asks for an amount: an answer with no number (in digits or words, or
  "tripled", "none", "a majority") gives none;
- "how much" did something cost (or pay, spend, borrow), or how large was a
  loan (debt, budget, fine), asks for a sum of money: "twice the unit price"
  or "25%" gives none (a question about a price's rise or fall asks for a
  change, and "it doubled" answers it);
- "how many" asks for a count, so an answer whose only numbers are
  percentages answers another question, unless the question itself asks
  about a share, rate or points;
- "what percentage" / "what share" / "what proportion" / "what fraction"
  asks for a share, so an answer whose numbers, other than years and those
  of the question, are all counts above 100 ("1,204 riders", "3.4 million
  votes") answers another question, unless it gives a percentage, a
  fraction or part ("a third", "most of them"), a ratio ("9 of 12", "1,204
  votes out of 2,500", "5 per 1,000") or, for a change, a multiple ("it
  tripled") or the two ends ("from 1,200 to 1,500");
- "when" / "what date" / "in which year" asks for a time: an answer with no
  date, time word ("in the spring", "after the count", "recently") or
  number gives none.

Only the opening of the question counts ("Who decided how many buses to
send?" asks who), and any other question is taken to be answered in kind: a
wrongly refused answer costs the user more than a missed mismatch. Pure and deterministic;
the pipeline turns an answer of the wrong kind into a refusal.
"""

from __future__ import annotations

import re

from .text import LARGE_NUMBERS, MONTH_ABBREVIATIONS, MONTHS, NUMBER_WORDS, OPENER, SMALL_NUMBERS, TENS, WEEKDAYS

_LEAD = OPENER
# the opening before "how many" or "what share": "And by roughly how many..."
_PREFIX = (_LEAD + r"(?:(?:in|by|for|on|to|of|from|at|with|over|after|about|across|between)\s+)?"
           r"(?:(?:roughly|about|approximately|exactly|around|nearly|precisely)\s+)?")
_SHARE_ASKED = r"what (?:percentage|percent|per cent|share|proportion|fraction)|how many (?:percent|per cent)"
_AMOUNT = re.compile(_PREFIX + rf"(?:how (?:many|much)|what (?:amount|sum|margin|factor)|{_SHARE_ASKED})\b",
                     re.IGNORECASE)
_SHARE = re.compile(_PREFIX + rf"(?:{_SHARE_ASKED})\b", re.IGNORECASE)
_MONEY = re.compile(r"\bhow much\b.*\b(?:cost|costs|paid|pay|spend|spent|worth|price|money|budget|loan|debt)\b",
                    re.IGNORECASE)
# "How large was the harbour loan": the sum is the question's subject (not "the protest against the loan")
_MONEY_SIZE = re.compile(_LEAD + r"how (?:large|big|small) (?:was|were|is|are|will be|would be) "
                         r"(?:the |a |an |their |its |his |her |this |that )?(?:[\w’'-]+ ){0,2}"
                         r"(?:loans?|debts?|budgets?|fines?|payments?|bailouts?|grants?|investments?|bribes?|"
                         r"salar(?:y|ies)|wages?|fees?|ransoms?)\b", re.IGNORECASE)
_PART_OF = re.compile(r"\bhow much of\b|\bgdp\b", re.IGNORECASE)
_CHANGE = re.compile(r"\b(?:rise|rose|risen|fall|fell|fallen|grow|grew|grown|increase|increased|decrease|decreased|"
                     r"drop|dropped|shrink|shrank|change|changed|climb|climbed|jump|jumped|go up|go down|went up|"
                     r"went down|cut|reduce|reduced)\b", re.IGNORECASE)
# a sum: any number, a currency sign, or a word for money or a large amount
_CURRENCY = re.compile(r"\d|[$€£¥₹₽₩]|\b(?:dollars?|euros?|pounds?|pesos?|francs?|yuan|yen|rupees?|"
                       r"cents?|millions?|billions?|trillions?|thousands?|hundreds?|free|nothing)\b", re.IGNORECASE)
_COUNT = re.compile(r"\bhow many\b", re.IGNORECASE)
_ABOUT_SHARES = re.compile(r"%|\bpercent|\bper cent\b|\bshares?\b|\bproportion|\bpoints?\b|\brates?\b|\bmargin",
                           re.IGNORECASE)
_TIME = re.compile(_LEAD + r"(?:when\b(?!\s+and\s+where)|(?:(?:on|in|by|at|from|until|since)\s+)?"
                   r"(?:what|which) (?:date|day|year|month|time|week|decade|century)\b)", re.IGNORECASE)

# what can stand for a count, also beside a percentage: cardinals, not "came third" or "a quarter":
# numbers in words and the vaguer words that can stand for a count
_CARDINALS = NUMBER_WORDS + r"|dozens?|scores|none|nobody|no one|several|few|handful"
_COUNT_WORDS = re.compile(rf"\b(?:{_CARDINALS})\b", re.IGNORECASE)
# fractions ("an eighth", "a twelfth") and multiples ("it tripled") in words
_FRACTIONS = (r"half|halves|quarters?|thirds?|\w*(?:fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|"
              r"teenth|tieth|hundredth|thousandth)s?")
_MULTIPLES = r"twice|thrice|double[sd]?|triple[sd]?|quadruple[sd]?|halved|\w+fold"
# any amount in words: the cardinals, and fractions, multiples and the like
_NUMBER_WORDS = re.compile(rf"\b(?:{_CARDINALS}|nothing|once|{_MULTIPLES}|{_FRACTIONS}|majority|minority|free)\b",
                           re.IGNORECASE)
_PERCENT_NUMBER = re.compile(r"\d[\d,.]*\s*(?:%|percent\b|per cent\b|percentage points?\b|points?\b)",
                             re.IGNORECASE)
_ANY_NUMBER = re.compile(r"\d(?:[\d,.]*\d)?")
# what gives a share in words: a percentage, a fraction or a vague part, a rate
_SHARE_WORDS = re.compile(
    r"%|\bper ?cent|\bpercentage\b|\bpoints?\b|\bper (?:\d|hundred|thousand|million|capita|head)|"
    rf"\b(?:{_FRACTIONS}|majority|minority|most|all|none|nobody|no one|every|whole)\b", re.IGNORECASE)
_NUMBER = rf"(?:\d[\d,.]*|\b(?:{NUMBER_WORDS})\b)"
_NOT_YEAR = r"(?!(?:19|20)\d\d\b)"
# a ratio: "9 of 12", "one in five", "1,204 votes out of 2,500"
_RATIO = re.compile(rf"{_NUMBER}(?:\s+(?:of|in)|(?:\s+[\w’'-]+){{0,2}}?\s+out\s+of)\s+(?:every\s+)?"
                    rf"(?:\S+\s+){{0,3}}?{_NOT_YEAR}{_NUMBER}", re.IGNORECASE)
# a change given by its two ends, or as a multiple
_FROM_TO = re.compile(rf"\bfrom\s+\S*{_NUMBER}.*?\bto\s+\S*{_NUMBER}", re.IGNORECASE)
_MULTIPLE = re.compile(rf"\b(?:{_MULTIPLES})\b", re.IGNORECASE)
# a number from 2 to 99 in words ("one" is too often no number), not the start of "forty thousand"
_SMALL_IN_WORDS = re.compile(rf"\b(?:{'|'.join(TENS)}|{'|'.join(SMALL_NUMBERS[2:])})\b"
                             rf"(?![- ](?:{'|'.join(LARGE_NUMBERS)})s?\b)", re.IGNORECASE)
_SCALED = re.compile(rf"\s*(?:{'|'.join(LARGE_NUMBERS)})s?\b", re.IGNORECASE)
_YEAR = re.compile(r"(?:19|20)\d\d")
_TIME_WORDS = re.compile(
    rf"\d|\b(?:{'|'.join(MONTHS + MONTH_ABBREVIATIONS + WEEKDAYS)}|"
    r"today|yesterday|tomorrow|tonight|day|days|week|weeks|weekend|month|months|year|years|decade|"
    r"decades|century|centuries|era|period|term|season|spring|summer|autumn|fall|winter|quarter|morning|"
    r"afternoon|evening|night|midnight|noon|dawn|dusk|hours?|minutes?|time|times|moment|after|before|during|"
    r"since|until|till|later|earlier|early|late|mid|ago|when|while|once|upon|following|then|now|recently|"
    r"immediately|soon|amid|past|previous|next|last|start|beginning|end|eve)\b", re.IGNORECASE)


SHARE_FOR_COUNT = "a count was asked for, and the answer gives only a percentage"
COUNT_FOR_SHARE = "a share was asked for, and the answer gives none"


def _gives_share(question: str, answer: str) -> bool:
    """Can ``answer`` give the share that ``question`` asks for?

    It can with a percentage, a fraction or part, a ratio, a number up to 100 (in digits or words)
    that is neither a year, nor one the question gives, nor "3.4 million"; and for a change, with a
    multiple or the change's two ends.
    """
    if _SHARE_WORDS.search(answer) or _RATIO.search(answer) or _SMALL_IN_WORDS.search(answer):
        return True
    if _CHANGE.search(question) and (_MULTIPLE.search(answer) or _FROM_TO.search(answer)):
        return True
    asked = set(_ANY_NUMBER.findall(question))
    for found in _ANY_NUMBER.finditer(answer):
        number = found.group().replace(",", "")
        if (found.group() in asked or _YEAR.fullmatch(number) or number.count(".") > 1
                or _SCALED.match(answer, found.end())):
            continue
        if float(number) <= 100:
            return True
    return False


def _gives_money(question: str, answer: str) -> bool:
    """Does ``answer`` give a sum of money, or is a change or a share all that ``question`` can mean?

    A percentage is no sum ("the loan was 25%"), unless the question asks about a change ("how
    much did the price rise"), a share ("how much of the budget", "as a share of GDP") or a rate.
    """
    if _CHANGE.search(question) or _ABOUT_SHARES.search(question) or _PART_OF.search(question):
        return True
    return bool(_CURRENCY.search(_PERCENT_NUMBER.sub(" ", answer))) or bool(_PART_OF.search(answer))


def mismatch(question: str, answer: str) -> str:
    """Why ``answer`` (markers removed) is not the kind of answer ``question`` asks for; ``""`` when it is.

    >>> mismatch("How many loaves did Lund sell?", "Lund sold 12 percent of the loaves.")
    'a count was asked for, and the answer gives only a percentage'
    >>> mismatch("How many loaves did the bakery sell?", "The bakery sold 3,214,905 loaves, 47.3%.")
    ''
    >>> mismatch("How many loaves did Lund sell in 2019?", "In 2019 Lund sold 12 percent.")
    'a count was asked for, and the answer gives only a percentage'
    >>> mismatch("How many loaves did Lund sell?", "Lund came third with 12 percent of the sales.")
    'a count was asked for, and the answer gives only a percentage'
    >>> mismatch("How much did the ferry tickets cost?", "They were sold at twice their unit price.")
    'a sum of money was asked for, and the answer gives none'
    >>> mismatch("How much could the new bridge toll raise?", "It could raise $4 million a year.")
    ''
    >>> mismatch("How much did the ferry tickets cost in total?", "They were sold at the harbour.")
    'an amount was asked for, and the answer gives no number'
    >>> mismatch("What share of the ferry's tickets did Lund sell?", "Lund sold 3,214,905 tickets.")
    'a share was asked for, and the answer gives none'
    >>> mismatch("What share of the ferry's tickets did Lund sell?", "Lund sold 9 of its 12 tickets.")
    ''
    >>> mismatch("How large was the harbour loan?", "The loan was 25% of the budget.")
    'a sum of money was asked for, and the answer gives none'
    >>> mismatch("How large was the harbour loan?", "It was $32 million.")
    ''
    >>> mismatch("By how much did bus fares rise?", "Bus fares tripled.")
    ''
    >>> mismatch("When did the baker reopen?", "She reopened proudly.")
    'a time was asked for, and the answer gives none'
    >>> mismatch("When did the baker reopen?", "She reopened on 9 November.")
    ''
    >>> mismatch("Who won?", "Tom Lund won.")
    ''
    """
    if _MONEY_SIZE.search(question) and not _gives_money(question, answer):
        return "a sum of money was asked for, and the answer gives none"
    share = bool(_SHARE.search(question))
    if _AMOUNT.search(question):
        if not _ANY_NUMBER.search(answer) and not _NUMBER_WORDS.search(answer) and not (
                share and _SHARE_WORDS.search(answer)):
            return "an amount was asked for, and the answer gives no number"
        if _MONEY.search(question) and not _gives_money(question, answer):
            return "a sum of money was asked for, and the answer gives none"
        if share and not _gives_share(question, answer):
            return COUNT_FOR_SHARE
        if _COUNT.search(question) and not _ABOUT_SHARES.search(question) and _PERCENT_NUMBER.search(answer):
            asked = set(_ANY_NUMBER.findall(question))
            rest = _PERCENT_NUMBER.sub(" ", answer)
            counts = [n for n in _ANY_NUMBER.findall(rest) if n not in asked and not _YEAR.fullmatch(n)]
            if not counts and not _COUNT_WORDS.search(rest):
                return SHARE_FOR_COUNT
    if _TIME.search(question) and not _TIME_WORDS.search(answer) and not _NUMBER_WORDS.search(answer):
        return "a time was asked for, and the answer gives none"
    return ""

