"""Acronyms spelled out for the model.

An article defines an acronym once ("the Norvale Ferry Line Authority
(FLA)") and then uses it alone ("the FLA's chair Ana Ruiz"). A passage cut
from the later part names only "FLA", and a small model asked "Who chairs the
Ferry Line Authority?" does not connect the two. When one of the passages
given to the model defines an acronym that another uses without its
definition, that passage is followed by the definition: "(FLA: Ferry Line
Authority)".
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_DEFINED = re.compile(r"((?:[\w’'.-]+\s+){1,8}?)\(([A-Z][A-Za-z]{1,7})\)")
_CONNECTORS = frozenset("of for and the de del al la y towards to on in".split())


def _covered(acronym: str, words: Sequence[str]) -> int:
    """How many of the acronym's letters are initials of capitalised words."""
    initials = {w[0] for w in words if w[:1].isupper()}
    return sum(c in initials for c in set(acronym.upper()))


def definitions(text: str) -> dict[str, str]:
    """Acronyms defined in ``text`` as "Long Name (ABC)", and their long names.

    >>> definitions("fares set by the Organisation of Ferry Captains (OFC) and Ana Ruiz’s Movement "
    ...             "Towards Safer Streets (MTSS), said the FLA.")
    {'OFC': 'Organisation of Ferry Captains', 'MTSS': 'Movement Towards Safer Streets'}
    >>> definitions("Norvale’s largest bakers guild (NBG)")
    {}
    """
    found: dict[str, str] = {}
    for match in _DEFINED.finditer(text):
        acronym = match.group(2)
        if sum(c.isupper() for c in acronym) < 2:
            continue
        words = match.group(1).split()
        name: list[str] = []
        for word in reversed(words):
            if word.endswith(("’s", "'s")) or not (word[:1].isupper() or word.lower() in _CONNECTORS):
                break
            name.insert(0, word)
        while name and name[0].lower() in _CONNECTORS:
            name.pop(0)
        best = _covered(acronym, name)
        if best >= 2:
            # The shortest ending of the name that covers as many of the letters: "Ferry Line
            # Authority", not "Harbour Office of the Ferry Line Authority".
            start = max(i for i in range(len(name)) if _covered(acronym, name[i:]) == best)
            found.setdefault(acronym, " ".join(name[start:]))
    return found


def _known(texts: Sequence[str]) -> dict[str, list[str]]:
    """Every acronym the texts define, with its long names (the first one found first)."""
    known: dict[str, list[str]] = {}
    for text in texts:
        for acronym, name in definitions(text).items():
            names = known.setdefault(acronym, [])
            if name not in names:
                names.append(name)
    return known


def _uses(acronym: str, text: str) -> bool:
    return re.search(rf"\b{re.escape(acronym)}\b", text) is not None


def glosses(texts: Sequence[str]) -> list[str]:
    """For each text, the definitions it lacks of acronyms it uses, taken from the other texts.

    >>> glosses(["The Norvale Ferry Line Authority (FLA) met.", "The FLA’s chair spoke."])
    ['', '(FLA: Ferry Line Authority)']
    """
    known = {acronym: names[0] for acronym, names in _known(texts).items()}
    out = []
    for text in texts:
        own = definitions(text)
        used = [a for a in known if a not in own and _uses(a, text)]
        out.append("(" + "; ".join(f"{a}: {known[a]}" for a in used) + ")" if used else "")
    return out


def _spelling(text: str) -> str:
    """Lower case, with the spellings "-isation" and "-ization" alike."""
    return re.sub(r"is(ations?|ed|ing|e)\b", r"iz\1", text.lower())


def strip_expansions(answer: str, passages: Sequence[str]) -> str:
    """An answer without the long names it gives for acronyms that the passages use but never spell out so.

    A small model spells out acronyms from its own knowledge: asked which agencies inspected the
    ferry, it answers "the Maritime Safety Agency (MSA)" from "the MSA inspected it". The
    long name is outside knowledge, which the citation check rightly refuses; the acronym alone is
    the passage's own answer. A long name that a passage (or, as a gloss, another passage) gives
    stays.

    >>> strip_expansions("The Maritime Safety Agency (MSA) and the HPA [1].", ["the HPA and the MSA inspected it"])
    'The MSA and the HPA [1].'
    >>> strip_expansions("The Ferry Line Authority (FLA) met [1].",
    ...                  ["the FLA’s chair", "the Ferry Line Authority (FLA) on Friday"])
    'The Ferry Line Authority (FLA) met [1].'
    """
    text = " ".join(passages)
    said = _spelling(" ".join(text.split()))
    for acronym, name in definitions(answer).items():
        if _uses(acronym, text) and _spelling(name) not in said:
            spelled = r"\s+".join(map(re.escape, name.split()))  # however the answer spaces or breaks it
            answer = re.sub(rf"{spelled}\s*\({re.escape(acronym)}\)", acronym, answer)
    return answer
