"""The `qa` command: a thin face over `qa.Engine`. Heavy imports happen inside the commands,
so `qa --help` is instant. Errors are one line on stderr and a non-zero exit. Where the index
and the data live when not named: qa/storage/home.py."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from qa.faces.commands import cmd_ask, cmd_chat, cmd_eval, cmd_index, cmd_mcp, cmd_serve
from qa.storage import home

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
    p.add_argument("--store", metavar="SPEC",
                   help="where passage vectors live: faiss, milvus:FILE.db (Milvus Lite) or "
                   "milvus:http://HOST:PORT (default: what the index uses, at first faiss); "
                   "another than the index's rebuilds it there")


def _add_index_args(p: argparse.ArgumentParser, index_home: Path) -> None:
    _add_index_option(p, index_home)
    p.add_argument(
        "--source",
        action="append",
        dest="sources",
        metavar="PATH",
        help=f"document folder or file to keep indexed (repeatable), besides {SOURCES_HELP}",
    )


def _add_scope_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", action="append", dest="scope", default=[], metavar="PATTERN",
                   help="answer only from these documents (repeatable): a folder, a file "
                   "pattern such as '*.md' or 'notes/*', or a doc_id")


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
    p.add_argument("--remove", nargs="+", metavar="DOC",
                   help="remove documents by doc_id, or by a file name or title that names one")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer one question with cited passages")
    p.add_argument("question", help='the question ("-" reads it from standard input)')
    p.add_argument("-k", type=positive_int, default=5, help="passages to show (default: 5)")
    p.add_argument("-v", "--verbose", action="store_true", help="say which index answers")
    p.add_argument("--history", action="append", default=[], help="an earlier question")
    p.add_argument("--passages", action="store_true", help="only the ranked passages")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_scope_option(p)
    _add_index_args(p, index_home)
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="a conversation in the terminal (/reset, /quit)")
    _add_scope_option(p)
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
    p.add_argument("--mcp", action="store_true",
                   help="also serve the tools ask, search and list_documents to agents over "
                   "MCP (streamable HTTP at /gradio_api/mcp/); they never change the index")
    _add_index_args(p, index_home)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mcp", help="serve the tools search, ask and list_documents to a "
                       "desktop agent over MCP on stdio (read-only)")
    _add_index_args(p, index_home)
    p.set_defaults(func=cmd_mcp)

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
        message = str(exc)
        if getattr(args, "index_given", False):  # the repair must name the same index
            for repair in ("`qa index --rebuild`", "`qa index`"):
                message = message.replace(repair, f"{repair[:-1]} --index {args.index}`")
        print(f"qa: {message}", file=sys.stderr)
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
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model ships in a package: never fetch
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


if __name__ == "__main__":
    sys.exit(main())
