"""The chat page (Gradio).

One page: the conversation, streamed token by token; under every answer its
sources, each with the article title, outlet and the quoted sentence(s), and
the whole passage (quote highlighted) one click away. Article text and model
output are HTML-escaped before display, so markup inside an article is shown,
never run.

The same app serves an API endpoint ``/ask`` that returns the JSON of
``qa ask --json``, for ``gradio_client`` callers.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from .answer import Answer, Citation
from .api import get_pipeline
from .errors import QAError
from .llm import check_gguf
from .pipeline import Pipeline

EXAMPLES = [
    "What was the voter turnout in the October 2020 election?",
    "How many seats did the MAS win in the lower house?",
    "Who led the coup regime?",
    "Why is the MAS not a traditional political party?",
]

CSS = """
.qa-sources { margin-top: .6em; border-top: 1px solid #ddd; padding-top: .4em; font-size: .92em; }
.qa-source { margin: .35em 0; }
.qa-source q { display: block; margin: .2em 0 .2em 1em; font-style: italic; }
.qa-source mark { background: #fff3a8; }
"""


def _text(value: str) -> str:
    """Escape text for the Markdown/HTML chat display.

    >>> _text("<script>x</script> *a*")
    '&lt;script&gt;x&lt;/script&gt; \\\\*a\\\\*'
    """
    escaped = html.escape(value, quote=False)
    for char in "\\`*_{}#|~":
        escaped = escaped.replace(char, "\\" + char)
    return escaped


def _source_html(citation: Citation) -> str:
    outlet = f" — {html.escape(citation.outlet)}" if citation.outlet else ""
    quote = " ".join(citation.quote.split())
    passage = citation.passage or citation.quote
    at = passage.find(citation.quote)
    if at >= 0:
        whole = (html.escape(passage[:at]) + "<mark>" + html.escape(citation.quote) + "</mark>"
                 + html.escape(passage[at + len(citation.quote):]))
    else:
        whole = html.escape(passage)
    return (f'<div class="qa-source"><b>[{citation.number}]</b> <b>{html.escape(citation.article)}</b>{outlet} '
            f'<small>({html.escape(citation.source)})</small><q>{html.escape(quote)}</q>'
            f"<details><summary>Whole passage</summary><blockquote>{whole}</blockquote></details></div>")


def render_answer(answer: Answer) -> str:
    """The chat message for a finished answer: text, then its sources."""
    body = _text(answer.text)
    if not answer.citations:
        return body
    sources = "".join(_source_html(c) for c in answer.citations)
    return f'{body}\n\n<div class="qa-sources"><b>Sources</b>{sources}</div>'


def _respond(pipeline_factory: Callable[[], Pipeline]) -> Callable[..., Iterator[tuple[Any, Any, str]]]:
    def respond(question: str, chat: list[dict[str, Any]], history: list[dict[str, str]]
                ) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, str]], str]]:
        chat = [*(chat or []), {"role": "user", "content": _text(question or "")},
                {"role": "assistant", "content": "…"}]
        yield chat, history, ""
        partial = ""
        try:
            for item in pipeline_factory().ask_stream(question, history):
                if isinstance(item, Answer):
                    chat[-1] = {"role": "assistant", "content": render_answer(item)}
                    history = [*history, {"role": "user", "content": item.question},
                               {"role": "assistant", "content": item.text}]
                else:
                    partial += item
                    chat[-1] = {"role": "assistant", "content": _text(partial)}
                yield chat, history, ""
        except QAError as exc:
            chat[-1] = {"role": "assistant", "content": f"⚠️ {_text(str(exc))}"}
            yield chat, history, ""

    return respond


def _ask_api(pipeline_factory: Callable[[], Pipeline]) -> Callable[..., dict[str, Any]]:
    def ask(question: str, history: list[dict[str, str]] | None = None,
            articles: list[str] | None = None) -> dict[str, Any]:
        """Answer a question; returns {"text", "answered", "citations"} like `qa ask --json`."""
        try:
            return pipeline_factory().ask(question, history or None, articles or None).to_dict()
        except QAError as exc:
            return {"text": str(exc), "answered": False, "citations": [], "error": str(exc)}

    return ask


def build_app(pipeline_factory: Callable[[], Pipeline] = get_pipeline) -> gr.Blocks:
    """The chat page, over the pipeline that ``pipeline_factory`` returns."""
    with gr.Blocks(title="Ask the articles") as app:
        gr.Markdown("## Ask the articles\nAnswers come only from the indexed articles, run by a local model. "
                    "Every claim cites its passage; when the articles do not say, the answer says so.")
        chatbot = gr.Chatbot(label="Conversation", height=560, elem_id="qa-chat")
        history = gr.State([])
        with gr.Row():
            box = gr.Textbox(placeholder="Ask a question about the articles…", show_label=False, scale=8,
                             elem_id="qa-question", autofocus=True)
            send = gr.Button("Ask", variant="primary", scale=1, elem_id="qa-ask")
        new = gr.Button("New conversation", size="sm")
        gr.Examples(EXAMPLES, inputs=box, label="Examples")

        respond = _respond(pipeline_factory)
        box.submit(respond, [box, chatbot, history], [chatbot, history, box], api_name="chat")
        send.click(respond, [box, chatbot, history], [chatbot, history, box], api_visibility="private")
        new.click(lambda: ([], [], ""), None, [chatbot, history, box], api_visibility="private")
        gr.api(_ask_api(pipeline_factory), api_name="ask")  # type: ignore[attr-defined]
    app.queue(default_concurrency_limit=1, max_size=32)
    return app  # type: ignore[no-any-return]


def serve(host: str = "127.0.0.1", port: int = 7860) -> None:
    """Check the model and index (or reach their servers), load them, and serve the page until interrupted."""
    pipeline = get_pipeline()
    if not pipeline.settings.llm_url:
        check_gguf(pipeline.settings.model)
    if pipeline.store.count() == 0:
        raise QAError("The index is empty. Index articles first with `qa ingest FOLDER` (or `qa ingest` for the "
                      "bundled ones).")
    load = getattr(pipeline.llm, "load", None)
    if callable(load):
        load()
    pipeline.embedder.embed(["warm up"])
    print(f"Chat page: http://{host}:{port}  (Ctrl+C to stop)", flush=True)
    build_app().launch(server_name=host, server_port=port, share=False, inbrowser=False, show_error=True,
                       css=CSS, quiet=True)
