"""An `EvalReport` as a terminal table, a Markdown file and a PNG bar chart."""

from __future__ import annotations

from pathlib import Path

from qa.eval.evaluate import EvalReport

LABELS = {
    "answers_right": "answers right",
    "abstention_precision": "abstain P",
    "abstention_recall": "abstain R",
    "latency_p50_ms": "p50 ms",
    "latency_p95_ms": "p95 ms",
    "words_per_passage": "words/passage",
    "cites_relevant": "cites relevant",
}
UNBOUNDED = ("latency_p50_ms", "latency_p95_ms", "words_per_passage")  # not in [0, 1]


def label(column: str) -> str:
    return LABELS.get(column, column)


def cell(column: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if column in UNBOUNDED else f"{value:.3f}"


def table(report: EvalReport) -> list[list[str]]:
    header = [report.row_label] + [label(c) for c in report.columns]
    body = [
        [name] + [cell(c, row.get(c)) for c in report.columns] for name, row in report.rows.items()
    ]
    return [header] + body


def heading(report: EvalReport) -> str:
    split = f", split {report.split}" if report.split else ""
    return f"{report.target}{split}: {report.questions} questions, {report.date}"


def embedded_line(report: EvalReport) -> str:
    counts = ", ".join(f"{name} {n}" for name, n in report.embedded.items())
    return f"passages embedded this run: {counts}"


def to_text(report: EvalReport) -> str:
    rows = table(report)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [heading(report)]
    for n, r in enumerate(rows):
        lines.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += [f"note: {n}" for n in report.notes + [embedded_line(report)]]
    return "\n".join(lines)


def to_markdown(report: EvalReport, command: str | None = None) -> str:
    rows = table(report)
    out = [f"## {heading(report)}", ""]
    if command:
        out += ["```", command, "```", ""]
    out.append("| " + " | ".join(rows[0]) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|")
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    out.append("")
    out += [f"- {n}" for n in report.notes + [embedded_line(report)]]
    return "\n".join(out) + "\n"


def write_chart(report: EvalReport, path: Path) -> None:
    """Grouped bars: one group per metric in [0, 1], one bar per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [
        c
        for c in report.columns
        if c not in UNBOUNDED and any(row.get(c) is not None for row in report.rows.values())
    ]
    systems = list(report.rows)
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(columns) + 2), 4.5))
    for i, name in enumerate(systems):
        values = [report.rows[name].get(c) for c in columns]
        xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(columns))]
        bars = ax.bar(xs, [v if v is not None else 0.0 for v in values], width, label=name)
        ax.bar_label(
            bars, [cell(c, v) for c, v in zip(columns, values)], fontsize=6, rotation=90, padding=2
        )
    ax.set_xticks(range(len(columns)), [label(c) for c in columns])
    ax.set_ylim(0, 1.15)
    ax.set_title(heading(report), fontsize=9)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(systems))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(report: EvalReport, folder: Path, command: str | None = None) -> list[Path]:
    """`<name>.md` and `<name>.png` in the folder, named after the evaluated target."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(report.target.rstrip("/")).stem or "eval"
    if report.split:
        stem += f"-{report.split}"
    md, png = folder / f"{stem}.md", folder / f"{stem}.png"
    md.write_text(to_markdown(report, command), encoding="utf-8")
    write_chart(report, png)
    return [md, png]
