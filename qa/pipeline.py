"""Question in, cited answer out.

    question (+ period) ──> no article dated in the period asked (qa.period)? refuse ("retrieval")
        ▼
    question (+ conversation) ──> standalone question: a follow-up is rewritten by the model
        ▼
    search text ──> passages (Chroma dense + BM25, fused, within the articles and period asked;
        │ optionally reranked), put in order by their best sentence as well (qa.focus); yielded at
        │ once as Retrieved, with those sentences
        │ best passage too far from the question ("retrieval"), or a number of the question
        │ in none of the passages ("numbers"): refuse without asking the model
        ▼
    what the model reads: the 3 best passages cut to their best sentences (qa.excerpt)
        │ they hold the opposite of a word of the question and never the word ("opposite",
        │ qa.opposites): refuse without asking the model
        ▼
    prompt (constant system prompt first, what the model reads, question) ──> LLM, streamed
        │ markers normalised while streaming: an invalid [n] is never shown; with
        │ QA_PROMPT=json the reply is JSON held to a schema, its answer streamed out of it
        ▼
    "citations": each sentence must be supported by a passage it cites (markers moved or
        │ dropped, unsupported sentences dropped); "guard": a sentence that follows or repeats an
        │ instruction found in a passage, or repeats the system prompt, is dropped
        ▼
    the checks of qa.checks, in order, the first that fails refusing: "kind", "subject",
        │ "polar", "time", "negation", then "judge" (qa.judge): the model's probability that
        │ the quoted sentences state this answer to the question, against a threshold
        ▼
    refused, but not by the judge, and Settings.read_on? the model reads on: the same passages (still
        │ cached), then the best sentences of the other 3, and that reply is checked the same way (an
        │ answer the judge found its quotes do not state is not asked again, nor a NOT FOUND the model
        │ was surer of than Settings.sure_refusal); by default a refusal ends there
        ▼
    Answer(text, answered, citations, refused_by, reason, checks, undated), its timings stage by stage

The embedder, store and LLM are passed in, so tests can swap any of them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .answer import Answer, Retrieved, Verdict
from .checks import LEXICAL_CHECKS, REFUSERS, Check, Draft, below, failed, first_failure, run_checks
from .citations import (
    CheckPolicy,
    MarkerStreamFilter,
    best_quote,
    check_citations,
    cited_claims,
    key_terms,
    make_citations,
    renumber,
)
from .config import Settings
from .embedder import Embedder
from .errors import EmptyQuestionError, QAError
from .excerpt import (
    ArticleSpan,
    choose,
    estimate_tokens,
    restore_citation,
    sentence_scores,
    sentences_held,
    spans_of,
    spans_read,
)
from .focus import SentenceRanker, fuse_orders
from .glossary import strip_expansions
from .guard import screen_answer
from .judge import SupportJudge
from .llm import LLM, Message
from .opposites import opposed
from .period import DateLike, Period
from .prompt import NOT_FOUND, build_messages, protected_shingles, strip_markers
from .reply import SCHEMA, AnswerStream, parse_reply
from .rerank import Reranker
from .retrieval import KeywordIndex, Retriever, search_text
from .rewrite import standalone_question
from .store import ChromaStore, Passage

REFUSAL = "I could not find the answer to this in the articles."
MAX_QUESTION_CHARS = 2000
_TERMINAL_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
log = logging.getLogger(__name__)

_REFUSAL_PHRASES = re.compile(
    r"^\W*(not found|i (?:could|can)not find|i could not find|the passages do not|there is no information|"
    r"no information|the articles do not|i don't know|i do not know)", re.IGNORECASE)

_PROTECTED = protected_shingles()


def _refused(reply: str) -> bool:
    """Is the model's reply a refusal in words ("NOT FOUND", "I could not find…"), or empty?"""
    return not reply.strip() or _REFUSAL_PHRASES.match(reply.strip()) is not None

History = Sequence[Message] | Sequence[tuple[str, str]] | Sequence[list[str]] | None


def read_first(found: Retrieved, reading: Sequence[Passage]) -> Retrieved:
    """``found`` with the passages of ``reading`` first, then the others, each group in its order.

    The answer's markers number this list, and ``Retrieved.read`` is its head, so the passages the
    model reads are [1] to [n] even when a passage between them had no sentence that fit the budget.

    >>> p = [Passage(i, "Rain fell.", "x", "T", "x.txt", 0, 10) for i in "abc"]
    >>> [q.id for q in read_first(Retrieved(p, ["Rain fell."] * 3, 3), [p[0], p[2]]).passages]
    ['a', 'c', 'b']
    """
    read = {p.id for p in reading}
    order = sorted(range(len(found.passages)), key=lambda i: found.passages[i].id not in read)
    return replace(found, passages=[found.passages[i] for i in order],
                   sentences=[found.sentences[i] for i in order])


def normalise_history(history: Any) -> list[Message]:
    """Accept ``[{"role", "content"}, ...]`` or ``[(user, assistant), ...]``.

    >>> normalise_history([("Who rowed?", "Ana Ruiz [1].")])
    [{'role': 'user', 'content': 'Who rowed?'}, {'role': 'assistant', 'content': 'Ana Ruiz [1].'}]
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

    >>> clean_question("When did the\\x00 ferry\\x1b[1;31m first sail\\x1b[0m?\\n")
    'When did the ferry first sail?'
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
    checker: LLM | None = None  # the support judge's model (qa.judge), in a context of its own; else ``llm``
    sentences: SentenceRanker | None = None  # orders the passages by their best sentence (qa.focus)
    _judge: SupportJudge | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.retriever is None:
            self.retriever = Retriever(self.store, self.embedder, KeywordIndex(self.settings.keyword_dir),
                                       reranker=self.reranker)
        if self.sentences is None:
            self.sentences = SentenceRanker(self.embedder)

    def retrieve(self, question: str, history: Sequence[Message] = (),
                 articles: Sequence[str] | None = None, k: int | None = None, *,
                 since: DateLike = None, until: DateLike = None) -> list[Passage]:
        """The passages a question is answered from."""
        return self._retrieve(question, history, articles, k, Period.of(since, until))[0].passages

    def found_and_read(self, question: str, history: Sequence[Message] = ()
                       ) -> tuple[list[Passage], list[Passage], list[Passage]]:
        """The passages a question finds, what the model reads of them first (:meth:`reading`), and
        what it reads after a refusal of that (:meth:`rereading`; the first reading again when there
        is no second)."""
        found, _, _, _, vector = self._retrieve(question, history, None)
        first = self.reading(question, vector, found.passages)
        if self.settings.read_tokens > 0 or not self.settings.check or not self.settings.read_on:
            return found.passages, first, first
        return found.passages, first, self.rereading(question, vector, found.passages, first)

    def _retrieve(self, question: str, history: Sequence[Message], articles: Sequence[str] | None,
                  k: int | None = None, period: Period | None = None
                  ) -> tuple[Retrieved, float, float, int, list[float]]:
        """The passages found (best first, as the model reads them) with their best sentences, the best
        dense similarity, the seconds spent embedding (the query, and sentences not met before), how
        many undated articles ``period`` left out, and the query's vector."""
        assert self.retriever is not None and self.sentences is not None
        found = self.retriever.retrieve(question, history, k or self.settings.top_k,
                                        mode=self.settings.retrieval, articles=articles, period=period)
        started = time.perf_counter()
        passages, scored = found.passages, self.sentences.best(found.vector, found.passages)
        if self.settings.sentence_order and self.retriever.reranker is None and len(passages) > 1:
            # (a cross-encoder, which reads question and passage together, orders them better)
            order = fuse_orders([score for score, _ in scored])
            passages, scored = [passages[i] for i in order], [scored[i] for i in order]
        embed_s = found.embed_s + time.perf_counter() - started
        retrieved = Retrieved(passages, [sentence for _, sentence in scored], len(passages), found.query)
        return retrieved, found.best_similarity, embed_s, found.undated, found.vector

    def reading(self, question: str, question_vector: Sequence[float], passages: Sequence[Passage]
                ) -> list[Passage]:
        """What the model reads first of the passages found: their best sentences under the budget
        ``read_tokens`` (:mod:`qa.excerpt`); else the best ``narrow_k`` passages, cut to their best
        sentences under ``first_tokens``; else all of them, whole."""
        chosen, budget = self._first_choice(passages)
        return self._excerpts(question, question_vector, chosen, budget)

    def _first_choice(self, passages: Sequence[Passage]) -> tuple[list[Passage], int]:
        """The passages the first reading is cut from, and its budget (0: whole)."""
        if self.settings.read_tokens > 0:
            return list(passages), self.settings.read_tokens
        narrow = self.settings.narrow_k
        if not (self.settings.check and 0 < narrow < len(passages)):
            return list(passages), 0
        return list(passages[:narrow]), self.settings.first_tokens

    def rereading(self, question: str, question_vector: Sequence[float], passages: Sequence[Passage],
                  first: Sequence[Passage]) -> list[Passage]:
        """What the model reads after it, or a check, refused its ``first`` reading: that reading again
        (llama.cpp still holds its tokens, so only what follows is evaluated), then the other passages
        found, cut to their best sentences under ``more_tokens``, leaving out any sentence the first reading
        held (consecutive passages share one); with no budget, the others whole."""
        whole = {p.id: p for p in passages}
        held = [span for p in first if p.id in whole for span in spans_read(p, whole[p.id])]
        read = {p.id for p in first}
        rest = [p for p in passages if p.id not in read]
        return [*first, *self._excerpts(question, question_vector, rest, self.settings.more_tokens, held)]

    def _excerpts(self, question: str, question_vector: Sequence[float], passages: Sequence[Passage],
                  budget: int, read: Sequence[ArticleSpan] = ()) -> list[Passage]:
        """``passages`` cut to their best whole sentences under ``budget`` estimated tokens, none of them
        inside the spans ``read`` already (a budget of 0: the passages whole)."""
        if budget <= 0 or self.sentences is None or not passages:
            return list(passages)
        scores = sentence_scores(question, passages, self.sentences.scores(question_vector, passages))
        return [e.as_passage() for e in choose(passages, scores, budget, read)]

    def _read_sentences(self, found: Retrieved, reading: Sequence[Passage], vector: Sequence[float]) -> Retrieved:
        """``found`` with the passages read first, each shown with the sentence closest to the question
        of those the model reads of it."""
        chosen = self._first_choice(found.passages)[0]  # what the reading was cut from
        found = read_first(found, reading)
        if self.sentences is None:
            return found
        shown = list(found.sentences)
        rows: dict[str, list[float]] = {}
        for i, (read, passage) in enumerate(zip(reading, found.passages, strict=False)):
            if read.text == passage.text or shown[i] in read.text:
                continue
            if not rows:  # scored as the reading was, so the sentences' vectors are cached
                rows = dict(zip((p.id for p in chosen), self.sentences.scores(vector, chosen), strict=True))
            row = rows[passage.id]
            inside = sentences_held(read, passage)
            if inside:
                a, b = spans_of(passage)[max(inside, key=lambda j: (row[j], -j))]
                shown[i] = passage.text[a:b]
        return replace(found, sentences=shown)

    def _outside(self, question: str, articles: Sequence[str] | None, period: Period | None,
                 started: float) -> Answer | None:
        """The refusal when no article searched is dated in ``period`` (the model is not asked); else ``None``."""
        if period is None or self.store.ids_in(articles, period):
            return None
        chosen = "of those chosen " if articles else ""
        verdict = failed("retrieval", f"no article {chosen}is dated {period}")
        text = f"No article {chosen}is dated {period}, so there is nothing to answer from."
        elapsed = time.perf_counter() - started
        return Answer(text, False, [], question, question, [], {"retrieval_s": elapsed, "first_token_s": elapsed,
                      "total_s": elapsed}, refused_by="retrieval", reason=verdict.reason, checks=[verdict],
                      undated=len(self.store.undated_articles(articles)))

    def _evidence(self, question: str, passages: Sequence[Passage], best: float) -> Verdict | None:
        """Retrieval evidence that the articles cannot answer, as the verdict that refuses; else ``None``."""
        off = self.settings.without
        if not passages:
            return failed("retrieval", "no passage was found")
        if best < self.settings.min_score and "retrieval" not in off:
            return failed("retrieval", f"the closest passage is too far from the question "
                                       f"({below(best, self.settings.min_score)})")
        if not self.settings.check or "numbers" in off:
            return None
        asked = key_terms(question)[1]
        for p in passages:
            asked -= key_terms(p.text)[1]
        if asked:
            return failed("numbers", f"{', '.join(sorted(asked))} is in none of the passages found")
        return None

    def _opposite(self, question: str, asked: str, reading: Sequence[Passage]) -> Verdict | None:
        """The verdict that refuses a question whose word the model would read first only as its
        opposite (:func:`qa.opposites.opposed`); else ``None``. The word must be the user's own, not
        only the rewrite's of a follow-up."""
        if not self.settings.check or "opposite" in self.settings.without:
            return None
        pair = opposed(asked, [p.text for p in reading], own=question)
        if pair is None:
            return None
        word, said = pair
        return failed("opposite", f"the passages read say \u201c{said}\u201d where the question says "
                                  f"\u201c{word}\u201d, and never \u201c{word}\u201d")

    def ask_stream(self, question: str, history: History = None, articles: Sequence[str] | None = None, *,
                   since: DateLike = None, until: DateLike = None) -> Iterator[Retrieved | str | Answer]:
        """Yield the passages found (:class:`Retrieved`), the answer's text piece by piece, then the
        final :class:`Answer`.

        The final text can differ from the streamed one: the citation check may
        move or drop markers, and an unsupported answer becomes a refusal. With
        ``Settings.read_on``, a refusal from the best passages leads to a second
        reading, with the best sentences of the others (:meth:`rereading`; unless the
        model's own NOT FOUND was surer than ``Settings.sure_refusal``), whose reply is
        streamed only if nothing of the first one was shown. ``since`` and ``until``
        (dates or ``YYYY-MM-DD``) keep to articles dated in that period, leaving out
        the undated ones, which ``Answer.undated`` counts.

        The answer's ``timings`` say where the time went (:data:`qa.answer.STAGES`).
        """
        started = time.perf_counter()
        question = clean_question(question)
        period = Period.of(since, until)
        outside = self._outside(question, articles, period, started)
        if outside is not None:
            yield Retrieved([], [], 0, question)
            yield outside.text
            yield outside
            return
        turns = normalise_history(history)
        timings: dict[str, float] = {}
        standalone = None
        if self.settings.rewrite and turns:
            standalone = standalone_question(self.llm, question, turns, style=self.settings.prompt)
            timings["rewrite_s"] = time.perf_counter() - started
        asked = standalone or question
        searching = time.perf_counter()
        found, best, timings["embed_s"], undated, vector = self._retrieve(
            asked, [] if standalone else turns, articles, period=period)
        timings["search_s"] = time.perf_counter() - searching - timings["embed_s"]
        timings["retrieval_s"] = time.perf_counter() - started
        passages = found.passages
        query = standalone or search_text(question, turns)

        missing = self._evidence(asked, passages, best)
        if missing is None:
            reading = self.reading(asked, vector, passages)
            missing = self._opposite(question, asked, reading)
        if missing is not None:
            yield replace(found, reading=0, query=query)
            timings["first_token_s"] = timings["total_s"] = time.perf_counter() - started
            yield REFUSAL
            yield Answer(REFUSAL, False, [], question, query, passages, timings, refused_by=missing.check,
                         reason=missing.reason, checks=[missing], undated=undated)
            return

        found = self._read_sentences(found, reading, vector)
        passages = found.passages
        excerpted = self.settings.read_tokens > 0
        timings["passage_tokens"] = float(sum(estimate_tokens(p.text) for p in reading))
        yield replace(found, reading=len(reading), query=query)
        held, tokens, readings = True, 0, 0
        while True:
            # A reading after the first is streamed only if nothing was shown yet, and only if its
            # markers number the passages as the final answer does (the list of all passages found).
            before = sum(timings.get(key, 0.0) for key in ("prompt_s", "generate_s", "checks_s"))
            building = time.perf_counter()
            messages = build_messages(asked, reading, turns, style=self.settings.prompt)
            in_order = [p.id for p in reading] == [p.id for p in passages[:len(reading)]]
            timings["prompt_s"] = timings.get("prompt_s", 0.0) + time.perf_counter() - building
            reply, held_now, more = yield from self._generate(messages, len(reading), started, timings,
                                                              shown=held and in_order)
            tokens += more
            held = held and held_now
            readings += 1
            timings["readings"] = float(readings)
            answer = self.finish(reply, asked, query, reading, timings, retrieved=passages)
            if answer.answered:
                answer = self._doubted(messages, answer, timings)
            if readings > 1:
                timings["second_reading_s"] = sum(timings[key] for key in ("prompt_s", "generate_s", "checks_s")) \
                    - before
            if answer.answered or answer.refused_by in ("judge", "doubt") or not self.settings.check \
                    or not self.settings.read_on or excerpted or readings > 1:
                break
            further = self.rereading(asked, vector, passages, reading)  # no answer from the best: read on
            if len(further) == len(reading) or (answer.refused_by == "model"
                                                and self._sure_refusal(messages, reply, answer, timings)):
                break
            reading = further
        if answer.answered:
            # the markers point into the list of every passage found, of which this reading may be a part
            position = {p.id: n for n, p in enumerate(passages, 1)}
            numbers = {n: position[p.id] for n, p in enumerate(reading, 1)}
            answer.text = renumber(answer.text, numbers)
            whole = {p.id: p for p in passages}  # an excerpt's quote, pointed at its whole passage
            answer.citations = [restore_citation(replace(c, number=numbers[c.number]), whole[c.chunk_id])
                                for c in answer.citations]
        answer.passages = list(passages)
        answer.question = question
        answer.undated = undated
        elapsed = time.perf_counter() - started - timings.get("audit_s", 0.0)
        timings.setdefault("first_token_s", elapsed)
        timings["total_s"] = elapsed
        timings["tokens"] = float(tokens)
        answer.timings = timings
        if held:
            yield answer.text
        yield answer

    def _sure_refusal(self, messages: list[Message], reply: str, answer: Answer, timings: dict[str, float]) -> bool:
        """Is the model's NOT FOUND for the first reading sure enough to end there (``Settings.sure_refusal``)?

        Its surety is the probability it gave the reply's first token (``timings["refusal_p"]``),
        read from the answering model's cache. A backend that cannot say, a refusal in other words,
        or a failure to measure reads on.
        """
        if self.settings.prompt == "json" or not reply.strip().upper().startswith(NOT_FOUND):
            return False
        p = self._not_found_p(messages, timings, "how sure the model's refusal was", "reading the other passages")
        if p is None:
            return False
        timings["refusal_p"] = p
        if p <= self.settings.sure_refusal:
            return False
        answer.reason = f"{answer.reason}, and was sure of it ({p:.2f}), so the other passages were not read"
        answer.checks = [replace(v, score=p) if v.check == "model" else v for v in answer.checks]
        return True

    def _doubted(self, messages: list[Message], answer: Answer, timings: dict[str, float]) -> Answer:
        """``answer``, or its refusal by ``doubt`` when the model itself found NOT FOUND too likely a reply.

        The doubt is the probability the answering model gave NOT FOUND as the reply's first token
        (``timings["doubt_p"]``), read from its cache after the answer; at ``Settings.doubt`` or above
        the answer is refused, and not asked again. At 1 (the default) it is measured only for
        ``qa eval``. A backend that cannot say, the JSON prompt, the check switched off, or a failure
        to measure leaves the answer as it is.
        """
        if not self.settings.check or self.settings.prompt == "json" or "doubt" in self.settings.without \
                or (self.settings.doubt >= 1 and not self.settings.audit):
            return answer
        p = self._not_found_p(messages, timings, "how likely the model found a refusal", "the answer stands",
                              into="audit_s" if self.settings.doubt >= 1 else "checks_s")
        if p is None:
            return answer
        timings["doubt_p"] = p
        if self.settings.doubt >= 1 or p < self.settings.doubt:
            answer.checks = [*answer.checks, Verdict("doubt", True, "", p)]
            return answer
        verdict = failed("doubt", f"the model found NOT FOUND a likely reply to these passages ({p:.2f} ≥ "
                                  f"{self.settings.doubt:.2f})", p)
        return Answer(REFUSAL, False, [], answer.question, answer.query, answer.passages, refused_by="doubt",
                      reason=verdict.reason, checks=[*answer.checks, verdict], draft=answer.text)

    def _not_found_p(self, messages: list[Message], timings: dict[str, float], what: str,
                     otherwise: str, into: str = "checks_s") -> float | None:
        """The probability the answering model gives NOT FOUND as its reply to ``messages``, or None.

        One token read from the model's cache (``opening_probability``), timed into
        ``timings[into]``. None when the backend cannot say or the measure fails; a failure
        is logged as not knowing ``what``, and so ``otherwise``.
        """
        opening = getattr(self.llm, "opening_probability", None)
        if opening is None:
            return None
        measuring = time.perf_counter()
        try:
            p: float | None = opening(messages, (NOT_FOUND, f" {NOT_FOUND}"))
        except (ValueError, RuntimeError, QAError) as exc:
            log.warning("Could not tell %s (%s); %s.", what, exc, otherwise)
            p = None
        timings[into] = timings.get(into, 0.0) + time.perf_counter() - measuring
        return p

    def _generate(self, messages: list[Message], count: int, started: float, timings: dict[str, float],
                  shown: bool) -> Generator[str, None, tuple[str, bool, int]]:
        """Stream one reply; yield its text for the reader (if ``shown``), return (text, held, tokens).

        ``held`` is true when nothing was yielded: the reply is (or began like) the NOT FOUND reply,
        or ``shown`` is false. The text returned is the answer out of a JSON reply, or the prose reply.
        ``timings`` gets the seconds until the model's first piece (``prompt_s``) and from it to the
        last (``generate_s``), added to those of earlier readings.
        """
        structured = self.settings.prompt == "json"
        markers = MarkerStreamFilter(count)
        raw: list[str] = []
        visible: list[str] = []  # the text meant for the reader: the reply, or the answer out of the JSON
        answer_stream = AnswerStream()
        held = True  # hold output while it could still be the NOT FOUND reply
        tokens = 0
        called = first = time.perf_counter()
        if structured:
            pieces = self.llm.stream_chat(messages, max_tokens=self.settings.max_tokens,
                                          temperature=self.settings.temperature, schema=SCHEMA)
        else:
            pieces = self.llm.stream_chat(messages, max_tokens=self.settings.max_tokens,
                                          temperature=self.settings.temperature, stop=["\nQuestion:"])
        in_json: bool | None = None if structured else False  # known once the reply's first character is
        for piece in pieces:
            if not tokens:
                first = time.perf_counter()
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
                timings.setdefault("first_token_s", time.perf_counter() - started - timings.get("audit_s", 0.0))
                yield text
        ended = time.perf_counter()
        if not tokens:
            first = ended
        timings["prompt_s"] = timings.get("prompt_s", 0.0) + first - called
        timings["generate_s"] = timings.get("generate_s", 0.0) + ended - first
        tail = markers.flush()
        if tail and not held:
            yield tail
        reply = "".join(raw)
        return (parse_reply(reply).text() if structured else reply), held, tokens

    def finish(self, raw: str, question: str, query: str, passages: Sequence[Passage],
               timings: dict[str, float] | None = None, retrieved: Sequence[Passage] = ()) -> Answer:
        """Turn the model's full reply into a checked :class:`Answer`; ``timings`` gets ``checks_s``.

        ``passages`` are those the model read; ``retrieved``, all those found (when it read only the
        best), also count for the acronyms they define. A refusal names the check that made it.
        ``checks_s`` is the whole of it (citations, guard and the checks), less the checks that run
        for the audit only, whose seconds go to ``audit_s``.
        """
        started = time.perf_counter()
        untimed: list[float] = []
        answer = self._checked(raw, question, query, passages, retrieved, untimed)
        if timings is not None:
            timings["checks_s"] = timings.get("checks_s", 0.0) + time.perf_counter() - started - sum(untimed)
            if untimed:
                timings["audit_s"] = timings.get("audit_s", 0.0) + sum(untimed)
        return answer

    def _checked(self, raw: str, question: str, query: str, passages: Sequence[Passage],
                 retrieved: Sequence[Passage], untimed: list[float]) -> Answer:
        """:meth:`finish`, untimed; the seconds spent on audit-only checks are added to ``untimed``."""
        def refusal(verdict: Verdict, verdicts: Sequence[Verdict] = (), draft: str = "") -> Answer:
            return Answer(REFUSAL, False, [], question, query, list(passages), refused_by=verdict.check,
                          reason=verdict.reason, checks=list(verdicts) or [verdict], draft=draft)

        if _refused(raw):
            return refusal(failed("model", REFUSERS["model"]))
        checking = self.settings.check
        off = self.settings.without
        if checking:
            raw = strip_expansions(raw, [p.text for p in passages])  # "the FLA", not the model's long name for it
        if checking and "citations" not in off:
            text, claims = check_citations(raw, passages, self.policy, question)
        else:
            text, claims = cited_claims(raw, len(passages))
        if checking and "guard" not in off:
            screened, kept = screen_answer(text, claims, passages, _PROTECTED)
            if claims and not kept:
                return refusal(failed("guard", REFUSERS["guard"]), draft=text)
            text, claims = screened, kept
        body_words, body_numbers = key_terms(strip_markers(text))
        if claims and not body_words and not body_numbers:
            # A bare "[2]": answer with the cited passage's sentence that best matches the question.
            number = min(claims)
            quote, _, _ = best_quote(passages[number - 1], [question], max_sentences=1)
            text, claims = f"{' '.join(quote.split())} [{number}]", {number: [quote]}
        if checking and not claims and "citations" not in off:
            return refusal(failed("citations", REFUSERS["citations"]), draft=raw)
        citations = make_citations(claims, passages, question)
        if not checking:
            return Answer(text, True, citations, question, query, list(passages))
        draft = Draft(question, query, text, citations, passages, retrieved,
                      article=lambda a: self.store.get(sorted(self.store.passage_ids(a))))
        checks = [c for c in self.checks() if c.name not in off]
        verdicts = run_checks(checks, draft)
        if self.settings.audit and len(verdicts) < len(checks):  # the rest too, for qa eval, not timed
            auditing = time.perf_counter()
            verdicts += run_checks(checks[len(verdicts):], draft, audit=True)
            untimed.append(time.perf_counter() - auditing)
        failure = first_failure(verdicts)
        if failure is not None:
            return refusal(failure, verdicts, draft=text)
        return Answer(text, True, citations, question, query, list(passages), checks=verdicts)

    def checks(self) -> list[Check]:
        """The checks of a drafted answer, in order: the lexical ones, then the support judge."""
        if self._judge is None:
            self._judge = SupportJudge(self.checker or self.llm)
        return [*LEXICAL_CHECKS, self._judge.check(self.settings.judge_threshold)]

    def ask(self, question: str, history: History = None, articles: Sequence[str] | None = None, *,
            since: DateLike = None, until: DateLike = None) -> Answer:
        """Answer ``question``; see :meth:`ask_stream`."""
        for item in self.ask_stream(question, history, articles, since=since, until=until):
            if isinstance(item, Answer):
                return item
        raise AssertionError("ask_stream ended without an Answer")  # pragma: no cover
