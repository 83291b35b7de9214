"""Words, stems and sentences: the text tools that retrieval and the answer checks share.

One place for what every module reads text with, so that a word counts the same everywhere:

- :func:`fold` (lower case, no accents) and :func:`words` (its words and numbers, in order);
- :data:`STOP_WORDS`, the one stop-word list, and :func:`stem`, Snowball's English stemmer
  (PyStemmer, the stemmer bm25s takes), so "ferries" and "ferry" are one word;
- :func:`tokens`, the keyword index's tokens, built from those (:data:`TOKENS_VERSION` and
  :func:`tokens_signature` say when an index saved with other tokens must be rebuilt);
- :func:`sentence_spans` and :func:`answer_sentences`, sentences as offsets into the text, and
  :func:`last_sentence`;
- :func:`negates`, whether a text says that something is not so;
- the words for numbers, months and days (:func:`spelled_numbers`, :func:`decades`), and
  :data:`OPENER`, the "and", "so", "but" that open a follow-up question.

The stop words are bm25s's longer English list (NLTK's; less "won" and "don", which it holds as
pieces of "won't" and "don't" but which news uses as words: "she won"), with four more function words, the
words of reporting ("said", "according", "article", "passage": an answer that says "the article
says" must not need them in a passage) and the vague amounts "one", "many" and "much" (in a
question, "how many" says what kind of answer is wanted, not what it is about). The keyword search
and the citation check use the same list: a word too common to count as support is too common to
search by, and BM25 weighs such words next to nothing anyway.
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata

import Stemmer
from bm25s.stopwords import STOPWORDS_EN_PLUS

# --- words -------------------------------------------------------------------------------------

STOP_WORDS = (frozenset(STOPWORDS_EN_PLUS) - {"won", "don"}) | frozenset("""also could would whose
said says according article articles passage passages one many much""".split())


def fold(text: str) -> str:
    """Lower case without accents.

    >>> fold("Núñez’s CAFÉ")
    'nunez’s cafe'
    """
    text = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in text if not unicodedata.combining(c))


_WORD = re.compile(r"\d+(?:\.\d+)?|[a-z]+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


def words(text: str) -> list[str]:
    """The words and numbers of ``text``, folded, in order; a number without its thousands separators.

    >>> words("Núñez's ferry sold 1,204,518 tickets, 8.4% more")
    ['nunez', 's', 'ferry', 'sold', '1204518', 'tickets', '8.4', 'more']
    """
    return _WORD.findall(_THOUSANDS.sub("", fold(text)))


_local = threading.local()  # a PyStemmer stemmer must not be shared between threads


def stem(word: str) -> str:
    """A folded word's Snowball (English) stem: the words of one family share it.

    >>> [stem(w) for w in ["ferries", "ferry", "designed", "designer", "resignation", "sold"]]
    ['ferri', 'ferri', 'design', 'design', 'resign', 'sold']
    """
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return str(stemmer.stemWord(word))


# --- keyword tokens ----------------------------------------------------------------------------

# Bumped whenever :func:`tokens` changes in a way its signature does not show, so that a keyword
# index saved with the old tokens is rebuilt.
TOKENS_VERSION = 4  # 1: no decades; 2: ages read as decades; 3: "-s" cut by hand, retrieval's own stop words


def tokens(text: str) -> list[str]:
    """Keyword tokens: folded, stemmed words and numbers without separators, no stop words.

    >>> tokens("Núñez's ferries sold 1,204,518 tickets in the Harbours")
    ['nunez', 'ferri', 'sold', '1204518', 'ticket', 'harbour']

    A decade is one token, however it is written (:func:`decades`):

    >>> tokens("the 1990s"), tokens("the ’90s"), tokens("in their 90s")
    (['1990s'], ['1990s'], ['90'])
    """
    found, folded = decades(_THOUSANDS.sub("", fold(text)))
    out = sorted(found)
    for word in _WORD.findall(folded):
        if word[0].isdigit():
            out.append(word)
        elif len(word) > 1 and word not in STOP_WORDS:
            out.append(stem(word))
    return out


def tokens_signature() -> str:
    """What a saved keyword index was cut into tokens by: :data:`TOKENS_VERSION`, the stemmer and the stop words.

    Any of them changing changes the signature, and an index saved under another is rebuilt.
    """
    stop = hashlib.sha256(" ".join(sorted(STOP_WORDS)).encode()).hexdigest()[:12]
    return f"tokens v{TOKENS_VERSION} snowball-english pystemmer-{Stemmer.version()} stop-{stop}"


# --- sentences ---------------------------------------------------------------------------------

Span = tuple[int, int]

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
MONTH_ABBREVIATIONS = ("jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "u.s",
                  "u.k", "no", "gen", "col", "lt", "sgt", "rev", "gov", "sen", "rep", "inc", "ltd", "co",
                  *MONTH_ABBREVIATIONS}
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*\s+(?=[\"'“‘(\[¿¡]?[A-Z0-9À-ÖØ-Þ])")


def trim(text: str, start: int, end: int) -> Span:
    """``(start, end)`` narrowed to leave out white space at either end.

    >>> trim("  Ruiz spoke. ", 0, 14)
    (2, 13)
    """
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _ends_with_abbreviation(text: str, start: int, dot: int) -> bool:
    # Only the last few characters can hold an abbreviation: looking at more made a long line of
    # "Dr. Smith met Mr. Jones" take minutes (each candidate rescanned everything since the last stop).
    word = re.search(r"([\w.]+)$", text[max(start, dot - 24):dot])
    if not word:
        return False
    token = word.group(1).lower().rstrip(".")
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha())


def sentence_spans(text: str, start: int = 0, end: int | None = None, hard_limit: int = 2800) -> list[Span]:
    """Spans of the sentences in ``text[start:end]``.

    A "sentence" longer than ``hard_limit`` (a page with no punctuation) is cut at white space.

    >>> t = "Ruiz spoke. The U.K. objected! Did Mr. Lund agree? Yes"
    >>> [t[a:b] for a, b in sentence_spans(t)]
    ['Ruiz spoke.', 'The U.K. objected!', 'Did Mr. Lund agree?', 'Yes']
    """
    end = len(text) if end is None else end
    spans: list[Span] = []
    cursor = start
    for match in _BOUNDARY.finditer(text, start, end):
        if match.group(0)[0] == "." and _ends_with_abbreviation(text, cursor, match.start()):
            continue
        spans.append(trim(text, cursor, match.end()))
        cursor = match.end()
    spans.append(trim(text, cursor, end))
    out: list[Span] = []
    for s in spans:
        if s[1] <= s[0]:
            continue
        out.extend(_hard_split(text, s, hard_limit) if s[1] - s[0] > hard_limit else [s])
    return out


def _hard_split(text: str, span: Span, limit: int) -> list[Span]:
    out: list[Span] = []
    start, end = span
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        cut = cut if cut > start else start + limit
        out.append(trim(text, start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        out.append((start, end))
    return out


def with_apostrophes(text: str) -> str:
    """``text`` with the "-n't" typed without its apostrophe given one.

    >>> with_apostrophes("Wasnt it late? Didnt it sail? It went.")
    "Wasn't it late? Didn't it sail? It went."
    """
    return re.sub(rf"\b({'|'.join(_CONTRACTED)})nt\b", r"\1n't", text, flags=re.IGNORECASE)


def last_sentence(text: str) -> str:
    """The last sentence of ``text``: what a question of several sentences asks.

    >>> last_sentence("The ferry did not sail in May. When did it sail?")
    'When did it sail?'
    """
    spans = sentence_spans(text)
    return text[spans[-1][0]:spans[-1][1]] if spans else text


def answer_sentences(text: str) -> list[Span]:
    """Spans of the sentences of an answer, line by line (a list item is a sentence of its own).

    >>> t = "Ruiz spoke [1]. Attendance was high.\\n- Gulls: 47.3% [2]"
    >>> [t[a:b] for a, b in answer_sentences(t)]
    ['Ruiz spoke [1].', 'Attendance was high.', '- Gulls: 47.3% [2]']
    """
    spans: list[Span] = []
    line_start = 0
    for line in text.split("\n"):
        spans += [(line_start + a, line_start + b) for a, b in sentence_spans(line)]
        line_start += len(line) + 1
    return spans


# the verbs whose "-n't" is often typed without its apostrophe ("didnt"; not "wont", a word of its own)
_CONTRACTED = ("do", "does", "did", "is", "are", "was", "were", "has", "have", "had", "could", "would", "should", "ca")
# A denial: "not", "no", "never", "-n't" ("didnt" too); not "no-confidence" or "No. 1". The stop
# words hold "not", "no" and "nor", so the keyword search and the citation check never see one.
DENIAL = re.compile(r"\b(?:not|no|never|none|nor|neither|cannot|nobody|nothing|nowhere)\b(?!-|\.\s*\d)|\bno-one\b"
                    rf"|n['’]t\b|\b(?:{'|'.join(_CONTRACTED)})nt\b", re.IGNORECASE)
# words that say "not" in their meaning: "refused", "failed", "denied", "banned", "non-", "-less"
_NEGATIVE = re.compile(r"\b(?:refus|fail|lack|unable|absen|reject|den(?:y|ie|ial)|declin|cancel|prevent|prohibit|"
                       r"forb[ia]d|bann(?:ed|ing)\b|exclu(?:de|ding|sion))|\bnon-"
                       r"|\b(?!(?:regard|neverthe|nonethe)less)\w{3,}less\b", re.IGNORECASE)


def negates(text: str, strictly: bool = False) -> bool:
    """Does ``text`` say that something is not so: a :data:`DENIAL` or "without", or (unless
    ``strictly``) a word that means it, such as "refused", "failed", "banned" or "pistonless"?

    >>> negates("Which ferries never sailed?"), negates("The ferry didn’t sail."), negates("It sailed.")
    (True, True, False)
    >>> negates("The crew refused to sail."), negates("The crew refused to sail.", strictly=True)
    (True, False)
    >>> negates("Who backed the no-confidence vote?"), negates("Regardless, it sailed."), negates("No. 4 sailed.")
    (False, False, False)
    """
    if DENIAL.search(text) or re.search(r"\bwithout\b", text, re.IGNORECASE):
        return True
    return not strictly and bool(_NEGATIVE.search(text))


# "and", "so", "but" opening a question: "And how many came?" asks how many
OPENERS = "and|but|so|also|then|ok|okay"
OPENER = rf"^\W*(?:(?:{OPENERS})\W+)?"


# --- numbers -----------------------------------------------------------------------------------

SMALL_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")  # 20, 30, ... 90
LARGE_NUMBERS = ("hundred", "thousand", "million", "billion", "trillion")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
# numbers in words, a regular expression: "one" to "nineteen", the tens, and "hundreds" to "trillions"
NUMBER_WORDS = "|".join([*SMALL_NUMBERS, *TENS, *(f"{w}s?" for w in LARGE_NUMBERS)])

_UNITS = SMALL_NUMBERS[1:10]
_TEENS = SMALL_NUMBERS[13:]
# not the first word of "twenty thousand" (20,000) or of an ordinal ("twenty-first")
_SPELLED = re.compile(rf"\b(?:({'|'.join(_TEENS)})|({'|'.join(TENS)})(?:[- ]({'|'.join(_UNITS)}))?)\b"
                      rf"(?![- ](?:{'|'.join(LARGE_NUMBERS + ORDINALS + _UNITS)})\b)")


def spelled_numbers(folded: str) -> set[str]:
    """Numbers from 13 to 99 written in words, as digits ("thirty-seven" is 37).

    Smaller ones ("one of them", "the two leaders") are too often not counts to be read as numbers.

    >>> sorted(spelled_numbers("thirty-seven people, fifteen towns and twenty days"))
    ['15', '20', '37']
    >>> spelled_numbers("twenty thousand marchers in the twenty-first century, thirty-one million loaves")
    set()
    """
    out = set()
    for teen, tens, unit in _SPELLED.findall(folded):
        if teen:
            out.add(str(SMALL_NUMBERS.index(teen)))
        else:
            out.add(str(20 + 10 * TENS.index(tens) + (_UNITS.index(unit) + 1 if unit else 0)))
    return out


# A decade: "the 1990s" (the century given; 1600s to 2000s), or "the ’90s", "the 90s", "the
# mid-90s", "mid-’90s", "the nineties" (the century left out: then "the" or an apostrophe must come
# first, so that "in their 20s", "in his mid-30s" or "after 30s" stays a number). Changing these changes
# the keyword index's tokens: bump TOKENS_VERSION.
_DECADE = re.compile(r"\b(1[6-9]|20)([0-9]0)['’]?s\b")
_BARE_DECADE = re.compile(
    r"(?:\bthe\s+(?:(?:early|mid|late)[- ])?['’‘]?|['’‘]|\b(?:early|mid|late)[- ]['’‘])"
    r"(?:([1-9]0)['’]?s\b|(twenties|thirties|forties|fifties|sixties|seventies|eighties|nineties)\b)")


def decades(folded: str) -> tuple[set[str], str]:
    """The decades a (folded) text names, and the text without them.

    A decade is its own kind of number, "1990s", never the year 1990. One written without its
    century is taken to be of the last hundred years as news speaks of them: "the 90s" is the
    1990s, "the 20s" the 2020s (the 00s, 10s and 20s are this century's, the others the last
    one's). "The 1920s" stays the 1920s.

    >>> sorted(decades("in the 1990s, the ’80s, the mid-60s and the twenties; 1990 and 2020")[0])
    ['1960s', '1980s', '1990s', '2020s']
    >>> decades("people in their 90s, a man in his mid-30s, after 30s, 1000s of them")[0]
    set()
    """
    found = {f"{century}{decade}s" for century, decade in _DECADE.findall(folded)}
    text = _DECADE.sub(" ", folded)
    for digits, word in _BARE_DECADE.findall(text):
        tens = int(digits[0]) if digits else TENS.index(word.replace("ies", "y")) + 2
        found.add(f"{20 if tens <= 2 else 19}{tens}0s")
    return found, _BARE_DECADE.sub(" ", text)
