"""The `qa` command: a thin face over `qa.Engine`. Heavy imports happen inside the commands,
so `qa --help` is instant. Errors are one line on stderr and a non-zero exit. Where the index
and the data live when not named: qa/home.py."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from qa import home

SOURCES_HELP = "the folders and files already indexed; at first, the seed article"


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """A usage error is one line (and exit 2), like every other error of `qa`."""
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qa")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _add_index_option(p: argparse.ArgumentParser, index_home: Path) -> None:
    p.add_argument("--index", metavar="DIR",
                   help=f"index folder (default: {index_home}; see QA_HOME in the README)")


def _add_index_args(p: argparse.ArgumentParser, index_home: Path) -> None:
    _add_index_option(p, index_home)
    p.add_argument(
        "--source",
        action="append",
        dest="sources",
        metavar="PATH",
        help=f"document folder or file to keep indexed (repeatable), besides {SOURCES_HELP}",
    )


def build_parser() -> argparse.ArgumentParser:
    qa_home = home.home()
    index_home = qa_home / "index"
    parser = Parser(
        prog="qa",
        description="Answers from your own documents, quoted and cited. "
        f"The index and uploads are kept in {qa_home} (index/, data/); QA_HOME names "
        "another folder.",
    )
    parser.add_argument("--version", action="version", version=f"qa {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", help="build or update the index from documents")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help=f"files or folders (default: {SOURCES_HELP})")
    _add_index_option(p, index_home)
    p.add_argument("--rebuild", action="store_true", help="rebuild from scratch")
    p.add_argument("--remove", nargs="+", metavar="DOC_ID", help="remove documents by doc_id")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer one question with cited passages")
    p.add_argument("question", help='the question ("-" reads it from standard input)')
    p.add_argument("-k", type=positive_int, default=5, help="passages to show (default: 5)")
    p.add_argument("-v", "--verbose", action="store_true", help="say which index answers")
    p.add_argument("--history", action="append", default=[], help="an earlier question")
    p.add_argument("--passages", action="store_true", help="only the ranked passages")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_index_args(p, index_home)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="a conversation in the terminal (/reset, /quit)")
    _add_index_args(p, index_home)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("serve", help="the browser app")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--data", default=str(qa_home / "data"),
                   help=f"where uploads are kept (default: {qa_home / 'data'})")
    p.add_argument("--max-upload-mb", type=float, default=20.0, metavar="MB",
                   help="largest file the page accepts (default: 20)")
    p.add_argument("--allow-changes", action="store_true",
                   help="let the page upload and remove documents on any --host: anyone who "
                   "can reach the port can then change the index (default: only on a "
                   "loopback host such as 127.0.0.1)")
    p.add_argument("--read-only", action="store_true",
                   help="the page only asks and lists documents, on any --host")
    _add_index_args(p, index_home)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("eval", help="metrics for a question set, a BEIR-layout dataset or "
                       "held-out parts (eval/squad)")
    p.add_argument("target", metavar="FILE_OR_DATASET")
    p.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    p.add_argument("--baselines", action="store_true", help="also run BM25, dense, LlamaIndex")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--out", metavar="DIR", help="write the table as Markdown and a PNG chart")
    _add_index_args(p, index_home)
    p.set_defaults(func=cmd_eval)
    return parser


def _sources(
    args: argparse.Namespace, named: Sequence[str] = (), extra: Sequence[Path] = ()
) -> list[Path]:
    """Those `named` or given with --source, `extra` ones, and the defaults (qa/home.py)."""
    named = [Path(p) for p in [*named, *(getattr(args, "sources", None) or [])]]
    sources, seeded = home.sources_to_keep(args.index, named, extra, not args.index_given,
                                           getattr(args, "rebuild", False))
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


def cmd_index(args: argparse.Namespace) -> int:
    from qa.schema import one_line

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing and not args.remove:
        print(one_line(f"qa: no such file or folder: {', '.join(missing)}"), file=sys.stderr)
        return 1
    from qa.engine import Engine

    if args.remove:
        engine = Engine.open(sources=None, index_dir=args.index)
        removed = engine.remove(args.remove)
        unknown = [d for d in args.remove if d not in removed]
        print(f"removed {len(removed)} document(s)")
        for doc_id in unknown:
            print(one_line(f"not indexed: {doc_id}"), file=sys.stderr)
        return 1 if unknown else 0
    paths = _sources(args, args.paths)
    if not paths:
        print(f"qa: nothing to index in {args.index}: name files or folders "
              f"(`qa index PATH --index {args.index}`)", file=sys.stderr)
        return 1
    # --rebuild does not read the old index, so it also repairs a damaged one
    engine = Engine.open(sources=paths, index_dir=args.index, rebuild=args.rebuild,
                         show_progress=not args.json and sys.stderr.isatty())
    report = engine.last_report
    if args.json:
        out = {
            "added": report.added,
            "updated": report.updated,
            "removed": report.removed,
            "unchanged": report.unchanged,
            "passages_embedded": report.passages_embedded,
            "documents": len(engine.index.documents),
            "passages": engine.index.passage_count(),
            "errors": [str(e) for e in report.errors],
            "notices": [str(n) for n in report.notices],
        }
        print(json.dumps(out, indent=2))
    else:
        _print_problems(report)
        print(
            f"{len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.removed)} removed, {report.unchanged} unchanged; "
            f"{report.passages_embedded} passages embedded; index: "
            f"{len(engine.index.documents)} documents, {engine.index.passage_count()} passages "
            f"in {args.index}/"
        )
    # every file given was rejected: a failure, though the index still holds other documents
    if args.paths:
        return 1 if report.errors and not _holds_any(engine.index.files, args.paths) else 0
    return 1 if report.errors and not (report.read or report.unchanged) else 0


def _holds_any(files: dict, paths: Sequence[str]) -> bool:
    """Whether the index holds a file that is one of `paths` or lies under one of them."""
    given = [Path(p).resolve() for p in paths]
    return any(Path(origin).is_relative_to(g) for origin in files for g in given)


def _print_answer(answer, k: int = 5) -> None:
    """The answer, then its numbered citations (or, when it declines, the nearest passages)."""
    print(answer.text)
    if answer.standalone_question != answer.question:
        print(f"  (searched: {answer.standalone_question})")
    for c in answer.citations:
        p = c.passage
        where = f"p. {p.page}, " if p.page else ""
        print(f"[{c.n}] {p.source} ({where}chars {c.quote_start}-{c.quote_end})")
        print("    " + " ".join(c.quote.split()))
    if not answer.answered and answer.passages:
        print("Closest passages:")
        for p in answer.passages[:k]:
            where = f"p. {p.page}, " if p.page else ""
            print(f"  - {p.source} ({where}chars {p.start}-{p.end}): " + " ".join(p.text.split()))


def cmd_ask(args: argparse.Namespace) -> int:
    if args.question == "-":
        args.question = sys.stdin.read()
    from qa.engine import Engine, clean_question

    clean_question(args.question)
    if why := _no_index(args):
        print(f"qa: {why}", file=sys.stderr)
        return 1
    engine = Engine.open(sources=_sources(args), index_dir=args.index)
    _print_problems(engine.last_report)
    if args.verbose:
        print(f"index: {Path(args.index).resolve()} ({len(engine.index.documents)} documents)",
              file=sys.stderr)
    if engine.index.passage_count() == 0:
        print(f"qa: the index at {args.index} is empty; add documents with `qa index PATH`",
              file=sys.stderr)
        return 1
    if not args.passages:
        answer = engine.ask(args.question, history=args.history)
        if args.json:
            print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        else:
            _print_answer(answer, args.k)
        return 0
    passages = engine.retrieve(args.question, k=args.k)
    if args.json:
        print(json.dumps({"question": args.question, "passages": [p.to_dict() for p in passages]},
                         indent=2, ensure_ascii=False))
        return 0
    for i, p in enumerate(passages, start=1):
        where = f"p. {p.page}, " if p.page else ""
        print(f"[{i}] {p.source} ({where}chars {p.start}-{p.end}), score {p.score:.3f}")
        print("    " + " ".join(p.text.split()))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    if why := _no_index(args):
        print(f"qa: {why}", file=sys.stderr)
        return 1
    from qa.engine import Engine

    engine = Engine.open(sources=_sources(args), index_dir=args.index)
    _print_problems(engine.last_report)
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
        answer = engine.ask(question, history=history)
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
                         show_progress=sys.stderr.isatty())
    _print_problems(engine.last_report)
    allow = None  # neither flag: the page may change the index on a loopback bind only
    if args.allow_changes or args.read_only:
        allow = args.allow_changes
    try:
        serve(engine, host=args.host, port=args.port, data_dir=args.data,
              max_upload_mb=args.max_upload_mb, allow_changes=allow)
    except OSError as exc:
        why = "the port is in use; pick another with --port" if "port" in str(exc) else exc
        print(f"qa: cannot serve on {args.host}:{args.port}: {why}", file=sys.stderr)
        return 1
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    target = Path(args.target)
    if not target.exists():
        print(f"qa: {target}: no such question set (.jsonl) or BEIR folder", file=sys.stderr)
        return 1
    from qa.beir import is_beir_folder
    from qa.evaluate import evaluate_beir, evaluate_questions, read_questions
    from qa.heldout import evaluate_parts, is_parts_folder
    from qa.report import to_text, write_outputs

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
        engine = Engine.open(sources=_sources(args), index_dir=args.index, show_progress=progress)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if hasattr(args, "index"):
        args.index_given = args.index is not None
        args.index = args.index or str(home.default_index())
    _quiet_libraries()
    from qa.errors import QAError

    try:
        code = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        # the reader went away (`qa ask ... | head -1`): stop quietly, as `cat` does; stdout
        # points at devnull so that the interpreter's last flush does not complain either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except QAError as exc:
        print(f"qa: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or the system (disk full, permissions): one line all the same
        detail = (str(exc).strip().splitlines() or [""])[0]
        print(f"qa: {exc.__class__.__name__}: {detail}", file=sys.stderr)
        return 1


def _quiet_libraries() -> None:
    """No progress bars or log chatter from the libraries (model loading, tokenizers); the
    command's own messages and progress bars still show."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


if __name__ == "__main__":
    sys.exit(main())
