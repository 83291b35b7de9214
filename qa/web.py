"""The chat page (Gradio).

    ┌ conversation ─────────────────────────────┐ ┌ Library ─────────────────┐
    │ question                                  │ │ articles to draw on  ☑ … │
    │ answer, streamed; [n] markers             │ │ dated from [   ] to [   ] │
    │   Sources: [n] title — outlet, date       │ │ add .txt .md .html .pdf  │
    │     "…context <mark>quote</mark> context…"│ │ add a link [https://… ]  │
    │     ▸ whole passage  ▸ how it was made    │ │ remove an article        │
    │ [ Ask a question…              Ask/Stop ] │ ├ Settings ────────────────┤
    └───────────────────────────────────────────┘ │ model · passages · temp. │
                                                  └──────────────────────────┘

The conversation is a list of *turns* kept in the browser (``gr.BrowserState``,
so it survives a reload): the question, the answer's text, citations and
timings, and a status (waiting, loading, streaming, done, stopped, error). The chat
display is always rendered from the turns, on the server, and every piece of
article text or model output is HTML-escaped there; the HTML of a message has
no blank line, so Markdown never parses inside it. Markup in an article is
shown as text, never run.

While the model reads, a streaming answer shows the passages it reads first (each one's title and
best sentence, from the :class:`~qa.answer.Retrieved` that ``ask_stream`` yields before any text);
the finished answer shows its cited sources instead.

``qa serve`` serves the page before the models are loaded (:mod:`qa.loading`): a question asked
meanwhile shows that it waits for the model ("loading"), then is answered.

Settings (model, passages, temperature) belong to the browser session. A
question is answered by a per-request copy of the pipeline with those
settings; each GGUF model is loaded once per process and then shared.

One answer is generated at a time (the ``answer`` concurrency group, shared
with the ``/ask`` API); a waiting user sees their place in the queue. At most
``QA_QUEUE_SIZE`` requests wait (64 by default); one more is told at once that
the page is busy and to try again.

The library panel follows changes made by other processes (``qa ingest``,
``qa ingest --watch``): a ``gr.Timer`` polls a cheap stamp of the index every
``LIBRARY_POLL_S`` seconds and lists the articles again only when it changed.

The API: ``/ask`` (question, history, articles, and optionally since and until)
returns the JSON of ``qa ask --json``; ``/add_articles`` adds files as the upload control does, and
``/add_link`` an article by its web address as the "Add a link" box does.
"""

from __future__ import annotations

import dataclasses
import html
import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from .answer import STAGES, Answer, Retrieved
from .api import get_pipeline
from .errors import QAError
from .fetch import address_policy
from .library import UPLOAD_SUFFIXES, Library
from .links import is_link
from .llm import LLM, LlamaCppLLM, check_gguf
from .loading import ModelLoader
from .period import Period
from .pipeline import Pipeline

log = logging.getLogger(__name__)

EXAMPLES = [
    "What was the voter turnout in the October 2020 election?",
    "How many seats did the MAS win in the lower house?",
    "Who led the coup regime?",
    "Why is the MAS not a traditional political party?",
]
MAX_TOP_K = 12
LIBRARY_POLL_S = 2.0  # how often an open page checks whether another process changed the index
Turn = dict[str, Any]

CSS = """
.qa-answer { line-height: 1.55; }
.qa-ref { font-size: .78em; font-weight: 600; vertical-align: super; color: var(--color-accent); }
.qa-refusal { padding: .5em .75em; border-left: 3px solid #d97706; background: rgba(217, 119, 6, .08); }
.qa-error { padding: .5em .75em; border-left: 3px solid #dc2626; background: rgba(220, 38, 38, .08); }
.qa-note { color: var(--body-text-color-subdued); font-style: italic; }
.qa-sources { margin-top: .8em; border-top: 1px solid var(--border-color-primary); padding-top: .5em; }
.qa-sources-title { font-weight: 600; font-size: .9em; text-transform: uppercase; letter-spacing: .04em;
  color: var(--body-text-color-subdued); }
.qa-source { margin: .55em 0; font-size: .94em; }
.qa-source-head { font-weight: 600; }
.qa-source-meta { color: var(--body-text-color-subdued); font-weight: normal; }
.qa-context { margin: .25em 0 .2em 1.4em; color: var(--body-text-color-subdued); }
.qa-context mark, .qa-passage mark { background: #fde68a; color: #1f2937; padding: 0 .1em; border-radius: 2px; }
.qa-source details, .qa-how { margin-left: 1.4em; font-size: .9em; }
.qa-source summary, .qa-how summary { cursor: pointer; color: var(--color-accent); }
.qa-passage { margin: .3em 0; padding: .4em .7em; border-left: 3px solid var(--border-color-primary); }
.qa-how { margin: .7em 0 0 0; color: var(--body-text-color-subdued); }
.qa-reading { margin-top: .8em; border-top: 1px dashed var(--border-color-primary); padding-top: .5em; opacity: .85; }
#qa-articles .wrap { flex-direction: column; gap: .35em; }
#qa-articles .wrap label { width: 100%; font-size: .9em; padding: .4em .6em; color: var(--body-text-color) !important;
  background: var(--block-background-fill) !important; border: 1px solid var(--border-color-primary); }
#qa-articles .wrap label.selected { background: var(--color-accent-soft) !important;
  border-color: var(--color-accent); }
"""


# --- rendering (everything from articles or the model is escaped here) ------------------

def _e(value: object) -> str:
    """Escape any value for HTML, and keep it on one line.

    >>> _e('<img src=x onerror="alert(1)">\\n\\n[a](javascript:x)')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;<br><br>[a](javascript:x)'
    """
    return html.escape(str(value)).replace("\r\n", "\n").replace("\n", "<br>")


def _with_markers(text: str) -> str:
    """Escaped answer text, its ``[n]`` markers styled.

    >>> _with_markers("The ferry was 12% late [1]. <b>")
    'The ferry was 12% late <span class="qa-ref">[1]</span>. &lt;b&gt;'
    """
    return re.sub(r"\[(\d+)\]", r'<span class="qa-ref">[\1]</span>', _e(text))


def _locate(passage: str, quote: str) -> tuple[int, int] | None:
    at = passage.find(quote)
    if at >= 0:
        return at, at + len(quote)
    words = quote.split()
    if not words:
        return None
    match = re.search(r"\s+".join(re.escape(w) for w in words), passage)
    return (match.start(), match.end()) if match else None


def _highlighted(passage: str, quote: str, around: int | None = None) -> str:
    """The passage with the quote marked; with ``around``, only that much context either side.

    >>> _highlighted("One. Two <b>2</b>. Three.", "Two <b>2</b>.")
    'One. <mark>Two &lt;b&gt;2&lt;/b&gt;.</mark> Three.'
    >>> _highlighted("Alpha beta gamma. Delta.", "Delta.", around=8)
    '… gamma. <mark>Delta.</mark>'
    """
    span = _locate(passage, quote)
    if span is None:
        return f"<mark>{_e(quote)}</mark>" if quote else _e(passage)
    start, end = span
    before, after = passage[:start], passage[end:]
    if around is not None:
        if len(before) > around:
            before = "… " + before[-around:].split(" ", 1)[-1].lstrip()
        if len(after) > around:
            after = after[:around].rsplit(" ", 1)[0].rstrip() + " …"
    return f"{_e(before)}<mark>{_e(passage[start:end])}</mark>{_e(after)}"


def _source_html(c: dict[str, Any]) -> str:
    number = int(c.get("number") or 0)
    title, source = str(c.get("article") or ""), str(c.get("source") or "")
    quote, passage = str(c.get("quote") or ""), str(c.get("passage") or c.get("quote") or "")
    about = ", ".join(str(c[key]) for key in ("outlet", "date") if c.get(key))
    meta = " — ".join(_e(x) for x in (about, source) if x)
    return (f'<div class="qa-source"><div class="qa-source-head">[{number}] {_e(title)} '
            f'<span class="qa-source-meta">{meta}</span></div>'
            f'<div class="qa-context">{_highlighted(passage, quote, around=160)}</div>'
            f'<details><summary>Read the whole passage</summary>'
            f'<div class="qa-passage">{_highlighted(passage, quote)}</div></details></div>')


def _how_html(how: dict[str, Any]) -> str:
    """The "how this answer was made" detail, from the answer's timings and settings."""
    def num(key: str) -> float:
        try:
            return float(how.get(key) or 0.0)
        except (TypeError, ValueError):
            return 0.0

    scope = how.get("scope") or "all articles"
    if how.get("period"):
        scope = f"{scope} dated {how['period']}"
    parts = [f"Searched {_e(scope)} for the {int(num('top_k'))} closest passages in {num('retrieval_s'):.2f} s."]
    tokens, first, total = num("tokens"), num("first_token_s"), num("total_s")
    if "tokens" in how:
        generating = total - first - num("checks_s")
        rate = tokens / generating if tokens > 1 and generating > 0 else tokens / total if total > 0 else 0.0
        parts.append(f"First words after {first:.2f} s; whole answer in {total:.2f} s; "
                     f"{int(tokens)} tokens at {rate:.1f} tokens/s.")
        if num("readings") >= 2:
            parts.append("The model read the best passages first; they gave no checked answer, so it "
                         "read on, with the best sentences of the others.")
        if "checks_s" in how:
            support, judged = how.get("support"), ""
            if isinstance(support, (int, float)) and how.get("refused_by") != "judge":  # (that reason gives it)
                judged = (f"; the support judge, shown only the quoted sentences, scored them {float(support):.2f} "
                          "as stating this answer")
            parts.append(f"Checked against its quotes in {num('checks_s'):.2f} s{judged}.")
        if how.get("model"):
            parts.append(f"Model: {_e(how['model'])}, temperature {num('temperature'):g}.")
    else:
        parts.append(f"Nothing was generated: the model was not asked ({total:.2f} s in all).")
    if how.get("refused_by"):
        parts.append(f"Refused by the {_e(how['refused_by'])} check: {_e(how.get('reason') or '')}.")
    stages = [f"{label} {num(key):.2f} s" for key, label in STAGES.items() if key in how]
    if "embed_s" in how:  # answers from before the breakdown have none
        second = (f" (of which the second reading {num('second_reading_s'):.2f} s)"
                  if "second_reading_s" in how else "")
        parts.append(f"Where the time went: {', '.join(stages)}{second}; {num('total_s'):.2f} s in all.")
    return (f'<details class="qa-how"><summary>How this answer was made</summary>'
            f'{" ".join(parts)}</details>')


def _reading_html(reading: object) -> str:
    """The passages the model is reading, each with its best sentence, shown until the sources replace them."""
    rows = [r for r in reading if isinstance(r, dict)] if isinstance(reading, list) else []
    if not rows:
        return ""
    items = "".join(
        f'<div class="qa-source"><div class="qa-source-head">[{int(r.get("number") or 0)}] {_e(r.get("title") or "")} '
        f'<span class="qa-source-meta">{_e(r.get("outlet") or "")}</span></div>'
        f'<div class="qa-context">{_e(r.get("sentence") or "")}</div></div>' for r in rows)
    return (f'<div class="qa-reading"><div class="qa-sources-title">Reading {_count(len(rows), "passage")}</div>'
            f'{items}</div>')


def reading_of(retrieved: Retrieved) -> list[dict[str, Any]]:
    """The passages the model reads first, for the page: number, title, outlet, and the sentence read
    closest to the question."""
    return [{"number": n, "title": p.title, "outlet": p.outlet, "sentence": " ".join(sentence.split())}
            for n, (p, sentence) in enumerate(retrieved.read, 1)]


def render_turn(turn: Turn) -> str:
    """The HTML of one answer message (one line, no blank line)."""
    status, text = turn.get("status"), str(turn.get("text") or "")
    if status == "waiting":
        return ('<div class="qa-note">Waiting for the model… It answers one question at a time; while it is busy, '
                'your place in the queue shows at the bottom of the conversation.</div>')
    if status == "loading":
        return ('<div class="qa-note">Waiting for the model to finish loading (the page is served while it '
                'loads)… Your question is answered as soon as it is ready.</div>')
    if status == "streaming":
        reading = _reading_html(turn.get("reading"))
        note = "Reading the passages…" if reading else "Searching the articles…"
        body = _with_markers(text) if text else f'<span class="qa-note">{note}</span>'
        return f'<div class="qa-answer">{body} ▍</div>{reading}'
    if status == "stopped":
        partial = f"{_with_markers(text)} " if text else ""
        return f'<div class="qa-answer">{partial}<span class="qa-note">(stopped)</span></div>'
    if status == "error":
        return f'<div class="qa-error">⚠️ {_e(text)}</div>'
    how = _how_html(turn.get("how") or {})
    note = f'<div class="qa-note">{_e(turn["note"])}</div>' if turn.get("note") else ""
    citations = [c for c in turn.get("citations") or [] if isinstance(c, dict)]
    if not turn.get("answered") or not citations:
        return f'<div class="qa-refusal">{_e(text)}</div>{note}{how}'
    sources = "".join(_source_html(c) for c in citations)
    return (f'<div class="qa-answer">{_with_markers(text)}</div>{note}'
            f'<div class="qa-sources"><div class="qa-sources-title">Sources</div>{sources}</div>{how}')


def render_answer(answer: Answer) -> str:
    """The chat message for a finished answer: text, then its sources."""
    return render_turn(_finished(answer, {}))


def render_chat(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The Chatbot messages for the conversation."""
    messages: list[dict[str, str]] = []
    for turn in turns or []:
        if not isinstance(turn, dict):
            continue
        messages.append({"role": "user", "content": f'<div class="qa-question">{_e(turn.get("q") or "")}</div>'})
        messages.append({"role": "assistant", "content": render_turn(turn)})
    return messages


def _finished(answer: Answer, how: dict[str, Any]) -> Turn:
    made: dict[str, Any] = {**answer.timings, **how}
    if not answer.answered and answer.refused_by:
        made |= {"refused_by": answer.refused_by, "reason": answer.reason}
    support = next((v.score for v in answer.checks if v.check == "judge"), None)
    if support is not None:
        made["support"] = support
    return {"q": answer.question, "status": "done", "text": answer.text, "answered": answer.answered,
            "citations": [c.to_dict() for c in answer.citations], "how": made, "note": answer.note}


def history_of(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The finished turns as chat history for the pipeline."""
    out: list[dict[str, str]] = []
    for turn in turns:
        if isinstance(turn, dict) and turn.get("status") == "done":
            out += [{"role": "user", "content": str(turn.get("q") or "")},
                    {"role": "assistant", "content": str(turn.get("text") or "")}]
    return out


# --- per-session settings -----------------------------------------------------------------

_llms: dict[Path, LLM] = {}
_llms_lock = threading.Lock()


def _base_model(pipeline: Pipeline) -> Path:
    path = getattr(pipeline.llm, "model_path", None)
    return Path(path) if path else pipeline.settings.model


def model_choices(pipeline: Pipeline) -> dict[str, Path]:
    """The models a user may pick: the configured one first, then every ``.gguf`` in the models folder."""
    base = _base_model(pipeline)
    choices = {base.name: base}
    folder = pipeline.settings.models_dir
    if folder.is_dir():
        for path in sorted(folder.glob("*.gguf")):
            if path.is_file():
                choices.setdefault(path.name, path)
    return choices


def _llm_for(path: Path, pipeline: Pipeline) -> LLM:
    """The process-wide model for ``path``, created (and later loaded) once."""
    key = path.resolve()
    with _llms_lock:
        llm = _llms.get(key)
        if llm is None:
            check_gguf(path)
            llm = _llms[key] = LlamaCppLLM(path, n_ctx=pipeline.settings.context_tokens,
                                           n_threads=pipeline.settings.threads,
                                           n_threads_batch=pipeline.settings.batch_threads, seed=pipeline.settings.seed)
        return llm


def session_pipeline(base: Pipeline, model: str | None, top_k: float | None,
                     temperature: float | None) -> Pipeline:
    """A copy of ``base`` that answers with this session's model, passage count and temperature."""
    choices = model_choices(base)
    path = choices.get(model or "") or _base_model(base)
    if model and model not in choices:
        raise QAError(f"The model {model} is no longer in {base.settings.models_dir}. Choose another in Settings.")
    llm = base.llm if path == _base_model(base) else _llm_for(path, base)
    k = base.settings.top_k if top_k is None else max(1, min(MAX_TOP_K, int(top_k)))
    t = base.settings.temperature if temperature is None else max(0.0, min(2.0, float(temperature)))
    settings = dataclasses.replace(base.settings, top_k=k, temperature=t)
    return dataclasses.replace(base, llm=llm, settings=settings)


# --- the page -------------------------------------------------------------------------------

def _count(n: int, noun: str) -> str:
    """
    >>> _count(1, "passage"), _count(3, "passage")
    ('1 passage', '3 passages')
    """
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _article_label(row: dict[str, Any]) -> str:
    """
    >>> _article_label({"title": "Ferry back", "outlet": "Gazette", "date": "2024-03-14", "passages": 2})
    'Ferry back — Gazette, 2024-03-14 · 2 passages'
    >>> _article_label({"title": "Ferry back", "outlet": "", "date": "", "passages": 1})
    'Ferry back — no date · 1 passage'
    """
    about = [str(row["outlet"])] if row.get("outlet") else []
    about.append(str(row.get("date") or "no date"))  # a period leaves the undated ones out
    return f"{row['title']} — {', '.join(about)} · {_count(int(row['passages']), 'passage')}"


def _md(text: str) -> str:
    """Escape text for a gr.Markdown status line.

    >>> _md("<script>x</script> *a*")
    '&lt;script&gt;x&lt;/script&gt; \\\\*a\\\\*'
    """
    escaped = html.escape(text, quote=False)
    for char in "\\`*_{}[]()#|~!$":
        escaped = escaped.replace(char, "\\" + char)
    return escaped


class ChatPage:
    """The handlers of the page, over the pipeline that ``pipeline_factory`` returns."""

    def __init__(self, pipeline_factory: Callable[[], Pipeline], loading: ModelLoader | None = None) -> None:
        self.pipeline_factory = pipeline_factory
        self.loading = loading  # the models loading in the background, while the page is served
        self._library: Library | None = None

    def _wait_for_models(self) -> None:
        """Wait for the models loading in the background; raise if they could not be loaded."""
        if self.loading is not None:
            self.loading.wait()
            if self.loading.error:
                raise QAError(f"{self.loading.error} Fix this and restart `qa serve`.")

    @property
    def library(self) -> Library:
        if self._library is None:
            p = self.pipeline_factory()
            self._library = Library(p.store, p.embedder, p.settings.data_dir, p.settings.chunking,
                                    address_policy(p.settings.allow_private_links))
        return self._library

    # library panel

    def library_updates(self, selected: Sequence[str] | None, message: str | None = None) -> tuple[Any, ...]:
        """Updates for the summary, the article choice, the remove list (and the status line)."""
        rows = self.library.articles()
        ids = [str(r["id"]) for r in rows]
        keep = [a for a in (selected if selected is not None else ids) if a in ids]
        passages = sum(int(r["passages"]) for r in rows)
        summary = (f"**{_count(len(rows), 'article')}**, {_count(passages, 'passage')} indexed." if rows else
                   "The index is empty: add articles below (or run `qa ingest FOLDER`).")
        choices = [(_article_label(r), str(r["id"])) for r in rows]
        return (summary, gr.update(choices=choices, value=keep),
                gr.update(choices=[(f"{r['title']} ({r['id']})", str(r["id"])) for r in rows], value=None),
                message if message is not None else gr.skip())

    def seen(self) -> dict[str, Any]:
        """What this page last listed: the index's stamp, and the article ids."""
        stamp = list(self.library.stamp())
        return {"stamp": stamp, "ids": [str(r["id"]) for r in self.library.articles()]}

    def poll_library(self, selected: list[str] | None, seen: dict[str, Any] | None) -> tuple[Any, ...]:
        """List the library again if the index changed since this page last listed it (another process
        may have changed it); articles new to the list are ticked, as an upload is."""
        try:
            if isinstance(seen, dict) and seen.get("stamp") == list(self.library.stamp()):
                return gr.skip(), gr.skip(), gr.skip(), gr.skip()
            now = self.seen()
        except Exception:  # noqa: BLE001 - an index being rebuilt; the next tick tries again
            log.debug("listing the library failed", exc_info=True)
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        known = set(seen.get("ids") or []) if isinstance(seen, dict) else set(now["ids"])
        chosen = None if selected is None else [*selected, *(a for a in now["ids"] if a not in known)]
        summary, choice, remove, _status = self.library_updates(chosen)
        if isinstance(seen, dict) and list(seen.get("ids") or []) == list(now["ids"]):
            remove = gr.skip()  # the same articles: leave the removal choice alone, it may be in use
        return summary, choice, remove, now

    def add_files(self, files: list[str] | None, selected: list[str] | None,
                  progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 - Gradio's idiom
        """Add uploaded files to the index; one line per file in the status."""
        lines: list[str] = []
        added: list[str] = []
        paths = [Path(f) for f in files or []]
        for n, path in enumerate(paths, 1):
            name = path.name
            progress((n - 1) / max(1, len(paths)), desc=f"Reading {name}")

            def report(done: int, total: int, name: str = name, n: int = n) -> None:
                progress((n - 1 + done / max(1, total)) / len(paths), desc=f"Embedding {name}: {done}/{total} passages")

            try:
                result = self.library.add_upload(path, name, progress=report)
            except QAError as exc:
                lines.append(f"❌ {_md(str(exc))} Nothing was changed.")
                continue
            except Exception:
                log.exception("adding %s failed", name)
                lines.append(f"❌ {_md(name)} could not be added (an unexpected error; see the server log). "
                             "Nothing was changed.")
                continue
            verb = "Replaced" if result.replaced else "Added"
            lines.append(f"✅ {verb} **{_md(result.title)}** ({_count(result.passages, 'passage')}) as "
                         f"{_md(result.article_id)}.")
            added.append(result.article_id)
        if not paths:
            lines.append("Choose .txt, .md, .html or .pdf files to add.")
        chosen = list(selected or [])
        chosen += [a for a in added if a not in chosen]
        summary, choice, remove, status = self.library_updates(chosen, "  \n".join(lines))
        return summary, choice, remove, status, None

    def add_link(self, url: str | None, selected: list[str] | None,
                 progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 - Gradio's idiom
        """Add the article at a web address to the index; the status line says what happened."""
        url = (url or "").strip()
        if not url:
            summary, choice, remove, status = self.library_updates(selected, "Paste the address of an article "
                                                                             "(https://…) to add it.")
            return summary, choice, remove, status, gr.skip()
        progress(0.0, desc=f"Fetching {url}")

        def report(done: int, total: int) -> None:
            progress(done / max(1, total), desc=f"Embedding: {done}/{total} passages")

        try:
            result = self.library.add_link(url, progress=report)
        except QAError as exc:
            summary, choice, remove, status = self.library_updates(selected, f"❌ {_md(str(exc))} Nothing was "
                                                                             "changed.")
            return summary, choice, remove, status, gr.skip()
        except Exception:
            log.exception("adding the link %s failed", url)
            summary, choice, remove, status = self.library_updates(
                selected, f"❌ {_md(url)} could not be added (an unexpected error; see the server log). "
                          "Nothing was changed.")
            return summary, choice, remove, status, gr.skip()
        if not result.changed:
            line = f"Already in the library, unchanged: **{_md(result.title)}** ({_md(result.article_id)})."
        else:
            verb = "Updated" if result.replaced else "Added"
            line = (f"✅ {verb} **{_md(result.title)}** ({_count(result.passages, 'passage')}) from "
                    f"{_md(result.article_id)}.")
        chosen = list(selected or [])
        chosen += [result.article_id] if result.article_id not in chosen else []
        summary, choice, remove, status = self.library_updates(chosen, line)
        return summary, choice, remove, status, ""

    def remove_article(self, article_id: str | None, selected: list[str] | None) -> tuple[Any, ...]:
        if not article_id:
            return self.library_updates(selected, "Choose the article to remove first.")
        try:
            removed = self.library.remove(article_id)
        except QAError as exc:
            return self.library_updates(selected, f"❌ {_md(str(exc))}")
        note = ("" if article_id.startswith("uploads/") or is_link(article_id) else
                " It comes back if its folder is ingested again.")
        return self.library_updates(selected, f"Removed {_md(article_id)} from the index "
                                              f"({_count(removed, 'passage')}).{note}")

    def _scope(self, selected: Sequence[str] | None) -> tuple[list[str] | None, str]:
        """The article filter for a question, and its description."""
        ids = [str(r["id"]) for r in self.library.articles()]
        if selected is None:
            return None, "all articles"
        chosen = [a for a in selected if a in ids]
        if not chosen:
            raise QAError("No article is chosen in the Library panel. Tick the articles a question may draw on.")
        if len(chosen) == len(ids):
            return None, f"all {len(ids)} articles"
        return chosen, f"{len(chosen)} of {len(ids)} articles"

    # conversation

    def take_question(self, question: str, turns: list[Turn] | None) -> tuple[Any, ...]:
        """Show the question at once, with a waiting answer; the queued step answers it."""
        turns = [t for t in turns or [] if isinstance(t, dict)]
        text = (question or "").strip()
        if not text or (turns and turns[-1].get("status") in ("waiting", "loading", "streaming")):
            return gr.skip(), turns, render_chat(turns)
        turns.append({"q": text, "status": "waiting", "text": ""})
        return gr.update(value="", submit_btn=False, stop_btn="Stop"), turns, render_chat(turns)

    def take_example(self, turns: list[Turn] | None, event: gr.SelectData) -> tuple[Any, ...]:
        value = event.value.get("text", "") if isinstance(event.value, dict) else str(event.value or "")
        return self.take_question(value, turns)

    def answer(self, turns: list[Turn] | None, model: str | None, top_k: float | None, temperature: float | None,
               selected: list[str] | None, since: str | None = None,
               until: str | None = None) -> Iterator[tuple[Any, ...]]:
        """Answer the waiting question (from the articles ``selected``, dated ``since``/``until``),
        streaming the answer into the conversation."""
        turns = [t for t in turns or [] if isinstance(t, dict)]
        if not turns or turns[-1].get("status") != "waiting":
            yield render_chat(turns), turns
            return
        turn: Turn = {**turns[-1], "status": "streaming", "text": ""}
        try:
            if self.loading is not None and not self.loading.ready:
                turns[-1] = {**turn, "status": "loading"}
                yield render_chat(turns), turns
            self._wait_for_models()
            turns[-1] = turn
            yield render_chat(turns), turns
            articles, scope = self._scope(selected)
            period = Period.of(since, until)
            pipeline = session_pipeline(self.pipeline_factory(), model, top_k, temperature)
            how = {"model": getattr(pipeline.llm, "name", "") or _base_model(pipeline).name,
                   "top_k": pipeline.settings.top_k, "temperature": pipeline.settings.temperature, "scope": scope,
                   "period": str(period or "")}
            for item in pipeline.ask_stream(str(turn["q"]), history_of(turns[:-1]), articles,
                                            since=since, until=until):
                if isinstance(item, Answer):
                    turn = {**_finished(item, how), "q": turn["q"]}
                elif isinstance(item, Retrieved):
                    turn = {**turn, "reading": reading_of(item)}
                else:
                    turn = {**turn, "text": str(turn["text"]) + item}
                turns[-1] = turn
                yield render_chat(turns), turns
        except QAError as exc:
            turns[-1] = {**turn, "status": "error", "text": str(exc)}
            yield render_chat(turns), turns
        except Exception:
            log.exception("answering %r failed", turn.get("q"))
            turns[-1] = {**turn, "status": "error",
                         "text": "Something went wrong while answering; the server log has the details."}
            yield render_chat(turns), turns

    @staticmethod
    def settle(turns: list[Turn] | None) -> tuple[Any, ...]:
        """After an answer ends or is stopped: mark an unfinished answer stopped, give the box back."""
        turns = [t for t in turns or [] if isinstance(t, dict)]
        if turns and turns[-1].get("status") in ("waiting", "loading", "streaming"):
            turns[-1] = {**turns[-1], "status": "stopped"}
        return render_chat(turns), turns, gr.update(submit_btn="Ask", stop_btn=False, interactive=True)

    def on_load(self, turns: list[Turn] | None, prefs: dict[str, Any] | None) -> tuple[Any, ...]:
        """Restore the conversation and settings of this browser; list the library."""
        chat, turns, _ = self.settle(turns)
        prefs = prefs if isinstance(prefs, dict) else {}
        pipeline = self.pipeline_factory()
        choices = list(model_choices(pipeline))
        model = prefs.get("model") if prefs.get("model") in choices else choices[0]
        top_k = prefs.get("top_k") if isinstance(prefs.get("top_k"), (int, float)) else pipeline.settings.top_k
        temperature = (prefs.get("temperature") if isinstance(prefs.get("temperature"), (int, float))
                       else pipeline.settings.temperature)
        seen = self.seen()
        summary, choice, remove, _status = self.library_updates(None)
        return (chat, turns, gr.update(choices=choices, value=model), top_k, temperature,
                summary, choice, remove, seen)

    def preload(self, model: str | None) -> str:
        """Load the chosen model now, so the next answer does not wait for it."""
        try:
            self._wait_for_models()
            pipeline = session_pipeline(self.pipeline_factory(), model, None, None)
            load = getattr(pipeline.llm, "load", None)
            if callable(load):
                load()
        except QAError as exc:
            return f"❌ {_md(str(exc))}"
        return f"**{_md(model or '')}** is loaded and answers your next question."

    def ask_api(self, question: str, history: list[dict[str, str]] | None = None,
                articles: list[str] | None = None, since: str | None = None,
                until: str | None = None) -> dict[str, Any]:
        """Answer a question; returns {"text", "answered", "citations"} like `qa ask --json`.

        ``articles`` (file names) and the period ``since``/``until`` (YYYY-MM-DD) are optional."""
        try:
            self._wait_for_models()
            return self.pipeline_factory().ask(question, history or None, articles or None,
                                               since=since, until=until).to_dict()
        except QAError as exc:
            return {"text": str(exc), "answered": False, "citations": [], "error": str(exc)}
        except Exception:
            log.exception("answering %r failed", question)
            message = "Something went wrong while answering; the server log has the details."
            return {"text": message, "answered": False, "citations": [], "error": message}


def build_app(pipeline_factory: Callable[[], Pipeline] = get_pipeline,
              loading: ModelLoader | None = None) -> gr.Blocks:
    """The chat page, over the pipeline that ``pipeline_factory`` returns; with ``loading``, questions
    wait until those models are loaded (the page is told so)."""
    page = ChatPage(pipeline_factory, loading)
    base = pipeline_factory()
    models = list(model_choices(base))
    with gr.Blocks(title="Ask the articles", analytics_enabled=False) as app:
        turns = gr.BrowserState([], storage_key="qa-conversation")
        prefs = gr.BrowserState({}, storage_key="qa-settings")
        with gr.Row(equal_height=False):
            with gr.Column(scale=7, min_width=420):
                gr.Markdown("## Ask the articles\nAnswers come only from the articles in the library, written by "
                            "a model that runs on this machine. Every answer shows the passages it came from; "
                            "when the articles do not say, the answer says so.")
                chatbot = gr.Chatbot(
                    label="Conversation", height=620, elem_id="qa-chat", buttons=[], allow_tags=False,
                    latex_delimiters=[], feedback_options=None, autoscroll=True, layout="bubble",
                    placeholder="Ask a question about the articles in the library.",
                    examples=[{"text": q} for q in EXAMPLES], group_consecutive_messages=False)
                box = gr.Textbox(placeholder="Ask a question about the articles…", show_label=False, lines=1,
                                 max_lines=6, elem_id="qa-question", autofocus=True, submit_btn="Ask",
                                 stop_btn=False, max_length=2000)
                new = gr.Button("New conversation", size="sm", variant="secondary", elem_id="qa-new")
            with gr.Column(scale=4, min_width=300):
                with gr.Tab("Library", elem_id="qa-library-tab"):
                    summary = gr.Markdown(elem_id="qa-library-summary")
                    library = gr.CheckboxGroup(label="Questions may draw on", choices=[], value=[],
                                               show_select_all=True, elem_id="qa-articles")
                    # Text boxes rather than gr.DateTime, which keeps its last valid value when what is
                    # typed is not a date: here a mistyped date gets a message in the conversation.
                    with gr.Row(equal_height=True):
                        since = gr.Textbox(label="Dated from", placeholder="YYYY-MM-DD", lines=1, max_lines=1,
                                           max_length=40, elem_id="qa-since", min_width=120)
                        until = gr.Textbox(label="to", placeholder="YYYY-MM-DD", lines=1, max_lines=1,
                                           max_length=40, elem_id="qa-until", min_width=120)
                    gr.Markdown("Both days included; either may stay empty. Once one is set, articles without a "
                                "date are left out.", elem_id="qa-period-note")
                    upload = gr.File(label="Add articles: .txt, .md, .html or .pdf, up to 20 MB each",
                                     file_count="multiple", file_types=list(UPLOAD_SUFFIXES), type="filepath",
                                     elem_id="qa-upload", height=120)
                    link = gr.Textbox(label="Add a link", placeholder="https://… the address of an article",
                                      lines=1, max_lines=1, max_length=2000, submit_btn="Add",
                                      elem_id="qa-link")
                    status = gr.Markdown(elem_id="qa-library-status")
                    with gr.Accordion("Remove an article", open=False):
                        to_remove = gr.Dropdown(label="Article", choices=[], value=None, elem_id="qa-remove-choice")
                        remove = gr.Button("Remove from the index", variant="stop", size="sm", elem_id="qa-remove")
                with gr.Tab("Settings", elem_id="qa-settings-tab"):
                    model = gr.Dropdown(label="Model", choices=models, value=models[0], elem_id="qa-model",
                                        info="GGUF files in the models folder; the first is the default.")
                    top_k = gr.Slider(1, MAX_TOP_K, value=base.settings.top_k, step=1, label="Passages retrieved",
                                      info="More passages can answer broader questions but take longer.",
                                      elem_id="qa-top-k")
                    temperature = gr.Slider(0.0, 1.0, value=base.settings.temperature, step=0.05,
                                            label="Temperature", elem_id="qa-temperature",
                                            info="0 is the most literal; higher varies the wording.")
                    model_note = gr.Markdown("These settings are yours alone; other users keep theirs.")

        conversation = [chatbot, turns]
        answer_inputs = [turns, model, top_k, temperature, library, since, until]
        answers = []
        for taken in (box.submit(page.take_question, [box, turns], [box, turns, chatbot], queue=False,
                                 api_visibility="private"),
                      chatbot.example_select(page.take_example, [turns], [box, turns, chatbot], queue=False,
                                             api_visibility="private")):
            answered = taken.then(page.answer, answer_inputs, conversation, concurrency_id="answer",
                                  concurrency_limit=1, show_progress="minimal", api_visibility="private")
            answered.then(page.settle, [turns], [chatbot, turns, box], queue=False, api_visibility="private")
            answers.append(answered)
        box.stop(None, None, None, cancels=answers, queue=False, api_visibility="private")
        for clear in (new.click, chatbot.clear):
            clear(lambda: ([], [], gr.update(value="", submit_btn="Ask", stop_btn=False)), None,
                  [chatbot, turns, box], cancels=answers, queue=False, api_visibility="private")

        library_outputs = [summary, library, to_remove, status]
        # what the page last listed; its own changes update it too, so the poll below does not list the
        # library again (and reset the removal choice) for a change the page has already shown
        seen = gr.State(None)
        upload.upload(page.add_files, [upload, library], [*library_outputs, upload], concurrency_id="library",
                      concurrency_limit=1, api_name="add_articles").then(
            page.seen, None, seen, queue=False, api_visibility="private")
        link.submit(page.add_link, [link, library], [*library_outputs, link], concurrency_id="library",
                    concurrency_limit=1, api_name="add_link").then(
            page.seen, None, seen, queue=False, api_visibility="private")
        remove.click(page.remove_article, [to_remove, library], library_outputs, concurrency_id="library",
                     concurrency_limit=1, api_visibility="private").then(
            page.seen, None, seen, queue=False, api_visibility="private")

        for setting in (model, top_k, temperature):
            setting.change(lambda m, k, t: {"model": m, "top_k": k, "temperature": t}, [model, top_k, temperature],
                           prefs, queue=False, api_visibility="private")
        model.input(page.preload, model, model_note, concurrency_id="load", api_visibility="private")

        # another process may change the index (`qa ingest`, `qa ingest --watch`): a cheap stamp is polled
        gr.Timer(LIBRARY_POLL_S).tick(page.poll_library, [library, seen], [summary, library, to_remove, seen],
                                      queue=False, show_progress="hidden", api_visibility="private")
        app.load(page.on_load, [turns, prefs], [chatbot, turns, model, top_k, temperature, summary, library,
                                                to_remove, seen], api_visibility="private")
        gr.api(page.ask_api, api_name="ask", concurrency_id="answer",  # type: ignore[attr-defined]
               concurrency_limit=1)
    # Beyond queue_size waiting requests, Gradio answers at once that the page is busy (HTTP 503: the page shows
    # "This application is currently busy. Please try again."; gradio_client raises QueueError) instead of
    # holding a request it would take minutes to reach.
    app.queue(default_concurrency_limit=1, max_size=base.settings.queue_size)
    return app  # type: ignore[no-any-return]


# --- serving ---------------------------------------------------------------------------------

THEME = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                       font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"],
                       font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable from this machine only.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0"), is_loopback("::1")
    (True, True, False, True)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``USER:PASSWORD`` as a pair; ``None`` when not given.

    >>> parse_auth("ana:s3cret:x"), parse_auth("")
    (('ana', 's3cret:x'), None)
    """
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user.strip() or not password:
        raise QAError("Credentials must look like USER:PASSWORD (for example --auth ana:a-long-passphrase).")
    return user.strip(), password


def launch_options(host: str, auth: str | None) -> dict[str, Any]:
    """Check the address and credentials; the keyword arguments for ``Blocks.launch``."""
    credentials = parse_auth(auth if auth is not None else os.environ.get("QA_AUTH"))
    if not is_loopback(host) and credentials is None:
        raise QAError(f"Listening on {host} lets other machines open the page, so it needs a login: add "
                      "--auth USER:PASSWORD, or set QA_AUTH=USER:PASSWORD. To keep it on this machine, leave "
                      "out --host (the default is 127.0.0.1).")
    return {"server_name": host, "auth": credentials, "share": False, "inbrowser": False, "show_error": False,
            "quiet": True, "css": CSS, "theme": THEME, "max_file_size": "20mb", "ssr_mode": False,
            "mcp_server": False, "pwa": False,
            "auth_message": "Sign in to ask the articles." if credentials else None}


def serve(host: str = "127.0.0.1", port: int = 7860, auth: str | None = None, eager: bool = False) -> None:
    """Check the address, model and index (or reach their servers), and serve the page.

    The models load in the background once the page is up (questions asked meanwhile wait for
    them; a model that cannot be loaded stops the server with the reason); with ``eager``, they
    are loaded first and the page is served after.
    """
    options = launch_options(host, auth)
    pipeline = get_pipeline()
    if not pipeline.settings.llm_url:
        check_gguf(pipeline.settings.model)
    library = Library(pipeline.store, pipeline.embedder, pipeline.settings.data_dir, pipeline.settings.chunking)
    synced = library.sync_uploads()
    if synced.added or synced.removed:
        print(f"Uploaded articles: {synced.summary()}", flush=True)
    if pipeline.store.count() == 0:
        print("The index is empty: add articles on the page, or run `qa ingest FOLDER`.", flush=True)
    loader = ModelLoader(pipeline)
    if eager:
        loader.load()
    shown = "<this machine's address>" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{port}"
    login = "  (login required)" if options["auth"] else ""
    app = build_app(loading=None if eager else loader)
    app.launch(server_port=port, prevent_thread_lock=True, **options)
    print(f"Chat page: {where}{login}  (Ctrl+C to stop)", flush=True)
    if eager:
        app.block_thread()
        return
    print("Loading the models; questions asked meanwhile wait for them.", flush=True)
    loader.start(report=lambda line: None if loader.error else print(line, flush=True))
    try:
        while app.is_running and not (loader.ready and loader.error):
            time.sleep(0.1)
    except KeyboardInterrupt:
        print("Keyboard interruption in main thread... closing server.", flush=True)
    if loader.error:  # a model that cannot be loaded stops the server, as it would have before serving
        time.sleep(1.0)  # a question waiting for the model gets the message first
        app.close()
        raise QAError(loader.error)
    app.close()
