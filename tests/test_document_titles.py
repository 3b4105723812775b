"""What a document is called: its title from its content or from a sidecar beside it, the seed
article's real title, date and publisher, and `qa index --remove` by a name a user sees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import SEED_FILE

from qa import Engine
from qa.faces.cli import main
from qa.ingest.load import load_file
from qa.ingest.titles import sidecar_of

SEED_TITLE = "NATO strengthens presence in Eastern Europe"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def title_of(path: Path) -> str:
    (document,) = load_file(path, path.parent).documents
    return document.metadata["title"]


@pytest.mark.parametrize("text, title", [
    ('---\ntitle: "Field notes"\nlayout: post\n---\n\n# Other\n\nText.\n', "Field notes"),
    ("```bash\n# install it first\n```\n\n## Setting up the kiln\n\nText.\n",
     "Setting up the kiln"),
    ("## Part one\n\n# The kiln book\n\nText.\n", "The kiln book"),
    ("Kiln log\n========\n\nText.\n", "Kiln log"),
    ("### Firing ###\n\nText.\n", "Firing"),
    ("---\nlayout: post\n---\nFirst words here\n\nMore.\n", "First words here"),
])  # fmt: skip
def test_a_markdown_title_is_its_front_matter_or_first_heading_outside_code(tmp_path, text,
                                                                            title):
    assert title_of(write(tmp_path / "page.md", text)) == title


def test_a_sidecar_gives_the_title_date_and_publisher(tmp_path):
    doc = write(tmp_path / "kiln.txt", "draft v2 final\n\nThe kiln fires at dawn.\n")
    sidecar_of(doc).write_text(json.dumps({"title": " Kiln  schedule ", "date": "2024-05-01",
                                           "publisher": "Pottery Guild", "pages": 3}))
    (document,) = load_file(doc, tmp_path).documents
    meta = document.metadata
    assert (meta["title"], meta["date"], meta["publisher"]) == (
        "Kiln schedule", "2024-05-01", "Pottery Guild")
    assert meta["content_title"] == "draft v2 final"  # what its passages are embedded with
    sidecar_of(doc).write_text("{not json")
    result = load_file(doc, tmp_path)
    assert result.documents[0].metadata["title"] == "draft v2 final"
    assert [str(n) for n in result.notices] == [
        f"{sidecar_of(doc)}: not valid JSON; its title, date and publisher are ignored"]


def test_the_seed_article_has_its_real_title_date_and_publisher(seed_engine):
    record = seed_engine.index.documents[SEED_FILE.name]
    assert (record.title, record.date, record.publisher) == (SEED_TITLE, "2022-01-24", "CNN")
    assert SEED_FILE.read_text(encoding="utf-8").startswith(" date 2022-01-24 NATO")  # as it was
    passage = seed_engine.retrieve("What did Russia demand?", k=1)[0]
    assert passage.title == SEED_TITLE and passage.source == SEED_FILE.name
    # its passages are embedded as before, with the title its text opens with
    embedded = seed_engine.index.node(passage.id).metadata["embed_title"]
    assert embedded.startswith("date 2022-01-24 NATO strengthens")


def test_the_seed_article_is_removed_by_its_title(seed_index_dir, tmp_path, capsys):
    index = tmp_path / "index"
    shutil.copytree(seed_index_dir, index)
    assert main(["index", "--remove", SEED_TITLE.lower(), "--index", str(index)]) == 0
    assert capsys.readouterr().out == "removed 1 document(s)\n"
    assert list(Engine.open(sources=None, index_dir=index).index.documents) == []


def test_remove_takes_a_file_name_that_names_one_document(tmp_path, capsys):
    docs = tmp_path / "docs"
    write(docs / "a" / "notes.txt", "Garden notes\n\nThe red kite nests in tall oaks.\n")
    write(docs / "b" / "notes.txt", "Kiln notes\n\nThe kiln fires at dawn.\n")
    write(docs / "b" / "owls.txt", "Owls\n\nThe barn owl hunts at night.\n")
    args = ["--index", str(tmp_path / "ix")]
    assert main(["index", str(docs), *args]) == 0
    capsys.readouterr()
    assert main(["index", "--remove", "notes.txt", *args]) == 1
    out, err = capsys.readouterr()
    assert out == "removed 0 document(s)\n"
    assert err == ('ambiguous: "notes.txt" names 2 documents (a/notes.txt, b/notes.txt); '
                   "give its doc_id\n")
    assert main(["index", "--remove", "Kiln notes", "owls.txt", *args]) == 0
    assert capsys.readouterr().out == "removed 2 document(s)\n"
    assert main(["index", "--remove", "Heron notes", *args]) == 1
    assert capsys.readouterr().err == "not indexed: Heron notes\n"
    documents = Engine.open(sources=None, index_dir=tmp_path / "ix").index.documents
    assert list(documents) == ["a/notes.txt"]
