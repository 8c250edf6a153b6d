"""`triune report RUN`: RUN/report.html with PNG plots and a summary table per data_source.

Reads RUN/metrics.jsonl (see `metrics.py`) and, when present, RUN/samples.jsonl. A per-source
metric is ``{split}/{source}/{metric}`` where ``{split}/{source}/count`` exists (every source that
`completion_metrics` saw has it); every other key is a run-level metric (loss, clip fractions,
grad norms, timings, ...), plotted grouped by its first path segment.

The page is self-contained: inline CSS, no script, plots as PNG files in RUN/report/ beside it
(matplotlib's Agg canvas, no display, no global pyplot state), every data string HTML-escaped.
"""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triune_data import atomic
from triune_train.metrics import ALL, read_metrics, read_samples, source_key

# (metric, better): the summary table's rows; better = max, min, or None (no "best").
SUMMARY: tuple[tuple[str, Callable[[Sequence[float]], float] | None], ...] = (
    ("reward", max),
    ("accuracy", max),
    ("format", max),
    ("correct_ratio", max),
    ("iou", max),
    ("map", max),
    ("tau", None),
    ("response_length", None),
    ("truncation_ratio", min),
    ("reflection_ratio", None),
    ("zero_variance_group_ratio", min),
    ("error_rate", min),
    ("timeout_rate", min),
)

# One plot per entry: (file stem, title, [(metric, label)], splits: "train" or "all").
PANELS: tuple[tuple[str, str, tuple[tuple[str, str], ...], str], ...] = (
    ("reward", "Reward", (("reward", "reward"),), "all"),
    ("accuracy", "Accuracy", (("accuracy", "accuracy"), ("correct_ratio", "correct ratio")), "all"),
    (
        "length",
        "Response length (tokens)",
        (
            ("response_length", "mean"),
            ("response_length_correct", "correct"),
            ("response_length_wrong", "wrong"),
        ),
        "train",
    ),
    (
        "reflection",
        "Reflection",
        (
            ("reflection_ratio", "reflection ratio"),
            ("accuracy_reflection", "accuracy with reflection"),
            ("accuracy_no_reflection", "accuracy without"),
        ),
        "train",
    ),
    (
        "iou",
        "IoU threshold and IoU",
        (("tau", "IoU threshold τ"), ("iou", "IoU term"), ("map", "mAP")),
        "all",
    ),
    (
        "failures",
        "Failures and truncation",
        (
            ("error_rate", "verifier error"),
            ("timeout_rate", "verifier timeout"),
            ("truncation_ratio", "truncated"),
            ("zero_variance_group_ratio", "zero-variance groups"),
        ),
        "train",
    ),
)
MAX_GLOBAL_SERIES = 10
SMOOTH_ABOVE = 24  # points; longer train curves get a trailing mean over 1/12 of them
SAMPLES_PER_SOURCE = 2

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.grid img{width:100%;border:1px solid #eee}table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f6f6f6}th.split{text-align:center;border-left:1px solid #ddd}nav a{margin-right:12px}pre{white-space:pre-wrap;background:#f8f8f8;padding:8px;max-height:240px;overflow:auto}
details{margin:6px 0}.small{color:#666;font-size:12px}
"""


@dataclass
class _Series:
    steps: list[int]
    values: list[float]


def _series(rows: Sequence[dict[str, Any]], key: str) -> _Series | None:
    points = [(r["step"], float(r[key])) for r in rows if isinstance(r.get(key), int | float)]
    if not points:
        return None
    return _Series([s for s, _ in points], [v for _, v in points])


def _split_keys(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, list[str]], list[str]]:
    """({source: [splits]}, run-level keys). The "all" source comes first."""
    keys = sorted({k for r in rows for k in r if k not in ("step", "time")})
    pairs = {tuple(k.split("/")[:2]) for k in keys if k.count("/") >= 2 and k.endswith("/count")}
    sources: dict[str, list[str]] = defaultdict(list)
    for split, source in sorted(pairs):
        sources[source].append(split)
    for splits in sources.values():
        splits.sort(key=lambda s: (s != "train", s))
    ordered = dict(sorted(sources.items(), key=lambda kv: (kv[0] != ALL, kv[0])))
    run_level = [k for k in keys if tuple(k.split("/")[:2]) not in pairs]
    return ordered, run_level


def _by_magnitude(found: list[tuple[str, _Series]], ratio: float = 20.0) -> list[list[tuple[str, _Series]]]:
    """Series split into plots whose typical magnitudes are within `ratio` of each other.

    An entropy of 1.2 and a clip fraction of 0.003 on one axis would flatten the latter.
    """

    def size(ks: tuple[str, _Series]) -> float:
        values = sorted(abs(v) for v in ks[1].values)
        return values[len(values) // 2]

    clusters: list[list[tuple[str, _Series]]] = []
    top = 0.0
    for ks in sorted(found, key=size, reverse=True):
        if not clusters or size(ks) * ratio < top:
            clusters.append([])
            top = size(ks)
        clusters[-1].append(ks)
    return clusters


def _file_stem(name: str, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "source"
    candidate, n = stem, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def _trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """Mean of the last `window` values at each point (fewer at the start).

    >>> _trailing_mean([1.0, 3.0, 5.0, 7.0], 2)
    [1.0, 2.0, 4.0, 6.0]
    """
    window = max(window, 1)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _plot(path: Path, title: str, lines: Sequence[tuple[str, _Series]]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 3.2), dpi=100)
    fig.subplots_adjust(left=0.12, right=0.98, top=0.91, bottom=0.15)  # fixed: constrained layout draws twice
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, s in lines:
        if len(s.steps) > SMOOTH_ABOVE:  # raw points faint, a trailing mean on top (as TensorBoard)
            (raw,) = ax.plot(s.steps, s.values, "-", linewidth=0.8, alpha=0.3)
            ax.plot(s.steps, _trailing_mean(s.values, len(s.values) // 12), "-", color=raw.get_color(),
                    label=label, linewidth=1.6)  # fmt: skip
        else:
            ax.plot(s.steps, s.values, "o-", label=label, markersize=3, linewidth=1.4)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(lines) > 1:
        ax.legend(fontsize=8, loc="best")
    atomic.write_file(path, lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3f}"


def _summary_table(rows: Sequence[dict[str, Any]], source: str, splits: Sequence[str]) -> str:
    """One row per metric; first / last / best for each split (best: max, min or none)."""
    body = []
    for metric, better in SUMMARY:
        cells, found = [html.escape(metric)], False
        for split in splits:
            s = _series(rows, f"{split}/{source}/{metric}")
            found |= s is not None
            if s is None:
                cells += ["", "", ""]
            else:
                best = _fmt(better(s.values)) if better is not None else "—"
                cells += [_fmt(s.values[0]), _fmt(s.values[-1]), best]
        if found:
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not body:
        return ""
    top = (
        "<tr><th></th>"
        + "".join(f'<th colspan="3" class="split">{html.escape(s)}</th>' for s in splits)
        + "</tr>"
    )
    sub = "<tr><th>metric</th>" + "<th>first</th><th>last</th><th>best</th>" * len(splits) + "</tr>"
    return f"<table>{top}{sub}{''.join(body)}</table>"


def _samples_html(run: Path, source: str) -> str:
    if source == ALL:
        return ""
    rows = [r for r in read_samples(run) if source_key(str(r.get("data_source", ""))) == source]
    if not rows:
        return ""
    last = max(r["step"] for r in rows)
    parts = []
    for r in [r for r in rows if r["step"] == last][:SAMPLES_PER_SOURCE]:
        head = f"step {last} · reward {_fmt(r.get('reward'))} · accuracy {_fmt(r.get('accuracy'))}"
        if r.get("sample_id"):
            head += f" · {r['sample_id']}"
        pred = r.get("prediction")
        read = "" if pred is None else f'<p class="small">read: {html.escape(_short(pred))}</p>'
        parts.append(
            f"<details><summary>{html.escape(head)}</summary><pre>{html.escape(str(r.get('text', '')))}</pre>"
            f"{read}</details>"
        )
    return "<h3>Samples</h3>" + "".join(parts)


def _short(prediction: Any, limit: int = 300) -> str:
    """What the verifier read, as one line: the text, or the boxes as JSON; cut to `limit` chars."""
    text = prediction if isinstance(prediction, str) else json.dumps(prediction, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_report(run_dir: str | Path) -> Path:
    """Write RUN/report.html and RUN/report/*.png from RUN/metrics.jsonl; return the HTML path.

    Raises `MetricsError` when the run has no metrics file.
    """
    run = Path(run_dir)
    rows = read_metrics(run)
    out_dir = run / "report"
    out_dir.mkdir(exist_ok=True)
    for old in out_dir.glob("*.png"):  # plots of an earlier report that may no longer apply
        old.unlink()
    sources, run_level = _split_keys(rows)
    used: set[str] = set()
    sections = []
    nav = []
    for source, splits in sources.items():
        stem = _file_stem(source, used)
        anchor = f"src-{stem}"
        heading = "all sources" if source == ALL else source
        nav.append(f'<a href="#{anchor}">{html.escape(heading)}</a>')
        images = []
        for panel, title, metrics, which in PANELS:
            lines = []
            for split in splits if which == "all" else [s for s in splits if s == "train"] or splits[:1]:
                for metric, label in metrics:
                    s = _series(rows, f"{split}/{source}/{metric}")
                    if s is not None:
                        lines.append((f"{split} {label}" if len(splits) > 1 else label, s))
            if lines:
                name = f"{stem}__{panel}.png"
                _plot(out_dir / name, f"{heading}: {title}", lines)
                images.append(f'<img src="report/{html.escape(name)}" alt="{html.escape(source)} {title}">')
        sections.append(
            f'<h2 id="{anchor}">{html.escape(heading)}</h2>'
            + _summary_table(rows, source, splits)
            + f'<div class="grid">{"".join(images)}</div>'
            + _samples_html(run, source)
        )

    groups: dict[str, list[str]] = defaultdict(list)
    for key in run_level:
        groups[key.split("/")[0] if "/" in key else "run"].append(key)
    run_images = []
    for group, keys in sorted(groups.items()):
        found = [(k, s) for k in keys if (s := _series(rows, k)) is not None]
        for i, cluster in enumerate(_by_magnitude(found)):
            shown = sorted(cluster, key=lambda ks: -abs(ks[1].values[-1]))[:MAX_GLOBAL_SERIES]
            title = group if len(cluster) > 1 else cluster[0][0]
            if len(shown) < len(cluster):
                title += f" (largest {len(shown)} of {len(cluster)})"
            name = f"run__{_file_stem(f'{group}_{i}', used)}.png"
            _plot(out_dir / name, title, [(k.split("/", 1)[-1], s) for k, s in shown])
            run_images.append(f'<img src="report/{html.escape(name)}" alt="{html.escape(title)}">')
    if run_images:
        nav.append('<a href="#run">run</a>')
        sections.append(f'<h2 id="run">Run</h2><div class="grid">{"".join(run_images)}</div>')

    n_sources = len([s for s in sources if s != ALL])
    steps = f"steps {rows[0]['step']}–{rows[-1]['step']}" if rows else "no steps logged"
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>triune report: {html.escape(run.name)}</title><style>{CSS}</style></head><body>"
        f"<h1>Training report: {html.escape(run.name)}</h1>"
        f'<p class="meta">{steps} · {n_sources} data sources · from metrics.jsonl</p>'
        f"<nav>{''.join(nav)}</nav>{''.join(sections) or '<p>No metrics yet.</p>'}"
        f'<p class="small">Best: max for reward, accuracy, format, correct ratio, IoU and mAP; min for '
        f"rates. Correct means accuracy at or above the verifier's threshold (metrics.py).</p>"
        "</body></html>\n"
    )
    path = run / "report.html"
    atomic.write_bytes(path, page.encode())
    return path
