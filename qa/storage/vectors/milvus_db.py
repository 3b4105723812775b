"""The Milvus database behind `MilvusStore` (qa/storage/vectors/milvus_store.py): connecting, one
client per database, the collections (create, check, count, drop those no generation names),
`milvus.json` (which collection a generation's vectors are), and id filter expressions.

    milvus:./index/milvus.db        Milvus Lite, a local file (relative to the working directory)
    milvus:http://host:19530        a Milvus server (also https:// and tcp://)

Milvus Lite 3.x runs in this process (a gRPC server thread per file, shared by every client of
that file) and locks the file: a second process cannot open it while the first has it open.

pymilvus is imported inside the functions that use it, only when a Milvus store is used (it
takes about half a second).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa.errors import QAError

FILE = Path("vectors") / "milvus.json"
FORMAT = 1
MAX_ID_BYTES = 2048  # the VARCHAR primary key's max_length
SERVER_SCHEMES = ("http://", "https://", "tcp://")
NAME = re.compile(r"qa_[0-9a-f]{8}_[0-9a-f]{32}")


class MilvusUnavailable(QAError):
    """Milvus cannot be reached or opened (server down, Lite file held by another process)."""


class BadStoreSetting(QAError, ValueError):
    """A `milvus:` store setting that names no database (a QAError: the faces print it as one
    line, and an index read with it is not called damaged)."""


def uri(spec: str) -> str:
    """The database a `milvus:` setting names: a Lite file's absolute path, or a server URI."""
    target = spec.split(":", 1)[1].strip() if ":" in spec else ""
    if target.lower().startswith(SERVER_SCHEMES):
        return target.rstrip("/")
    if target.endswith(".db"):
        return str(Path(target).expanduser().resolve())
    raise BadStoreSetting(f"the store setting {spec!r} names no Milvus database; use "
                          "milvus:PATH.db for Milvus Lite or milvus:http://HOST:PORT for a server")


def prefix(index_root: Path) -> str:
    """The name prefix of the collections of one index root: qa_<8 hex of its path>_."""
    digest = hashlib.sha256(str(index_root.resolve()).encode("utf-8")).hexdigest()[:8]
    return f"qa_{digest}_"


def message(exc: Exception) -> str:
    """A Milvus error as one line."""
    return " ".join(str(getattr(exc, "message", None) or exc).split())


# ---- connecting -----------------------------------------------------------------------------
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def client(uri: str):
    """The one MilvusClient of this process for a database (Milvus Lite serves a file from a
    thread of this process, started by the first client of that file)."""
    with _clients_lock:
        found = _clients.get(uri)
        if found is None:
            found = _clients[uri] = _connect(uri)
        return found


def _connect(uri: str):
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_no_snapshot_warning)
    logging.getLogger("pymilvus.decorators").addFilter(_no_rpc_traceback)
    logging.getLogger("milvus_lite.server_manager").addFilter(_lite_start)
    lite = not uri.lower().startswith(SERVER_SCHEMES)
    if lite:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    _lite_start.cause = None
    try:
        return MilvusClient(uri=uri, timeout=30)
    except MilvusException as exc:
        if not lite:
            raise MilvusUnavailable(f"cannot reach Milvus at {uri}: {message(exc)}") from exc
        cause = _lite_start.cause
        if cause is None or type(cause).__name__ == "DataDirLockedError":
            raise MilvusUnavailable(
                f"cannot open the Milvus Lite file {uri}: another process may have it open "
                f"(Milvus Lite allows one process per file; a Milvus server allows many)"
            ) from exc
        raise MilvusUnavailable(f"cannot open the Milvus Lite file {uri}: "
                                f"{message(cause)}") from cause


def _no_snapshot_warning(record: logging.LogRecord) -> bool:
    """An iterator asks the server for a snapshot time, which Milvus Lite does not give, and
    pymilvus warns; our collections never change once written, so the warning says nothing."""
    return "mvccTs" not in record.getMessage()


def _no_rpc_traceback(record: logging.LogRecord) -> bool:
    """pymilvus logs each failed call with a traceback; the failure is raised all the same,
    and said as one line (MilvusUnavailable)."""
    return record.funcName != "_log_rpc_error"


class _LiteStart(logging.Filter):
    """Milvus Lite logs a traceback when it cannot serve a file (held by another process,
    unreadable); the failure is said as one line (MilvusUnavailable), naming the cause kept
    here. Connections are made one at a time (`_clients_lock`)."""

    cause: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith("Failed to start"):
            self.cause = record.exc_info[1]
            return False
        return True


_lite_start = _LiteStart()


# ---- collections ----------------------------------------------------------------------------
def create_collection(client, name: str, dimension: int) -> None:
    """An empty collection of (id, vector) rows: FLAT index, inner product (exact, as FAISS)."""
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_ID_BYTES)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index,
                             consistency_level="Strong")


def open_collection(client, name: str, dimension: int, count: int, generation: str,
                    uri: str) -> None:
    """Check that the collection of a generation holds what its milvus.json says, and load it
    for search."""
    if not client.has_collection(name):
        raise ValueError(f"the Milvus collection {name} of {generation} is missing from {uri}")
    fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
    dim = int(fields.get("vector", {}).get("params", {}).get("dim", -1))
    if dim != dimension:
        raise ValueError(f"the Milvus collection {name} of {generation} has vectors of "
                         f"{dim} dimensions, not {dimension}")
    client.load_collection(name)  # Milvus Lite reopens collections released
    held = row_count(client, name)
    if held != count:
        raise ValueError(f"the Milvus collection {name} of {generation} holds {held} "
                         f"vectors, not {count}")


def row_count(client, name: str) -> int:
    return int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])


def drop_unreferenced(client, index_root: Path, prefix: str, keep: set[str]) -> None:
    """Drop this index root's collections that no generation folder names, but those `keep`
    names."""
    from pymilvus.exceptions import MilvusException

    keep = keep | _referenced(index_root)
    try:
        stale = [n for n in client.list_collections() if n.startswith(prefix) and n not in keep]
    except MilvusException:
        return
    for name in stale:
        drop_quietly(client, name)


def drop_quietly(client, name: str) -> None:
    """Drop a collection; a failure leaves it for the next save to drop."""
    from pymilvus.exceptions import MilvusException

    try:
        client.drop_collection(name)
    except MilvusException:
        pass


# ---- milvus.json ----------------------------------------------------------------------------
def write_info(folder: Path, info: dict[str, Any]) -> None:
    """Name the collection holding the vectors of the generation being written in `folder`."""
    (folder / FILE).parent.mkdir(parents=True, exist_ok=True)
    (folder / FILE).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")


def read_info(folder: Path) -> dict[str, Any]:
    """A generation's milvus.json, checked: a ValueError of one line when it is damaged."""
    path = folder / FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{FILE.as_posix()} is missing from {folder.name}") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{FILE.as_posix()} of {folder.name} is unreadable "
                         f"({exc.__class__.__name__})") from exc
    expected = {"format": int, "uri": str, "collection": str, "dimension": int, "count": int}
    for key, kind in expected.items():
        if not isinstance(info, dict) or type(info.get(key)) is not kind:
            raise ValueError(f"{FILE.as_posix()} of {folder.name} is damaged (no valid {key!r})")
    if info["format"] != FORMAT or not NAME.fullmatch(info["collection"]) or info["count"] < 0:
        raise ValueError(f"{FILE.as_posix()} of {folder.name} is damaged "
                         f"(format {info['format']}, collection {info['collection']!r})")
    return info


def index_root(segment: Path) -> Path:
    """The index folder of a segment folder (index/gen-N/segments/seg-M)."""
    return segment.parents[2]


def _referenced(index_root: Path) -> set[str]:
    """The collections the segment folders of an index root name (finished or being
    written: `gen-*` also matches `gen-*.tmp`)."""
    names = set()
    for path in index_root.glob(f"gen-*/segments/*/{FILE.as_posix()}"):
        try:
            names.add(json.loads(path.read_text(encoding="utf-8"))["collection"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged generation cannot be loaded; its collection is not kept
    return names


# ---- id filters -----------------------------------------------------------------------------
def id_filter(ids: Sequence[str]) -> str:
    """`id in ["...", ...]`, each id a string literal both Milvus and Milvus Lite read back as
    is (pymilvus's own `ids=` does not escape quotes or backslashes)."""
    return "id in [" + ", ".join(_literal(pid) for pid in ids) + "]"


def _literal(text: str) -> str:
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'
