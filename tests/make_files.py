"""Writers of the test documents: one of every format, with facts the tests ask about."""

from __future__ import annotations

import json
from pathlib import Path

TXT = """\
The Harbour Lighthouse

The lighthouse on Gull Point was built in 1871 from granite quarried on the island itself. \
Its first keeper, Marta Vell, logged four hundred and twelve ships in her first winter. \
The lamp burned whale oil until 1904, when a kerosene burner replaced it.

In 1931 the light was electrified, and the keeper's cottage became a small museum. \
Visitors can still climb the ninety-nine steps to the lantern room on summer weekends. \
The museum keeps Marta Vell's logbooks in a glass case beside the stairs.
"""

# Windows line endings: offsets must still index the file's own text.
CRLF = (
    "Ferry timetable\r\n\r\n"
    "The morning ferry to Skerry Island leaves the harbour at 7:15 and returns by noon.\r\n"
    "On Sundays there is no morning ferry; the first crossing is at 10:40.\r\n\r\n"
    "Bicycles travel free of charge, but dogs must stay on a lead during the crossing.\r\n"
)

LONG_TITLE = " ".join(["Notes on the migration of the arctic tern across the northern seas"] * 6)

# One sentence far longer than a passage may be: it must be cut, never truncated.
LONG_SENTENCE = (
    "The arctic tern flies from its breeding grounds in the north "
    + " ".join(f"past headland number {i} and over the open water beyond it" for i in range(30))
    + " before it reaches the pack ice of the Weddell Sea."
)

MD = f"""\
# {LONG_TITLE}

The arctic tern makes the longest migration of any animal, about seventy thousand kilometres \
each year. Ringed birds have lived for more than thirty years.

{LONG_SENTENCE}

## Breeding

Terns nest in colonies on open shingle and defend them fiercely. \
A pair usually lays two eggs, which hatch after about three weeks.
"""

HTML = """\
<!doctype html>
<html><head><title>Orchard Cider Guide</title>
<style>body { color: STYLEWORD; } .x::after { content: "styleword"; }</style>
<script>var SCRIPTWORD = "do not index this"; function f() { return 1; }</script>
</head>
<body>
<nav>Home | About</nav>
<h1>Orchard Cider Guide</h1>
<p>Cider apples are pressed in late October, when the fruit is fully ripe.
The juice ferments for six weeks in oak barrels before it is bottled.</p>
<script>document.write("SCRIPTWORD again");</script>
<ul><li>Kingston Black gives a bittersharp juice.</li><li>Dabinett is bittersweet.</li></ul>
<noscript>NOSCRIPTWORD</noscript>
<p>A good cider keeps for two years in a cool cellar.</p>
</body></html>
"""

PDF_TITLE = "Annual Report of the Glacier Survey"
PDF_PAGES = [
    "The glacier survey began in March with a team of six scientists. "
    "They measured the ice thickness at forty stations along the valley.",
    "On the second page: the Morteratsch glacier retreated by thirty-one metres this year. "
    "Meltwater streams carried fine sediment into the lake below.",
    "The third page lists the budget. The survey cost two hundred thousand francs, "
    "most of it spent on the helicopter flights.",
]

JSONL_RECORDS = [
    {"_id": "rec-1", "title": "Honey bees", "text": "A honey bee colony holds one queen. "
     "Worker bees live about six weeks in summer."},
    {"id": "rec-2", "text": "Basalt columns form when thick lava cools slowly and cracks "
     "into hexagons, as at the Giant's Causeway."},
    {"_id": 3, "title": "Tea", "text": "Green tea is steamed or pan-fired soon after picking, "
     "which stops the leaves from oxidising."},
]


def write_pdf(path: Path, pages: list[str], title: str = "", password: str | None = None) -> Path:
    """A real PDF with one text block a page (reportlab), optionally encrypted."""
    from reportlab.lib import pdfencrypt
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    encrypt = pdfencrypt.StandardEncryption(password, canPrint=0) if password else None
    pdf = canvas.Canvas(str(path), pagesize=A4, encrypt=encrypt)
    if title:
        pdf.setTitle(title)
    for page in pages:
        text = pdf.beginText(50, 780)
        line: list[str] = []
        for word in page.split():
            if len(" ".join([*line, word])) > 80:
                text.textLine(" ".join(line))
                line = []
            line.append(word)
        text.textLine(" ".join(line))
        pdf.drawText(text)
        pdf.showPage()
    pdf.save()
    return path


def write_jsonl(path: Path, records: list[dict], extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_formats(folder: Path) -> Path:
    """One document of every supported format."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lighthouse.txt").write_text(TXT, encoding="utf-8")
    (folder / "ferry.txt").write_bytes(CRLF.encode("utf-8"))
    (folder / "terns.md").write_text(MD, encoding="utf-8")
    (folder / "cider.html").write_text(HTML, encoding="utf-8")
    write_pdf(folder / "glacier.pdf", PDF_PAGES, title=PDF_TITLE)
    write_jsonl(folder / "facts.jsonl", JSONL_RECORDS)
    return folder


def write_corpus(path: Path, n: int) -> Path:
    """A generated JSONL corpus of n short, distinct documents."""
    animals = ["otter", "heron", "badger", "falcon", "salmon", "beaver", "lynx", "puffin"]
    places = ["river", "forest", "marsh", "cliff", "valley", "lake", "moor", "dune"]
    records = []
    for i in range(n):
        a, p = animals[i % len(animals)], places[(i // len(animals)) % len(places)]
        records.append({
            "_id": f"gen-{i}",
            "title": f"Field note {i}",
            "text": f"Field note {i}: a {a} was seen near the {p} at dawn on day {i}. "
            f"The observer counted {i % 17 + 2} of them and wrote down the weather, "
            f"which was {'clear' if i % 2 else 'rainy'} with a light wind from the west. "
            f"Tracks near marker {i * 7} suggested the animals returned every evening.",
        })
    return write_jsonl(path, records)


GOOD_TEXT = (
    "The village bakery opens at six and sells rye bread baked in a wood-fired oven. "
    "Its owner, Ilse Brandt, learned the recipe from her grandmother in 1962."
)


def write_bad_corpus(folder: Path) -> tuple[dict[str, str], set[str]]:
    """Everything a user's disk may hold: returns {file name: words its message must have}
    and the doc_ids that must be indexed all the same."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text("  \n\t\n   \n")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (folder / "latin1.txt").write_bytes(
        "Le café de Zürich sert une crème brûlée très appréciée des étudiants.".encode("latin-1")
    )
    (folder / "huge.txt").write_bytes(b"word " * (10 * 2**20))  # 50 MB on a single line
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n" + b"\x8f" * 500)
    write_pdf(folder / "locked.pdf", ["A secret page about the vault code."], password="s3cret")
    (folder / "scripts.html").write_text(
        "<html><head><script>var a = 1;</script><style>p {color: red}</style></head>"
        + "<body><script>alert('x')</script>" * 200 + "<noscript>enable js</noscript></body></html>"
    )
    write_jsonl(
        folder / "mixed.jsonl",
        [{"_id": "m-1", "text": "Otters hold hands while they sleep so they do not drift."}],
        extra_lines=('{"_id": "m-2", "text": "cut off in the middle', json.dumps(
            {"_id": "m-3", "title": "Owls", "text": "An owl can turn its head 270 degrees."})),
    )
    write_jsonl(folder / "huge.jsonl", [{"_id": "h-0", "text": "word " * (5 * 2**20)},
                                        {"_id": "h-1", "text": "Puffins nest in burrows."}])
    (folder / "a original.txt").write_text(TXT)
    (folder / "z duplicate copy.txt").write_text(TXT)  # same text: indexed once
    (folder / "notes with spaces.txt").write_text(GOOD_TEXT)
    (folder / "résumé – 日本語.txt").write_text("Das Museum zeigt Holzschnitte aus Kyoto.")
    (folder / "odd..name.txt").write_text("The bridge over the fjord is 1,200 metres long.")
    expected = {
        "empty.txt": "no text",
        "blank.md": "no text",
        "binary.txt": "binary",
        "latin1.txt": "not UTF-8",
        "huge.txt": "too large",
        "broken.pdf": "not a readable PDF",
        "locked.pdf": "encrypted",
        "scripts.html": "no visible text",
        "mixed.jsonl line 2": "not valid JSON",
        "huge.jsonl line 1": "too large",
        "z duplicate copy.txt": 'same text as "a original.txt"',
    }
    good = {"latin1.txt", "m-1", "m-3", "h-1", "a original.txt", "notes with spaces.txt",
            "résumé – 日本語.txt", "odd..name.txt"}
    return expected, good
