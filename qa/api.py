"""The plain functions most users call: ``ask``, ``ask_stream``, ``ingest``.

They share one process-wide :class:`~qa.pipeline.Pipeline`, built on first use
from the environment (see :mod:`qa.config`), so models load once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .answer import Answer
from .config import Settings, default_seeds_dir
from .embedder import Embedder, SentenceTransformerEmbedder
from .ingest import IngestReport
from .ingest import ingest as ingest_folder
from .llm import LLM, LlamaCppLLM, OpenAICompatibleLLM
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
                       n_threads_batch=settings.batch_threads)


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


def ask(question: str, history: History = None, *, articles: Sequence[str] | None = None) -> Answer:
    """Answer a question from the indexed articles.

    ``history`` holds the earlier turns, as ``[{"role": ..., "content": ...}]``
    or ``[(question, answer), ...]``; ``articles`` restricts the search to
    these article ids (source file names).
    """
    return get_pipeline().ask(question, history, articles)


def ask_stream(question: str, history: History = None, *,
               articles: Sequence[str] | None = None) -> Iterator[str | Answer]:
    """Like :func:`ask`, yielding text as it is generated and then the :class:`Answer`."""
    return get_pipeline().ask_stream(question, history, articles)


def ingest(folder: str | Path | None = None, *, rebuild: bool = False,
           progress: Callable[[int, int], None] | None = None) -> IngestReport:
    """Index the articles of ``folder`` (default: the bundled ``seeds/``)."""
    pipeline = get_pipeline()
    return ingest_folder(Path(folder) if folder else default_seeds_dir(), pipeline.store, pipeline.embedder,
                         pipeline.settings.data_dir, pipeline.settings.chunking, progress=progress,
                         rebuild=rebuild)
