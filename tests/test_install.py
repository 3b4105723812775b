"""qa as an installed package: its parts and files come with it (the wheel itself is built and
served by scripts/wheel_smoke in CI), and it keeps its index in a home folder, whatever the
current folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

from conftest import ROOT, SEED_FILE

from qa import Engine

WAIT = 600  # seconds at most for one command on a busy machine
QUESTION = "What did Russia demand?"


# ---- the package --------------------------------------------------------------------------
def test_the_app_and_the_seeds_are_parts_of_the_qa_package():
    assert (files("qa.ui") / "style.css").is_file()
    assert (files("qa.seeds") / SEED_FILE.name).read_text() == SEED_FILE.read_text()
    # nothing imports a top-level `ui`: in the wheel there is none
    pattern = re.compile(r"^\s*(from ui\b|import ui\b)", re.M)
    sources = [p for d in ("qa", "ui", "tests", "bench", "scripts") for p in (ROOT / d).rglob("*")
               if p.is_file() and (p.suffix == ".py" or p.parent.name == "scripts")]
    assert len(sources) > 30
    assert [p for p in sources if pattern.search(p.read_text(errors="replace"))] == []
    # ... and the app starts its import without one (a finder that refuses `ui` comes first)
    code = (
        "import sys\n"
        "class NoUI:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ui' or name.startswith('ui.'):\n"
        "            raise ImportError('a top-level ui was imported')\n"
        "sys.meta_path.insert(0, NoUI())\n"
        "import qa.faces.cli, qa.ui.app\n"
        "print(qa.ui.app.STYLE.is_file())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=WAIT)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "True\n", done.stderr


def test_the_home_folder(tmp_path, monkeypatch):
    from qa.storage import home

    monkeypatch.delenv("QA_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    monkeypatch.chdir(ROOT)
    assert home.home() == ROOT  # the checkout keeps its index/ and data/, as the README says
    monkeypatch.chdir(tmp_path)
    assert home.home() == tmp_path / "me" / ".local" / "share" / "qa"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert home.default_index() == tmp_path / "xdg" / "qa" / "index"
    monkeypatch.setenv("QA_HOME", str(tmp_path / "qa-home"))
    monkeypatch.chdir(ROOT)
    assert home.default_data() == tmp_path / "qa-home" / "data"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "qa-notes"\n')
    (tmp_path / "seeds").mkdir()
    assert not home.is_checkout(tmp_path)  # another project with a seeds/ folder


# ---- outside the checkout -----------------------------------------------------------------
def qa(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if k not in ("QA_HOME", "XDG_DATA_HOME")}
    return subprocess.Popen(
        [sys.executable, "-m", "qa.faces.cli", *args], cwd=cwd, text=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**base, "PYTHONPATH": str(ROOT), **env},
    )  # fmt: skip


def finish(proc: subprocess.Popen) -> tuple[str, str, int]:
    out, err = proc.communicate(timeout=WAIT)
    return out, err, proc.returncode


def test_out_of_the_box_from_any_folder(tmp_path):
    """`qa ask` in an empty folder builds the home index from the shipped seed article, says
    where once, and creates nothing where it runs."""
    here, qa_home, xdg = tmp_path / "here", tmp_path / "qa-home", tmp_path / "xdg"
    here.mkdir()
    runs = {  # two homes, built in parallel
        "QA_HOME": qa("ask", QUESTION, cwd=here, env={"QA_HOME": str(qa_home)}),
        "XDG": qa("ask", QUESTION, "-v", cwd=here,
                  env={"XDG_DATA_HOME": str(xdg), "HOME": str(tmp_path / "me")}),
    }  # fmt: skip
    done = {name: finish(p) for name, p in runs.items()}
    for name, index in (("QA_HOME", qa_home / "index"), ("XDG", xdg / "qa" / "index")):
        out, err, code = done[name]
        assert code == 0, err
        assert "never admit Ukraine" in out.split("[2]")[0], out
        assert f"qa: building the index at {index} from the seed article" in err
        assert "skipped" not in err and (index / "CURRENT").is_file()
    assert f"index: {xdg / 'qa' / 'index'} (1 documents)" in done["XDG"][1]  # -v says where
    assert not (tmp_path / "me").exists()
    again = finish(qa("ask", QUESTION, cwd=here, env={"QA_HOME": str(qa_home)}))
    assert again[2] == 0 and again[1] == "" and "never admit Ukraine" in again[0]
    assert list(here.iterdir()) == []  # nothing was created in the current folder


def test_the_index_keeps_its_folders_up_to_date(tmp_path):
    """`qa index ~/notes` once; then `qa ask` sees a note added later to ~/notes, and a file
    indexed by name does not bring in its neighbours."""
    here, qa_home = tmp_path / "here", tmp_path / "qa-home"
    notes, other = tmp_path / "notes", tmp_path / "other"
    for folder in (here, notes, other):
        folder.mkdir()
    (notes / "kite.txt").write_text("The red kite nests in tall oak trees near the river.\n")
    (other / "named.txt").write_text("The barn owl hunts voles in the meadow at night.\n")
    (other / "neighbour.txt").write_text("The grey heron waits in the shallow pond.\n")
    env = {"QA_HOME": str(qa_home)}
    out, err, code = finish(qa("index", str(notes), str(other / "named.txt"), cwd=here, env=env))
    assert code == 0 and "2 added" in out and f"in {qa_home / 'index'}" in out, (out, err)
    (notes / "swift.txt").write_text("The common swift sleeps while flying over the sea.\n")
    out, err, code = finish(qa("ask", "Where does the common swift sleep?", cwd=here, env=env))
    assert code == 0 and err == ""
    assert "sleeps while flying" in out.splitlines()[0]
    indexed = " ".join(d["doc_id"] for d in Engine.open(sources=None, index_dir=qa_home / "index")
                       .documents())  # fmt: skip
    assert all(name in indexed for name in ("kite", "swift", "named")), indexed
    assert "neighbour" not in indexed
    assert "56b9276ed6e05626" not in indexed  # sources were named: no seed article
    assert list(here.iterdir()) == []


def test_a_named_index_folder_without_an_index(tmp_path):
    missing = tmp_path / "nowhere" / "ix"
    runs = [qa(command, *args, "--index", str(missing), cwd=tmp_path, env={})
            for command, *args in (("ask", QUESTION), ("chat",))]  # fmt: skip
    for proc in runs:
        out, err, code = finish(proc)
        assert code == 1 and out == ""
        assert err == (f"qa: no index at {missing}; build one with "
                       f"`qa index PATH --index {missing}`\n")  # fmt: skip
    assert not (tmp_path / "nowhere").exists()


def test_a_folder_added_from_python_stays_a_folder_source(tmp_path):
    """`Engine.add` of a folder keeps the folder, not its files one by one, as what later
    updates look through, also across a rebuild that names other sources."""
    from qa.storage.home import indexed_sources

    notes, other = tmp_path / "notes", tmp_path / "other"
    notes.mkdir()
    other.mkdir()
    (notes / "kite.txt").write_text("The red kite nests in oak trees.\n")
    (other / "owl.txt").write_text("The barn owl hunts voles at night.\n")
    index_dir = tmp_path / "ix"
    engine = Engine.open(sources=[other], index_dir=index_dir)
    engine.add([notes])
    assert sorted(indexed_sources(index_dir)) == [notes, other]
    Engine.open(sources=[other], index_dir=index_dir, rebuild=True)
    assert sorted(indexed_sources(index_dir)) == [notes, other]
