"""Question in, cited answer out.

    question (+ conversation) ──> standalone question: a follow-up is rewritten by the model
        ▼
    search text ──> passages (Chroma dense + BM25, fused; optionally reranked), put in order
        │ by their best sentence as well (qa.focus)
        │ best passage too far from the question, or a number of the question
        │ in none of the passages: refuse without asking the model
        ▼
    prompt (constant system prompt first, the 2 best passages, question) ──> LLM, streamed
        │ markers normalised while streaming: an invalid [n] is never shown; with
        │ QA_PROMPT=json the reply is JSON held to a schema, its answer streamed out of it
        ▼
    citation check, then the guard (qa.guard): a sentence that follows or repeats an
        │ instruction found in a passage, or repeats the system prompt, is dropped;
        │ an answer of the wrong kind (a percentage for "how many", qa.expect), or one whose
        │ quotes share no word with the question, or whose passages never name a body the
        │ question names by an acronym the passages define ("the OAS"), or that answers a
        │ yes-or-no question by restating it or with a yes its passages do not state (qa.polar),
        │ or whose quotes are not dated by a year or decade the question names (qa.times),
        │ is refused
        ▼
    the model, shown only the quotes, is asked whether they answer the question so (qa.verify);
        │ NO is a refusal
        ▼
    refused? the model reads all the passages (6), and that reply is checked the same way;
        │ refused, after a share given for "how many", it reads the passages that state a
        │ count of what is asked (qa.expect.counts_of) and name whom the question names
        ▼
    Answer(text, answered, citations)

The embedder, store and LLM are passed in, so tests can swap any of them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .answer import Answer
from .citations import (
    CheckPolicy,
    MarkerStreamFilter,
    best_quote,
    check_citations,
    cited_claims,
    key_terms,
    make_citations,
    off_subject,
    proper_names,
    renumber,
)
from .config import Settings
from .embedder import Embedder
from .errors import EmptyQuestionError, QAError
from .expect import SHARE_FOR_COUNT, counts_of, mismatch
from .focus import SentenceRanker
from .glossary import strip_expansions, unnamed
from .guard import screen_answer
from .llm import LLM, Message
from .polar import is_polar, unsupported
from .prompt import NOT_FOUND, build_messages, protected_shingles, strip_markers
from .reply import SCHEMA, AnswerStream, parse_reply
from .rerank import Reranker
from .retrieval import KeywordIndex, Retriever, search_text
from .rewrite import standalone_question
from .store import ChromaStore, Passage
from .times import times, unnamed_times
from .verify import confirmed

REFUSAL = "I could not find the answer to this in the articles."
MAX_QUESTION_CHARS = 2000
_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_REFUSAL_PHRASES = re.compile(
    r"^\W*(not found|i (?:could|can)not find|i could not find|the passages do not|there is no information|"
    r"no information|the articles do not|i don't know|i do not know)", re.IGNORECASE)

_PROTECTED = protected_shingles()


def _refused(reply: str) -> bool:
    """Is the model's reply a refusal in words ("NOT FOUND", "I could not find…"), or empty?"""
    return not reply.strip() or _REFUSAL_PHRASES.match(reply.strip()) is not None

History = Sequence[Message] | Sequence[tuple[str, str]] | Sequence[list[str]] | None


def _titled(passage: Passage) -> str:
    return f"{passage.title}. {passage.text}"


def normalise_history(history: Any) -> list[Message]:
    """Accept ``[{"role", "content"}, ...]`` or ``[(user, assistant), ...]``.

    >>> normalise_history([("Who won?", "Arce [1].")])
    [{'role': 'user', 'content': 'Who won?'}, {'role': 'assistant', 'content': 'Arce [1].'}]
    """
    out: list[Message] = []
    for item in history or []:
        if isinstance(item, dict):
            role, content = item.get("role"), item.get("content")
            if role in ("user", "assistant") and isinstance(content, str) and content.strip():
                out.append({"role": role, "content": content})
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            user, assistant = item
            if user:
                out.append({"role": "user", "content": str(user)})
            if assistant:
                out.append({"role": "assistant", "content": str(assistant)})
    return out


def clean_question(question: str) -> str:
    """Strip control characters and check the length; raise on an empty question.

    >>> clean_question("What was the\\x00 turnout\\x1b[1;31m in 2020\\x1b[0m?\\n")
    'What was the turnout in 2020?'
    """
    if not isinstance(question, str):
        raise QAError(f"The question must be text, not {type(question).__name__}.")
    text = _TERMINAL_ESCAPE.sub("", question)  # colour codes pasted from a terminal: "\x1b[31m"
    text = "".join(c if c.isprintable() or c in "\n\t" else " " for c in text)
    text = " ".join(text.split())
    if not text:
        raise EmptyQuestionError("The question is empty. Type a question about the articles.")
    if len(text) > MAX_QUESTION_CHARS:
        raise QAError(f"The question is {len(text):,} characters long; questions are limited to "
                      f"{MAX_QUESTION_CHARS:,}. Ask something shorter.")
    return text


@dataclass
class Pipeline:
    """Retrieval, generation and citation checking, over backends passed in."""

    store: ChromaStore
    embedder: Embedder
    llm: LLM
    settings: Settings = field(default_factory=Settings)
    policy: CheckPolicy = field(default_factory=CheckPolicy)
    retriever: Retriever | None = None
    reranker: Reranker | None = None
    checker: LLM | None = None  # asks whether the quotes answer the question (qa.verify); else ``llm``
    sentences: SentenceRanker | None = None  # orders the passages by their best sentence (qa.focus)

    def __post_init__(self) -> None:
        if self.retriever is None:
            self.retriever = Retriever(self.store, self.embedder, KeywordIndex(self.settings.keyword_dir),
                                       reranker=self.reranker)
        if self.sentences is None:
            self.sentences = SentenceRanker(self.embedder)

    def retrieve(self, question: str, history: Sequence[Message] = (),
                 articles: Sequence[str] | None = None, k: int | None = None) -> list[Passage]:
        """The passages a question is answered from."""
        return self._retrieve(question, history, articles, k)[0]

    def _retrieve(self, question: str, history: Sequence[Message], articles: Sequence[str] | None,
                  k: int | None = None) -> tuple[list[Passage], float]:
        assert self.retriever is not None
        found = self.retriever.retrieve(question, history, k or self.settings.top_k,
                                        mode=self.settings.retrieval, articles=articles)
        passages = found.passages
        if self.settings.sentence_order and self.sentences is not None and self.retriever.reranker is None:
            # (a cross-encoder, which reads question and passage together, orders them better)
            passages = self.sentences.order(found.vector, passages)
        return passages, found.best_similarity

    def _evidence_missing(self, question: str, passages: Sequence[Passage], best: float) -> bool:
        """Retrieval evidence that the articles cannot answer: too far, or a number nowhere in them."""
        if not passages or best < self.settings.min_score:
            return True
        if not self.settings.check:
            return False
        asked = key_terms(question)[1]
        present: set[str] = set()
        for p in passages:
            present |= key_terms(p.text)[1]
        return bool(asked - present)

    def ask_stream(self, question: str, history: History = None,
                   articles: Sequence[str] | None = None) -> Iterator[str | Answer]:
        """Yield the answer's text piece by piece, then the final :class:`Answer`.

        The final text can differ from the streamed one: the citation check may
        move or drop markers, and an unsupported answer becomes a refusal. A refusal
        from the best passages leads to a reading of all of them, and a share given
        where "how many" was asked to one of the passages that state the count
        (:meth:`_next_reading`). A later reading's reply is streamed only if nothing
        of an earlier one was shown.
        """
        started = time.perf_counter()
        question = clean_question(question)
        turns = normalise_history(history)
        timings: dict[str, float] = {}
        standalone = None
        if self.settings.rewrite and turns:
            standalone = standalone_question(self.llm, question, turns, style=self.settings.prompt)
            timings["rewrite_s"] = time.perf_counter() - started
        asked = standalone or question
        passages, best = self._retrieve(asked, [] if standalone else turns, articles)
        timings["retrieval_s"] = time.perf_counter() - started
        query = standalone or search_text(question, turns)

        if self._evidence_missing(asked, passages, best):
            timings["first_token_s"] = timings["total_s"] = time.perf_counter() - started
            yield REFUSAL
            yield Answer(REFUSAL, False, [], question, query, passages, timings)
            return

        narrow = self.settings.narrow_k
        reading = passages[:narrow] if self.settings.check and 0 < narrow < len(passages) else passages
        readings: list[list[Passage]] = []
        held, tokens, share_for_count = True, 0, False
        while True:
            # A reading after the first is streamed only if nothing was shown yet, and only if its
            # markers number the passages as the final answer does (the list of all passages found).
            messages = build_messages(asked, reading, turns, style=self.settings.prompt)
            reply, held_now, more = yield from self._generate(messages, len(reading), started, timings,
                                                              shown=held and reading == passages[:len(reading)])
            tokens += more
            held = held and held_now
            readings.append(reading)
            timings["readings"] = float(len(readings))
            answer = self.finish(reply, asked, query, reading, timings, retrieved=passages)
            if answer.answered or not self.settings.check:
                break
            share_for_count = share_for_count or (
                not _refused(reply) and mismatch(asked, strip_markers(reply)) == SHARE_FOR_COUNT)
            following = self._next_reading(asked, passages, readings, share_for_count)
            if following is None:
                break
            if len(following) < len(passages):  # not all of them: the passages that state a count
                timings["count_reading"] = 1.0
            reading = following
        if answer.answered:
            # the markers point into the list of every passage found, of which this reading may be a part
            position = {p.id: n for n, p in enumerate(passages, 1)}
            numbers = {n: position[p.id] for n, p in enumerate(reading, 1)}
            answer.text = renumber(answer.text, numbers)
            answer.citations = [replace(c, number=numbers[c.number]) for c in answer.citations]
        answer.passages = list(passages)
        answer.question = question
        timings.setdefault("first_token_s", time.perf_counter() - started)
        timings["total_s"] = time.perf_counter() - started
        timings["tokens"] = float(tokens)
        answer.timings = timings
        if held:
            yield answer.text
        yield answer

    def _next_reading(self, question: str, passages: list[Passage], readings: Sequence[list[Passage]],
                      share_for_count: bool) -> list[Passage] | None:
        """What the model reads after a refusal, or ``None`` for none.

        After the best passages (``narrow_k``), all of them. Then, once, when a reply gave a share
        where "how many" was asked: the passages that state a count of what is asked (at most
        ``narrow_k``, :func:`qa.expect.counts_of`) and hold every proper name of the question; a
        count of votes alone could be anyone's. With ``narrow_k = 0`` there is one reading only.
        """
        if len(readings) == 1 and len(readings[0]) < len(passages):
            return passages
        if share_for_count and len(readings[0]) < len(passages):  # the best passages were read first
            names = proper_names(question)
            counting = [p for p in passages if counts_of(question, p.text)
                        and names <= key_terms(f"{p.title} {p.text}")[0]][:self.settings.narrow_k]
            if counting and counting not in readings:
                return counting
        return None

    def _generate(self, messages: list[Message], count: int, started: float, timings: dict[str, float],
                  shown: bool) -> Generator[str, None, tuple[str, bool, int]]:
        """Stream one reply; yield its text for the reader (if ``shown``), return (text, held, tokens).

        ``held`` is true when nothing was yielded: the reply is (or began like) the NOT FOUND reply,
        or ``shown`` is false. The text returned is the answer out of a JSON reply, or the prose reply.
        """
        structured = self.settings.prompt == "json"
        markers = MarkerStreamFilter(count)
        raw: list[str] = []
        visible: list[str] = []  # the text meant for the reader: the reply, or the answer out of the JSON
        answer_stream = AnswerStream()
        held = True  # hold output while it could still be the NOT FOUND reply
        tokens = 0
        if structured:
            pieces = self.llm.stream_chat(messages, max_tokens=self.settings.max_tokens,
                                          temperature=self.settings.temperature, schema=SCHEMA)
        else:
            pieces = self.llm.stream_chat(messages, max_tokens=self.settings.max_tokens,
                                          temperature=self.settings.temperature, stop=["\nQuestion:"])
        in_json: bool | None = None if structured else False  # known once the reply's first character is
        for piece in pieces:
            tokens += 1
            raw.append(piece)
            if in_json is None and piece.strip():
                in_json = piece.lstrip().startswith("{")  # a server that ignores the schema replies in prose
            if in_json is not False:
                piece = answer_stream.feed(piece)
                if not piece:
                    continue
            visible.append(piece)
            if not shown:
                continue
            if held:
                so_far = "".join(visible).strip()
                if NOT_FOUND.lower().startswith(so_far.lower()) or so_far.upper().startswith(NOT_FOUND):
                    continue
                held = False
                piece = "".join(visible)
            text = markers.feed(piece)
            if text:
                timings.setdefault("first_token_s", time.perf_counter() - started)
                yield text
        tail = markers.flush()
        if tail and not held:
            yield tail
        reply = "".join(raw)
        return (parse_reply(reply).text() if structured else reply), held, tokens

    def finish(self, raw: str, question: str, query: str, passages: Sequence[Passage],
               timings: dict[str, float] | None = None, retrieved: Sequence[Passage] = ()) -> Answer:
        """Turn the model's full reply into a checked :class:`Answer`; ``timings`` gets ``verify_s``.

        ``passages`` are those the model read; ``retrieved``, all those found (when it read only the
        best), also count for the acronyms they define.
        """
        refusal = Answer(REFUSAL, False, [], question, query, list(passages))
        if _refused(raw):
            return refusal
        if self.settings.check:
            raw = strip_expansions(raw, [p.text for p in passages])  # "the DEA", not the model's long name for it
            text, claims = check_citations(raw, passages, self.policy, question)
            text, claims = screen_answer(text, claims, passages, _PROTECTED)
        else:
            text, claims = cited_claims(raw, len(passages))
        body_words, body_numbers = key_terms(strip_markers(text))
        if claims and not body_words and not body_numbers:
            # A bare "[2]": answer with the cited passage's sentence that best matches the question.
            number = min(claims)
            quote, _, _ = best_quote(passages[number - 1], [question], max_sentences=1)
            text, claims = f"{' '.join(quote.split())} [{number}]", {number: [quote]}
        if self.settings.check and (not claims or mismatch(question, strip_markers(text))):
            return refusal
        citations = make_citations(claims, passages)
        # the question with its search text, which holds the previous question of a follow-up
        if self.settings.check and off_subject(f"{question} {query}", citations, passages):
            return refusal
        if self.settings.check and is_polar(question) and unsupported(
                question, text, [passages[c.number - 1].text for c in citations]):
            return refusal  # a yes its passages do not state, or a yes-or-no question answered by restating it
        if self.settings.check and unnamed(question, [_titled(passages[c.number - 1]) for c in citations],
                                           [p.text for p in [*passages, *retrieved]]):
            return refusal  # asked about the OAS, answered from a passage that never names it
        if self.settings.check and times(question):
            cited = [(c.quote, passages[c.number - 1]) for c in citations]
            articles = {a: self.store.get(sorted(self.store.passage_ids(a))) for a in {p.article_id for _, p in cited}}
            if unnamed_times(question, cited, articles):
                return refusal  # asked about 2019, answered from a passage about 2020
        if self.settings.check and self.settings.verify:
            started = time.perf_counter()
            # a follow-up that could not be rewritten is searched with the previous question before it
            earlier = query[: -len(question)] if query != question and query.endswith(question) else ""
            agreed = confirmed(self.checker or self.llm, question, text, citations, earlier)
            if timings is not None:
                timings["verify_s"] = timings.get("verify_s", 0.0) + time.perf_counter() - started
            if not agreed:
                return refusal
        return Answer(text, True, citations, question, query, list(passages))

    def ask(self, question: str, history: History = None, articles: Sequence[str] | None = None) -> Answer:
        """Answer ``question``; see :meth:`ask_stream`."""
        for item in self.ask_stream(question, history, articles):
            if isinstance(item, Answer):
                return item
        raise AssertionError("ask_stream ended without an Answer")  # pragma: no cover
