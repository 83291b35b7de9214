"""``qa bench --embedders FOLDER``: the embedder backends side by side on one folder's passages.

Every backend (sentence-transformers on torch, the ONNX export in fp32, and in
int8) embeds the same passages, exactly as ``qa ingest`` hands them over
(title and text, in batches of 64), and then ``qa ingest`` indexes the folder
with it into a fresh temporary index. The backends take turns within each run,
in a rotating order, so all meet the same load on the machine; figures are
medians over the runs, and rates are set against torch's embedding rate.
Each backend's vectors are also compared with torch's (cosine per passage).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bench import machine_info, median

Log = Callable[[str], None]
BACKENDS = ("torch", "onnx-fp32", "onnx-int8")
INGEST_BATCH = 64  # the texts qa ingest hands the embedder at once (qa.ingest.ingest's batch_size)


def compare_embedders(folder: Path, models_dir: Path, runs: int = 3, log: Log = lambda line: None,
                      embedder_path: Path | None = None) -> dict[str, Any]:
    """Embedding and ingest rates (passages/s) of each backend on ``folder``; see the module docstring."""
    import numpy as np

    from .api import build_embedder
    from .articles import load_folder
    from .config import Settings
    from .ingest import article_passages, ingest
    from .store import ChromaStore

    machine = machine_info()  # the load average before
    articles, _ = load_folder(folder)
    passages = [p for a in articles for p in article_passages(a)]
    texts = [f"{p.title}\n{p.text}" for p in passages]
    if not texts:
        raise ValueError(f"no passages in {folder}")
    embedders = {b: build_embedder(Settings(embedder_backend=b, embedder_path=embedder_path, models_dir=models_dir))
                 for b in BACKENDS}
    vectors = {}
    for backend, embedder in embedders.items():  # load (and export) each, then its vectors
        log(f"{backend}: {embedder.name}")
        vectors[backend] = np.array(embedder.embed(texts))
    batch = INGEST_BATCH
    embed_s: dict[str, list[float]] = {b: [] for b in BACKENDS}
    ingest_s: dict[str, list[float]] = {b: [] for b in BACKENDS}
    with tempfile.TemporaryDirectory(prefix="qa-bench-embedders-") as tmp:
        for run in range(runs):
            order = BACKENDS[run % len(BACKENDS):] + BACKENDS[:run % len(BACKENDS)]
            for backend in order:
                embedder = embedders[backend]
                started = time.perf_counter()
                for i in range(0, len(texts), batch):
                    embedder.embed(texts[i:i + batch])
                embed_s[backend].append(time.perf_counter() - started)
                data = Path(tmp) / f"{backend}-{run}"
                store = ChromaStore(data / "chroma", embedder_name=embedder.name)
                started = time.perf_counter()
                ingest(folder, store, embedder, data)
                ingest_s[backend].append(time.perf_counter() - started)
                store.close()
                log(f"run {run + 1}/{runs} {backend}: embedding {len(texts) / embed_s[backend][-1]:.1f}/s, "
                    f"qa ingest {len(texts) / ingest_s[backend][-1]:.1f}/s")
    torch_rate = len(texts) / median(embed_s["torch"])
    rows = {}
    for backend in BACKENDS:
        embed_rate, ingest_rate = len(texts) / median(embed_s[backend]), len(texts) / median(ingest_s[backend])
        cosines = (vectors[backend] * vectors["torch"]).sum(axis=1)
        rows[backend] = {"name": embedders[backend].name, "embed_per_s": round(embed_rate, 2),
                         "ingest_per_s": round(ingest_rate, 2), "embed_vs_torch": round(embed_rate / torch_rate, 2),
                         "ingest_vs_torch_embedding": round(ingest_rate / torch_rate, 2),
                         "cosine_to_torch_min": round(float(cosines.min()), 4),
                         "cosine_to_torch_mean": round(float(cosines.mean()), 4)}
    return {"folder": str(folder), "passages": len(texts), "runs": runs, "batch": batch,
            "machine": {**machine, "load_average_after": [round(x, 2) for x in os.getloadavg()]},
            "backends": rows}


def render(report: dict[str, Any]) -> str:
    """The comparison as a markdown table."""
    m = report["machine"]
    lines = [f"{report['passages']} passages of {report['folder']}, batches of {report['batch']}, medians of "
             f"{report['runs']} runs; {m['cores']} cores, load average {' / '.join(map(str, m['load_average']))} "
             f"before, {' / '.join(map(str, m['load_average_after']))} after.", "",
             "| backend | embedding /s | × torch | `qa ingest` /s | × torch embedding | cosine to torch (min / mean) |",
             "|---|---|---|---|---|---|"]
    for backend, r in report["backends"].items():
        lines.append(f"| {backend} | {r['embed_per_s']:.1f} | {r['embed_vs_torch']:.2f} | {r['ingest_per_s']:.1f} | "
                     f"{r['ingest_vs_torch_embedding']:.2f} | {r['cosine_to_torch_min']:.4f} / "
                     f"{r['cosine_to_torch_mean']:.4f} |")
    return "\n".join(lines)


def run_from_args(folder: Path, runs: int, out: Path | None) -> int:
    from .config import Settings

    settings = Settings(chroma_url=None)
    report = compare_embedders(folder, settings.models_dir, runs,
                               log=lambda line: print(line, file=sys.stderr, flush=True),
                               embedder_path=settings.embedder_path)
    print(render(report))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "embedders.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "embedders.md").write_text(render(report) + "\n")
        print(f"\nWrote {out / 'embedders.json'} and {out / 'embedders.md'}.")
    return 0
