"""What each `qa` subcommand does, over `qa.Engine`; qa/faces/cli.py parses the arguments and turns
errors into one line. Heavy imports happen inside the commands, so `qa --help` stays instant."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from qa.schema import one_line
from qa.storage import home


def _sources(
    args: argparse.Namespace, named: Sequence[str] = (), extra: Sequence[Path] = ()
) -> list[Path]:
    """Those `named` or given with --source, `extra` ones, and the defaults (qa/storage/home.py)."""
    named = [Path(p) for p in [*named, *(getattr(args, "sources", None) or [])]]
    sources, seeded = home.sources_to_keep(args.index, named, extra, not args.index_given)
    if seeded:
        print(f"qa: building the index at {args.index} from the seed article "
              "(`qa index PATH` adds your own documents)", file=sys.stderr)
    return sources


def _no_index(args: argparse.Namespace) -> str | None:
    """Why an explicitly named index folder cannot answer (nothing built, nothing to build)."""
    if args.index_given and not args.sources and not home.has_index(args.index):
        return f"no index at {args.index}; build one with `qa index PATH --index {args.index}`"
    return None


def _print_problems(report) -> None:
    for err in report.errors:
        print(f"skipped {err}", file=sys.stderr)
    for note in report.notices:
        print(f"note: {note}", file=sys.stderr)


def _print_news(args: argparse.Namespace, report) -> None:
    """A question's sync says what it skipped only when something changed or sources were
    named: files `qa index` already reported are not reported again on every question."""
    if report.changed or getattr(args, "sources", None):
        _print_problems(report)


def cmd_index(args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing and not args.remove:
        print(one_line(f"qa: no such file or folder: {', '.join(missing)}"), file=sys.stderr)
        return 1
    from qa.engine import Engine

    if args.remove:
        engine = Engine.open(sources=None, index_dir=args.index, store=args.store)
        named = {name: _documents_named(engine.index.documents, name) for name in args.remove}
        removed = engine.remove([found[0] for found in named.values() if len(found) == 1])
        print(f"removed {len(removed)} document(s)")
        for name, found in named.items():
            if len(found) > 1:
                print(one_line(f'ambiguous: "{name}" names {len(found)} documents '
                               f"({', '.join(found[:5])}); give its doc_id"), file=sys.stderr)
            elif not found or found[0] not in removed:
                print(one_line(f"not indexed: {name}"), file=sys.stderr)
        return 0 if all(len(f) == 1 and f[0] in removed for f in named.values()) else 1
    paths = _sources(args, args.paths)
    if not paths:
        print(f"qa: nothing to index in {args.index}: name files or folders "
              f"(`qa index PATH --index {args.index}`)", file=sys.stderr)
        return 1
    # --rebuild does not read the old index, so it also repairs a damaged one
    engine = Engine.open(sources=paths, index_dir=args.index, store=args.store,
                         rebuild=args.rebuild,
                         show_progress=not args.json and sys.stderr.isatty())
    engine.ensure_query_model()  # also when nothing changed: `qa index` repairs it
    report = engine.last_report
    if args.json:
        totals = {"documents": len(engine.index.documents), "passages": len(engine.index)}
        print(json.dumps({**report.to_dict(), **totals}, indent=2))
    else:
        _print_problems(report)
        print(
            f"{len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.removed)} removed, {report.unchanged} unchanged; "
            f"{report.passages_embedded} passages embedded; index: "
            f"{len(engine.index.documents)} documents, {len(engine.index)} passages "
            f"in {args.index}/"
        )
    # every file given was rejected: a failure, though the index still holds other documents
    if args.paths:
        return 1 if report.errors and not _holds_any(engine.index.files, args.paths) else 0
    return 1 if report.errors and not (report.read or report.unchanged) else 0


def _documents_named(documents: Mapping, name: str) -> list[str]:
    """The doc_ids `name` stands for: itself when a document has that id; else every document
    whose file name or title it is (case and spacing aside), which must be one to remove."""
    if name in documents:
        return [name]
    wanted = " ".join(name.split()).casefold()
    if not wanted:
        return []
    return [doc_id for doc_id, record in documents.items()
            if wanted in (" ".join(record.title.split()).casefold(), Path(doc_id).name.casefold(),
                          Path(record.origin).name.casefold() if record.origin else "")]


def _holds_any(files: dict, paths: Sequence[str]) -> bool:
    """Whether the index holds a file that is one of `paths` or lies under one of them."""
    given = [Path(p).resolve() for p in paths]
    return any(Path(origin).is_relative_to(g) for origin in files for g in given)


def _print_answer(answer, k: int = 5) -> None:
    """The answer, then its numbered citations (or, when it declines, the nearest passages);
    a source's control characters escaped, so that each stays on its line."""
    print(answer.text)
    if answer.key_phrase:
        print(f"  key phrase: {' '.join(answer.key_phrase.split())}")
    if answer.standalone_question != answer.question:
        print(f"  (searched: {answer.standalone_question})")
    for c in answer.citations:
        p = c.passage
        where = f"p. {p.page}, " if p.page else ""
        print(f"[{c.n}] {one_line(p.source)} ({where}chars {c.quote_start}-{c.quote_end})")
        print("    " + " ".join(c.quote.split()))
    if not answer.answered and answer.passages:
        print("Closest passages:")
        for p in answer.passages[:k]:
            where = f"p. {p.page}, " if p.page else ""
            print(f"  - {one_line(p.source)} ({where}chars {p.start}-{p.end}): "
                  + " ".join(p.text.split()))


def cmd_ask(args: argparse.Namespace) -> int:
    if args.question == "-":
        args.question = sys.stdin.read()
    from qa.answering.scope import Where
    from qa.engine import Engine, clean_question

    clean_question(args.question, 1)  # an empty question is refused before any loading
    where = Where.named(args.scope)
    if why := _no_index(args):
        print(f"qa: {why}", file=sys.stderr)
        return 1
    engine = Engine.open(sources=_sources(args), index_dir=args.index, store=args.store)
    _print_news(args, engine.last_report)
    if args.verbose:
        print(f"index: {Path(args.index).resolve()} ({len(engine.index.documents)} documents)",
              file=sys.stderr)
    if len(engine.index) == 0:
        print(f"qa: the index at {args.index} is empty; add documents with `qa index PATH`",
              file=sys.stderr)
        return 1
    if not args.passages:
        answer = engine.ask(args.question, history=args.history, where=where)
        if args.json:
            print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        else:
            _print_answer(answer, args.k)
        return 0
    passages = engine.retrieve(args.question, k=args.k, where=where)
    if args.json:
        print(json.dumps({"question": args.question, "passages": [p.to_dict() for p in passages]},
                         indent=2, ensure_ascii=False))
        return 0
    for i, p in enumerate(passages, start=1):
        where = f"p. {p.page}, " if p.page else ""
        print(f"[{i}] {one_line(p.source)} ({where}chars {p.start}-{p.end}), "
              f"score {p.score:.3f}")
        print("    " + " ".join(p.text.split()))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    if why := _no_index(args):
        print(f"qa: {why}", file=sys.stderr)
        return 1
    from qa.answering.scope import Where
    from qa.engine import Engine

    where = Where.named(args.scope)
    engine = Engine.open(sources=_sources(args), index_dir=args.index, store=args.store)
    _print_news(args, engine.last_report)
    engine.snapshot().scope(where)  # a filter that names nothing ends here, in one line
    interactive = sys.stdin.isatty()
    if interactive:
        print("Ask about your documents. /reset forgets the conversation, /quit ends it.")
    history = []
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:  # end of input
            break
        question = line.strip()
        if not question:
            continue
        if question in ("/quit", "/exit"):
            break
        if question == "/reset":
            history = []
            print("(conversation reset)")
            continue
        if question.startswith("/"):
            print(f"unknown command {question}; /reset or /quit", file=sys.stderr)
            continue
        answer = engine.ask(question, history=history, where=where)
        _print_answer(answer)
        print()
        history.append(answer)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from qa.engine import Engine
    from qa.ui.app import serve
    from qa.ui.uploads import uploads_dir

    if args.max_upload_mb <= 0:
        print("qa: --max-upload-mb must be above 0", file=sys.stderr)
        return 2
    if args.allow_changes and args.read_only:
        print("qa: --allow-changes and --read-only contradict each other; pass one",
              file=sys.stderr)
        return 2
    uploads = uploads_dir(args.data)
    try:
        uploads.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"qa: cannot use {args.data} for uploads ({exc.strerror or exc})", file=sys.stderr)
        return 1
    # Uploaded files are a source like the others: kept indexed, pruned when deleted.
    engine = Engine.open(sources=_sources(args, extra=[uploads]), index_dir=args.index,
                         store=args.store,
                         show_progress=sys.stderr.isatty())
    _print_problems(engine.last_report)
    engine.warm()  # loaded before the port opens: no client meets a cold engine
    allow = None  # neither flag: the page may change the index on a loopback bind only
    if args.allow_changes or args.read_only:
        allow = args.allow_changes
    try:
        serve(engine, host=args.host, port=args.port, data_dir=args.data,
              max_upload_mb=args.max_upload_mb, allow_changes=allow, mcp=args.mcp)
    except OSError as exc:
        why = "the port is in use; pick another with --port" if "port" in str(exc) else exc
        print(f"qa: cannot serve on {args.host}:{args.port}: {why}", file=sys.stderr)
        return 1
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from qa.faces.mcp_server import protocol_stdout, run_stdio

    stdout = protocol_stdout()  # first: nothing printed from here on reaches the protocol
    if why := _no_index(args):
        print(f"qa: {why}", file=sys.stderr)
        return 1
    from qa.engine import Engine
    from qa.faces.service import Service

    engine = Engine.open(sources=_sources(args), index_dir=args.index, store=args.store)
    _print_problems(engine.last_report)
    engine.warm()  # loaded before the client's first call
    print(f"qa: MCP on stdio, answering from {Path(args.index).resolve()} "
          f"({len(engine.index.documents)} documents)", file=sys.stderr, flush=True)
    run_stdio(Service(engine), stdout)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    target = Path(args.target)
    if not target.exists():
        print(f"qa: {target}: no such question set (.jsonl) or BEIR folder", file=sys.stderr)
        return 1
    from qa.eval.beir import is_beir_folder
    from qa.eval.evaluate import evaluate_beir, evaluate_questions, read_questions
    from qa.eval.heldout import evaluate_parts, is_parts_folder
    from qa.eval.report import to_text, write_outputs

    progress = sys.stderr.isatty()
    command = f"qa eval {args.target}"
    if is_parts_folder(target):  # held-out parts (eval/squad): each its own corpus and role
        if args.baselines:
            print(f"qa: {target}: --baselines compares systems on one corpus; give it one "
                  "part's folder", file=sys.stderr)
            return 1
        report = evaluate_parts(target, progress)
    elif is_beir_folder(target):
        command += f" --split {args.split}"
        report = evaluate_beir(target, args.split, args.baselines, progress)
    elif target.is_file():
        from qa.engine import Engine

        questions = read_questions(target)
        if why := _no_index(args):
            print(f"qa: {why}", file=sys.stderr)
            return 1
        engine = Engine.open(sources=_sources(args), index_dir=args.index, store=args.store,
                             show_progress=progress)
        _print_problems(engine.last_report)
        report = evaluate_questions(engine, questions, target, args.baselines, progress)
        command += "".join(f" --source {s}" for s in args.sources or [])
        command += f" --index {args.index}" if args.index_given else ""
    else:
        print(f"qa: {target}: neither a question set (.jsonl) nor a BEIR folder "
              "(no corpus.jsonl in it)", file=sys.stderr)
        return 1
    command += " --baselines" if args.baselines else ""
    if args.out:
        for path in write_outputs(report, Path(args.out), command):
            print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps({"command": command, **report.to_dict()}, indent=2))
    else:
        print(to_text(report))
    return 0
