"""The code's shape: no import cycles, small files, one straight query path, pure settings."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "qa"
# the query path, in order
STEPS = ["qa.answering.chat", "qa.answering.retrieve", "qa.answering.read", "qa.answering.answer"]


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The qa modules a file imports, wherever in it (under TYPE_CHECKING too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qa"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("qa")}
    return found & known


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of more than one module (Tarjan)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in graph[v]:
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(part)

    for v in graph:
        if v not in order:
            visit(v)
    return found


def test_no_import_cycles_in_the_package():
    names = module_names()
    # `qa/__init__.py` imports the engine lazily for `from qa import Engine`; nothing imports it
    graph = {m: imports_of(p, set(names)) - {m, "qa"} for m, p in names.items()}
    assert graph["qa.engine"] >= set(STEPS)  # the scan sees imports
    assert cycles(graph) == []


# The stages, lowest first (each subpackage's __init__ says what it holds): a module imports only
# from its own stage or those below it, so ingest and storage never import answering or a face.
STAGES = [
    ("qa.settings", "qa.schema", "qa.errors", "qa.progress"),
    ("qa.text",),
    ("qa.models",),
    ("qa.ingest",),
    ("qa.storage",),
    ("qa.answering",),
    ("qa.engine",),
    ("qa.faces", "qa.eval"),
]


def stage_of(module: str) -> int:
    for n, prefixes in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return n
    raise AssertionError(f"{module} is in no stage: add its package to STAGES")


def test_the_stages_only_import_downward():
    names = module_names()
    upward = {(m, i) for m, p in names.items() if m != "qa"
              for i in imports_of(p, set(names)) - {"qa"} if stage_of(i) > stage_of(m)}
    assert upward == set()
    below_answering = [m for m in names if m != "qa" and stage_of(m) <= stage_of("qa.storage")]
    assert "qa.storage.index" in below_answering and "qa.ingest.chunk" in below_answering


def test_no_file_over_400_lines():
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "ui").rglob("*.py")]
    long = {str(p.relative_to(ROOT)): n for p in files
            if (n := len(p.read_text().splitlines())) > 400}
    assert len(files) > 30 and long == {}


def test_the_pipeline_holds_no_evaluation_code():
    names = module_names()
    pipeline = {m: p for m, p in names.items() if not m.startswith("qa.eval")}
    assert "qa.eval.evaluate" in names
    users = {m for m, p in pipeline.items()
             if any(i.startswith("qa.eval") for i in imports_of(p, set(names)))}
    assert users <= {"qa.faces.commands"}  # `qa eval` runs it


def test_a_question_takes_each_step_once_and_nothing_calls_back(seed_engine):
    """Every call inside qa while a follow-up is answered: the steps come once each, in order,
    straight from the engine; and no module calls back into one that called it."""
    earlier = seed_engine.ask("Who is NATO's Secretary-General?")  # and the engine is warm
    calls: list[tuple[str, ...]] = []  # the qa modules on the stack at each call, outermost first

    def profile(frame, event, arg):
        if event != "call" or not frame.f_globals.get("__name__", "").startswith("qa."):
            return
        stack, f = [], frame
        while f is not None:
            name = f.f_globals.get("__name__", "")
            if name.startswith("qa.") and (not stack or stack[-1] != name):
                stack.append(name)
            f = f.f_back
        calls.append(tuple(reversed(stack)))

    sys.setprofile(profile)
    try:
        answer = seed_engine.ask("What did he say?", history=[earlier])
    finally:
        sys.setprofile(None)
    assert answer.answered and "Stoltenberg" in answer.standalone_question
    callbacks = {s for s in calls if len(set(s)) < len(s)}
    assert callbacks == set()
    steps = [s[1] for s in calls if len(s) == 2 and s[0] == "qa.engine" and s[1] in STEPS]
    entered = [m for i, m in enumerate(steps) if i == 0 or steps[i - 1] != m]
    assert entered == STEPS


def test_importing_qa_changes_no_environment_variable():
    code = ("import os; before = dict(os.environ); "
            "import qa, qa.settings, qa.engine, qa.text.english, qa.answering.read, "
            "qa.answering.answer, qa.answering.chat; "
            "print(sorted(k for k in os.environ if os.environ.get(k) != before.get(k)))")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "TOKENIZERS_", "GRADIO_"))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
