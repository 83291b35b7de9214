"""The ``qa`` command.

    qa setup                 provision the default answering model into models/
    qa ingest [FOLDER]       index a folder of articles (default: seeds/); --watch: keep it in step
    qa ingest URL...         fetch the articles at these web addresses and index them
    qa ask "QUESTION"        answer from the articles, with sources (--since/--until DATE: dated articles only)
    qa articles              list the indexed articles
    qa serve                 start the chat page (http://127.0.0.1:7860)
    qa eval FILE             measure answer quality on a question set (--articles FOLDER: on any folder)
    qa judge FILE            measure the support judge on hand-made cases
    qa bench                 measure speed: answers against raw llama.cpp, retrieval, ingest, start-up

``--chroma-url`` and ``--llm-url`` (or QA_CHROMA_URL and QA_LLM_URL) point
ingest, ask, articles and serve at a Chroma server and an OpenAI-compatible
LLM server instead of the embedded store and the in-process model.

Library errors are turned into one line on stderr and exit code 2 here, and
only here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import QAError


def _parser() -> argparse.ArgumentParser:
    from .checks import SWITCHABLE
    from .config import PRESETS

    parser = argparse.ArgumentParser(prog="qa", description="Ask questions of news articles with a local model; "
                                     "every answer cites the passages it came from.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    servers = argparse.ArgumentParser(add_help=False)
    servers.add_argument("--chroma-url", metavar="URL",
                         help="use the Chroma server at URL, e.g. http://HOST:8000 (default: $QA_CHROMA_URL, "
                              "else the local index)")
    servers.add_argument("--llm-url", metavar="URL",
                         help="answer with the OpenAI-compatible server at URL, e.g. http://HOST:8080/v1 "
                              "(default: $QA_LLM_URL, else the local model)")

    sub.add_parser("setup", help="provision the default answering model into the models folder")

    ing = sub.add_parser("ingest", parents=[servers], help="index a folder of .txt, .md, .html and .pdf articles, "
                         "or the articles at web addresses")
    ing.add_argument("folder", nargs="*", metavar="FOLDER | URL",
                     help="folder of articles (default: the bundled seeds/), or one or more http(s) addresses of "
                          "articles")
    ing.add_argument("--rebuild", action="store_true", help="drop the index and build it anew")
    ing.add_argument("--watch", action="store_true",
                     help="then keep watching the folder and apply articles added, edited and removed, "
                          "until Ctrl+C or SIGTERM")

    ask = sub.add_parser("ask", parents=[servers], help="answer a question from the indexed articles")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print one JSON object: text, answered, citations")
    ask.add_argument("--article", action="append", metavar="SOURCE",
                     help="only use this article (its file name); may be repeated")
    ask.add_argument("--since", metavar="DATE",
                     help="only use articles dated DATE (YYYY-MM-DD) or later; leaves out undated articles")
    ask.add_argument("--until", metavar="DATE",
                     help="only use articles dated DATE (YYYY-MM-DD) or earlier; leaves out undated articles")

    sub.add_parser("articles", parents=[servers], help="list the indexed articles")

    ev = sub.add_parser("eval", parents=[servers], help="measure answer quality on a question set")
    ev.add_argument("file", type=Path, help="question set, JSON lines (e.g. qa/evalsets/bolivia.jsonl)")
    ev.add_argument("--json", type=Path, metavar="OUT", help="also write the metrics and every answer as JSON")
    ev.add_argument("--limit", type=int, help="only the first N questions")
    ev.add_argument("--preset", default="default", choices=sorted(PRESETS),
                    help="pipeline settings to evaluate (default: default)")
    ev.add_argument("--compare", choices=sorted(PRESETS), metavar="PRESET", nargs="+", default=[],
                    help="also run these presets in the same session, taking turns question by question, and "
                         "report each one's latency ratio")
    ev.add_argument("--articles", type=Path, metavar="FOLDER",
                    help="ingest FOLDER into a temporary index and measure against it (default: the index)")
    ev.add_argument("--without", action="append", default=[], metavar="CHECK",
                    help=f"switch this check off in the presets measured; may be repeated ({', '.join(SWITCHABLE)})")
    ev.add_argument("--judge-threshold", type=float, metavar="T",
                    help="the support judge's threshold (0 refuses nothing, to draw the threshold curve)")
    ev.add_argument("--sure-refusal", type=float, metavar="P",
                    help="with --preset read-on: stop after a first reading the model refused more surely "
                         "than P (1 reads on)")
    ev.add_argument("--doubt", type=float, metavar="P",
                    help="refuse an answer whose reply the model would have begun with NOT FOUND at P or more "
                         "(1 records it and refuses nothing)")
    ev.add_argument("--seed", type=int, default=0, metavar="N",
                    help="the local model's sampling seed (default 0; not sent to a server); another one shows how "
                         "far the figures move with the model's sampling alone")
    ev.add_argument("--retrieval-only", action="store_true",
                    help="no model: where retrieval puts a gold answer, for every answerable question")

    jd = sub.add_parser("judge", parents=[servers], help="measure the support judge on hand-made cases")
    jd.add_argument("file", type=Path, help="judge cases, JSON lines (e.g. tests/data/judge-cases.jsonl)")
    jd.add_argument("--threshold", type=float, help="the threshold to score at (default: the setting's)")
    jd.add_argument("--json", type=Path, metavar="OUT", help="also write every case's score as JSON")

    serve = sub.add_parser("serve", parents=[servers], help="start the chat page")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    serve.add_argument("--auth", metavar="USER:PASSWORD",
                       help="require this login (or set QA_AUTH=USER:PASSWORD); needed with any --host other "
                            "than 127.0.0.1/localhost")
    serve.add_argument("--eager", action="store_true",
                       help="load the models before serving the page (by default the page is served at once "
                            "and questions asked while the models load wait for them)")

    from .bench import add_arguments

    add_arguments(sub.add_parser("bench", help="measure answer, retrieval, ingest and start-up speed; "
                                 "writes JSON and a markdown table"))
    return parser


def _progress_bar(desc: str):  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit="passage", file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _print_answer(answer, streamed: str | None = None) -> None:  # type: ignore[no-untyped-def]
    if streamed is None:
        print(answer.text)
    elif " ".join(streamed.split()) != " ".join(answer.text.split()):
        print(f"\n\nAfter checking the citations:\n{answer.text}")
    else:
        print()
    if not answer.answered and answer.refused_by:
        print(f"(refused by the {answer.refused_by} check: {answer.reason})")
    if answer.note:
        print(f"({answer.note})")
    if answer.citations:
        print("\nSources:")
        for c in answer.citations:
            about = ", ".join(x for x in (c.outlet, c.date) if x)
            print(f"[{c.number}] {c.article}{f' — {about}' if about else ''} ({c.source})")
            quote = " ".join(c.quote.split())
            print(textwrap.fill(f"“{quote}”", width=100, initial_indent="    ", subsequent_indent="    "))


def _ask(args: argparse.Namespace) -> int:
    from .answer import Answer
    from .api import ask_stream

    stream = not args.json and sys.stdout.isatty()
    streamed: list[str] = []
    answer: Answer | None = None
    for item in ask_stream(args.question, articles=args.article, since=args.since, until=args.until):
        if isinstance(item, Answer):
            answer = item
        elif stream and isinstance(item, str):
            streamed.append(item)
            print(item, end="", flush=True)
    assert answer is not None
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_answer(answer, "".join(streamed) if stream else None)
    return 0


def _ingest(args: argparse.Namespace) -> int:
    """A folder (default: the seeds), or web addresses, each added on its own."""
    from .api import ingest, ingest_link
    from .config import default_seeds_dir
    from .links import looks_like_url

    urls = [t for t in args.folder if looks_like_url(t)]
    if not urls:
        if len(args.folder) > 1:
            raise QAError("Name one folder to ingest (or web addresses of articles), not several.")
        folder = Path(args.folder[0]) if args.folder else default_seeds_dir()
        report = ingest(folder, rebuild=args.rebuild, progress=_progress_bar("Embedding"))
        print(report.summary())
        return 0
    if len(urls) < len(args.folder):
        raise QAError("Name either one folder or web addresses of articles, not both.")
    if args.rebuild:
        raise QAError("--rebuild builds the index anew from a folder (and the pages added before); run "
                      "`qa ingest --rebuild` alone, then add the addresses.")
    failed = 0
    for url in urls:
        try:
            print(ingest_link(url, progress=_progress_bar("Embedding")).summary(), flush=True)
        except QAError as exc:
            print(f"qa: {exc} Nothing was changed.", file=sys.stderr, flush=True)
            failed += 1
    return 2 if failed else 0


def _eval(args: argparse.Namespace) -> int:
    import tempfile

    from .checks import check_names

    try:
        without = check_names([n for item in args.without for n in item.split(",")])
    except ValueError as exc:
        raise QAError(str(exc)) from exc
    if args.judge_threshold is not None and not 0.0 <= args.judge_threshold <= 1.0:
        raise QAError(f"--judge-threshold must be between 0 and 1, not {args.judge_threshold}.")
    if args.sure_refusal is not None and not 0.0 <= args.sure_refusal <= 1.0:
        raise QAError(f"--sure-refusal must be between 0 and 1, not {args.sure_refusal}.")
    if not 0 <= args.seed < 2**32 - 1:  # llama.cpp takes 2**32 - 1 for "a random seed"
        raise QAError(f"--seed must be a whole number from 0 to {2**32 - 2}, not {args.seed}.")
    if args.doubt is not None and not 0.0 <= args.doubt <= 1.0:
        raise QAError(f"--doubt must be between 0 and 1, not {args.doubt}.")
    if args.articles is None:
        return _eval_on(args, None, without)
    if not args.articles.is_dir():
        raise QAError(f"No folder of articles at {args.articles}.")
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        return _eval_on(args, Path(tmp), without)


def _eval_on(args: argparse.Namespace, data_dir: Path | None, without: frozenset[str]) -> int:
    import dataclasses

    from .api import build_llm, build_pipeline, get_pipeline
    from .config import PRESETS, Settings
    from .evaluate import (
        Record,
        check_table,
        doubt_curve,
        format_table,
        judge_curve,
        latency_ratios,
        load_questions,
        records_json,
        run_question,
        summarise,
    )
    from .ingest import ingest

    questions = load_questions(args.file)[: args.limit or None]
    if data_dir is None:
        base = get_pipeline()
    else:  # a temporary index of the folder: never the user's index, nor a Chroma server
        base = build_pipeline(Settings(data_dir=data_dir, chroma_url=None))
        ingested = ingest(args.articles, base.store, base.embedder, data_dir, base.settings.chunking,
                          progress=_progress_bar("Embedding"))
        print(ingested.summary(), file=sys.stderr, flush=True)
    if args.retrieval_only:
        return _eval_retrieval(args, base, questions)
    presets = list(dict.fromkeys([args.preset, *args.compare]))
    results: dict[str, dict[str, Any]] = {}
    records: dict[str, list[dict[str, Any]]] = {}
    # what was measured: an index left from an earlier ingest (other passage sizes) gives other figures
    stored = base.store.all_passages()
    index = {"data_dir": str(base.settings.data_dir), "articles": len({p.article_id for p in stored}),
             "passages": len(stored),
             "median_passage_chars": int(statistics.median(len(p.text) for p in stored)) if stored else 0}
    print(f"Index: {index['passages']} passages of {index['articles']} articles (median "
          f"{index['median_passage_chars']} characters) in {index['data_dir']}", file=sys.stderr, flush=True)
    curves: dict[str, Any] = {}
    doubts: dict[str, Any] = {}
    tables: dict[str, Any] = {}

    def write() -> None:
        if args.json:
            args.json.write_text(json.dumps({"file": str(args.file), "model": str(base.settings.model),
                                             "seed": None if base.settings.llm_url else args.seed,
                                             "articles": str(args.articles or ""), "without": sorted(without),
                                             "index": index, "metrics": results, "judge_curve": curves,
                                             "doubt_curve": doubts,
                                             "check_table": tables, "records": records},
                                            ensure_ascii=False, indent=2))

    def report() -> None:
        for other in presets[1:]:
            results[presets[0]]["latency_ratios_vs_" + other] = latency_ratios(results[presets[0]], results[other])
        print(format_table(results), flush=True)
        for other in presets[1:]:
            shown = {key: "—" if value is None else f"{value:.2f}×"
                     for key, value in results[presets[0]]["latency_ratios_vs_" + other].items()}
            print(f"{presets[0]} against {other}: median latency {shown['median']}, p90 {shown['p90']}, "
                  f"first word of an answer {shown['first_word']}, refusal {shown['refusal']} {other}'s "
                  "median latency", flush=True)
        for preset, by in ((p, results[p].get("refused_by")) for p in presets):
            if by and (by["answerable"] or by["unanswerable"]):
                print(f"{preset}: refused, by check: unanswerable {by['unanswerable']}; "
                      f"answerable {by['answerable']}", flush=True)
        write()

    # The presets take turns question by question (each going first in turn), so a change in the
    # machine's load over a long run weighs on all alike. Each preset has its own in-process
    # model, so each keeps its own prompt prefix in llama.cpp's cache, as it would running alone.
    # Every check runs on every answer (audit), so the records show what each one refuses alone.
    pipelines = {}
    for n, preset in enumerate(presets):
        changes: dict[str, Any] = {**PRESETS[preset], "audit": True, "seed": args.seed}
        changes["without"] = frozenset(changes.get("without", frozenset())) | without
        if args.judge_threshold is not None:
            changes["judge_threshold"] = args.judge_threshold
        if args.sure_refusal is not None:
            changes["sure_refusal"] = args.sure_refusal
        if args.doubt is not None:
            changes["doubt"] = args.doubt
        settings = dataclasses.replace(base.settings, **changes)
        llm = base.llm if (n == 0 and settings.seed == base.settings.seed) or settings.llm_url else build_llm(settings)
        pipelines[preset] = dataclasses.replace(base, settings=settings, llm=llm)
    run_records: dict[str, list[Record]] = {preset: [] for preset in presets}
    thresholds = [round(0.05 * i, 2) for i in range(21)]
    for i, question in enumerate(questions, 1):
        shift = (i - 1) % len(presets)
        for preset in presets[shift:] + presets[:shift]:
            record = run_question(pipelines[preset], question)
            run_records[preset].append(record)
            mark = "ok " if record.correct else "BAD"
            refused = f" [{record.refused_by}]" if record.refused_by else ""
            print(f"[{preset} {i}/{len(questions)}] {mark} {record.id} {record.latency_s:5.1f}s{refused} "
                  f"{record.text[:90]!r}", file=sys.stderr, flush=True)
        if i % 10 == 0 or i == len(questions):  # a long run keeps what it has measured
            for preset in presets:
                results[preset] = summarise(run_records[preset], pipelines[preset].settings.top_k)
                records[preset] = records_json(run_records[preset])
                if pipelines[preset].settings.check:
                    curves[preset] = judge_curve(run_records[preset], thresholds)
                    doubts[preset] = doubt_curve(run_records[preset], thresholds)
                    tables[preset] = check_table(run_records[preset], pipelines[preset].settings.judge_threshold)
            if i < len(questions):
                write()
    report()
    return 0


def _eval_retrieval(args: argparse.Namespace, pipeline: Any, questions: Sequence[Any]) -> int:
    """Where retrieval puts a gold answer, for every answerable question (no model is loaded), with
    the settings of ``--preset``."""
    import dataclasses

    from .config import PRESETS
    from .evaluate import RetrievalRecord, answer_rank, retrieval_figures
    from .excerpt import estimate_tokens
    from .pipeline import normalise_history

    settings = dataclasses.replace(pipeline.settings, **PRESETS[args.preset])
    pipeline = dataclasses.replace(pipeline, settings=settings)

    rows = []
    for q in questions:
        if not q.answerable:
            continue
        passages, read, reread = pipeline.found_and_read(q.question, normalise_history(q.history))
        article = next((n for n, p in enumerate(passages, 1) if p.source in q.articles), 0)
        rows.append(RetrievalRecord(q.id, answer_rank(q, passages), article, answer_rank(q, read) > 0,
                                    sum(estimate_tokens(p.text) for p in read), answer_rank(q, reread) > 0,
                                    sum(estimate_tokens(p.text) for p in reread)))
    figures = retrieval_figures(rows, pipeline.settings.top_k, pipeline.settings.narrow_k)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"file": str(args.file), "articles": str(args.articles or ""),
                                         "retrieval": figures, "records": [vars(r) for r in rows]}, indent=2))
    return 0


def _judge(args: argparse.Namespace) -> int:
    from .api import build_checker, build_llm
    from .config import Settings
    from .judge import SupportJudge, load_cases, pass_rates

    cases = load_cases(args.file)
    settings = Settings()
    judge = SupportJudge(build_checker(settings) or build_llm(settings))
    threshold = settings.judge_threshold if args.threshold is None else args.threshold
    scores = []
    for c in cases:
        score = judge.score(c.question, c.quotes)
        scores.append(score)
        mark = "ok " if (score is None or score >= threshold) == c.supported else "BAD"
        shown = "—" if score is None else f"{score:.3f}"
        print(f"{mark} {c.kind:<10} {shown:>6}  {c.question}  →  {c.answer}", flush=True)
    rates = pass_rates(cases, scores, threshold)
    print(f"right at threshold {threshold:g}: " + ", ".join(f"{k} {v:.2f}" for k, v in rates.items()))
    if args.json:
        scored = [{**vars(c), "score": s} for c, s in zip(cases, scores, strict=True)]
        args.json.write_text(json.dumps({"file": str(args.file), "threshold": threshold, "pass_rates": rates,
                                         "cases": scored}, ensure_ascii=False, indent=2))
    return 0


def _watch(args: argparse.Namespace) -> int:
    from .api import watch_folder
    from .config import default_seeds_dir
    from .links import looks_like_url

    if len(args.folder) > 1 or any(looks_like_url(t) for t in args.folder):
        raise QAError("--watch follows one folder: name it alone (web addresses are added without --watch).")
    folder = Path(args.folder[0]) if args.folder else default_seeds_dir()
    try:
        watch_folder(folder, rebuild=args.rebuild, progress=_progress_bar("Embedding"),
                     say=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(f"Stopped watching {folder}.", flush=True)
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "setup":
        from .config import Settings
        from .embedder import default_embedder_path
        from .provision import ensure_default_model

        settings = Settings()
        path = ensure_default_model(settings.models_dir)
        print(f"Answering model: {path}")
        source = settings.embedder_path or default_embedder_path()
        print(f"Embedding model: {source}")
        if settings.embedder_backend != "torch":
            from .onnx_embedder import ensure_onnx

            exported = ensure_onnx(source, settings.models_dir, settings.embedder_backend,
                                   say=lambda line: print(line, file=sys.stderr, flush=True))
            print(f"Embedding model run by onnxruntime ({settings.embedder_backend}): {exported}")
        return 0
    if args.command == "ingest" and args.watch:
        return _watch(args)
    if args.command == "ingest":
        return _ingest(args)
    if args.command == "ask":
        return _ask(args)
    if args.command == "articles":
        from .api import get_pipeline

        rows = get_pipeline().store.articles()
        if not rows:
            print("The index is empty. Add articles with `qa ingest FOLDER` or `qa ingest URL`.")
        for row in rows:
            about = " · ".join(str(row[key]) for key in ("outlet", "author", "date") if row[key])
            print(f"{row['source']}: {row['title']}{f' — {about}' if about else ''} ({row['passages']} passages)")
        return 0
    if args.command == "eval":
        return _eval(args)
    if args.command == "judge":
        return _judge(args)
    if args.command == "serve":
        from .web import serve

        serve(host=args.host, port=args.port, auth=args.auth, eager=args.eager)
        return 0
    if args.command == "bench":
        from .bench import run_from_args

        return run_from_args(args)
    raise AssertionError(args.command)  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    args = _parser().parse_args(argv)
    # The flags win over the environment; Settings reads both from there.
    if getattr(args, "chroma_url", None):
        os.environ["QA_CHROMA_URL"] = args.chroma_url
    if getattr(args, "llm_url", None):
        os.environ["QA_LLM_URL"] = args.llm_url
    try:
        return _run(args)
    except QAError as exc:
        print(f"qa: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qa: interrupted.", file=sys.stderr)
        return 130
