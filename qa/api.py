"""The plain functions most users call: ``ask``, ``ask_stream``, ``ingest``, ``ingest_link``,
``watch_folder``.

They share one process-wide :class:`~qa.pipeline.Pipeline`, built on first use
from the environment (see :mod:`qa.config`), so models load once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .answer import Answer, Retrieved
from .config import Settings, default_seeds_dir
from .embedder import Embedder, SentenceTransformerEmbedder
from .fetch import address_policy
from .ingest import IngestReport, LinkResult
from .ingest import ingest as ingest_folder
from .ingest import ingest_link as ingest_page
from .llm import LLM, LlamaCppLLM, OpenAICompatibleLLM
from .period import DateLike
from .pipeline import History, Pipeline
from .rerank import CrossEncoderReranker
from .store import ChromaStore

_lock = threading.Lock()
_pipeline: Pipeline | None = None


def build_llm(settings: Settings) -> LLM:
    """The answering model: an OpenAI-compatible server if ``llm_url`` is set, else the local GGUF."""
    if settings.llm_url:
        return OpenAICompatibleLLM(settings.llm_url, model=settings.llm_model, api_key=settings.llm_key)
    return LlamaCppLLM(settings.model, n_ctx=settings.context_tokens, n_threads=settings.threads,
                       n_threads_batch=settings.batch_threads, seed=settings.seed)


def build_checker(settings: Settings) -> LLM | None:
    """The support judge's model (:mod:`qa.judge`): a second context of the local GGUF, so its
    prompts never push the answering prompt's prefix out of llama.cpp's cache (the file's pages are
    shared), and its own fixed start stays cached. Its context is as long as the answering one's: a
    case holds quotes of passages that were in the answer's prompt. ``None``, the answering model
    itself, for a server."""
    if settings.llm_url or not settings.check or "judge" in settings.without:
        return None
    return build_llm(settings)


def build_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings.embedder_backend`` names: the model run by onnxruntime, or by sentence-transformers."""
    if settings.embedder_backend == "torch":
        return SentenceTransformerEmbedder(settings.embedder_path)
    from .onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(settings.embedder_path, settings.models_dir, settings.embedder_backend)


def build_pipeline(settings: Settings | None = None) -> Pipeline:
    """A pipeline over the real backends: sentence-transformers, Chroma (local or a server) and
    llama.cpp (in-process, or any OpenAI-compatible server)."""
    settings = settings or Settings()
    embedder = build_embedder(settings)
    store = ChromaStore(settings.chroma_dir, url=settings.chroma_url, embedder_name=embedder.name)
    reranker = CrossEncoderReranker(settings.reranker_path) if settings.reranker_path else None
    return Pipeline(store=store, embedder=embedder, llm=build_llm(settings), settings=settings,
                    reranker=reranker, checker=build_checker(settings))


def get_pipeline() -> Pipeline:
    """The process-wide pipeline, built on first use."""
    global _pipeline
    with _lock:
        if _pipeline is None:
            _pipeline = build_pipeline()
        return _pipeline


def set_pipeline(pipeline: Pipeline | None) -> None:
    """Replace (or, with ``None``, forget) the process-wide pipeline."""
    global _pipeline
    with _lock:
        _pipeline = pipeline


def ask(question: str, history: History = None, *, articles: Sequence[str] | None = None,
        since: DateLike = None, until: DateLike = None) -> Answer:
    """Answer a question from the indexed articles.

    ``history`` holds the earlier turns, as ``[{"role": ..., "content": ...}]``
    or ``[(question, answer), ...]``; ``articles`` restricts the search to
    these article ids (source file names); ``since`` and ``until`` (a
    ``datetime.date`` or ``"YYYY-MM-DD"``, both days included, either optional)
    to the articles dated in that period: undated articles are left out, and
    ``Answer.undated`` says how many.
    """
    return get_pipeline().ask(question, history, articles, since=since, until=until)


def ask_stream(question: str, history: History = None, *, articles: Sequence[str] | None = None,
               since: DateLike = None, until: DateLike = None) -> Iterator[Retrieved | str | Answer]:
    """Like :func:`ask`, streamed: first the passages found (:class:`~qa.answer.Retrieved`), as soon as
    the search is done; then the answer's text, piece by piece (``str``); last the :class:`Answer`."""
    return get_pipeline().ask_stream(question, history, articles, since=since, until=until)


def ingest(folder: str | Path | None = None, *, rebuild: bool = False,
           progress: Callable[[int, int], None] | None = None) -> IngestReport:
    """Index the articles of ``folder`` (default: the bundled ``seeds/``)."""
    pipeline = get_pipeline()
    return ingest_folder(Path(folder) if folder else default_seeds_dir(), pipeline.store, pipeline.embedder,
                         pipeline.settings.data_dir, pipeline.settings.chunking, progress=progress,
                         rebuild=rebuild)


def ingest_link(url: str, *, progress: Callable[[int, int], None] | None = None) -> LinkResult:
    """Fetch the article at the web address ``url`` and index it (again: only changes are applied).

    Hosts on this machine or its network are refused unless ``QA_ALLOW_PRIVATE_LINKS=1``.
    """
    pipeline = get_pipeline()
    settings = pipeline.settings
    return ingest_page(url, pipeline.store, pipeline.embedder, settings.data_dir, settings.chunking,
                       progress=progress, allowed=address_policy(settings.allow_private_links))


def watch_folder(folder: str | Path | None = None, *, rebuild: bool = False,
                 progress: Callable[[int, int], None] | None = None,
                 say: Callable[[str], None] = print) -> IngestReport:
    """Index ``folder`` (default: the bundled ``seeds/``), then keep the index in step with it as
    articles are added, edited and removed, until Ctrl+C or SIGTERM (:class:`KeyboardInterrupt`; from
    the main thread, and SIGTERM only where the program has no handler of its own) or the folder goes
    away. ``say`` gets one line per change applied. Returns the first ingest's report."""
    from .watch import follow_folder

    pipeline = get_pipeline()
    return follow_folder(Path(folder) if folder else default_seeds_dir(), pipeline.store, pipeline.embedder,
                         pipeline.settings.data_dir, pipeline.settings.chunking, say=say, progress=progress,
                         rebuild=rebuild)
