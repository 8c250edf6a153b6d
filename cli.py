"""`triune`: thin commands over triune_data and triune_train.

Every command parses its options, calls one library function and prints the result. Mistakes a
user can make raise `TriuneError`; `main()` prints those as one line and exits 2 (the traceback
only with TRIUNE_DEBUG=1).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from triune_data.errors import TriuneError

app = typer.Typer(
    name="triune",
    help="Unified RL for vision-language models: build datasets, score completions, train.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped output is not wrapped to 80 columns: tables stay one row per data_source.
out_console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)

RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML file.", show_default=False)]
DatasetArg = Annotated[Path, typer.Argument(help="A dataset directory written by `triune build-dataset`.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------------------------
# Data


@app.command(
    "build-dataset", epilog="Example: triune build-dataset recipes/demo.yaml --out out/demo --workers 2"
)
def build_dataset_cmd(
    recipe: RecipeArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (Hub layout).")],
    workers: Annotated[
        int, typer.Option(min=1, help="Processes that load and check images (this one included).")
    ] = 1,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted build in --out.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Convert the sources of RECIPE into sharded parquet with a manifest, card and rejects."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from triune_data.build import build_dataset

    columns = [
        TextColumn("[bold]building"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    ]
    # auto_refresh=False: no refresh thread, so build workers can be forked (see triune_data.produce).
    progress = Progress(*columns, console=err_console, transient=True, disable=json_out, auto_refresh=False)
    with progress as bar:
        task = bar.add_task("build", total=None, status="")

        def on_progress(p) -> None:
            bar.update(
                task, status=f"{p.records} read, {p.kept} kept, {p.rejected} rejected, {p.bytes / 1e6:.1f} MB"
            )
            bar.refresh()

        report = build_dataset(
            recipe, out, workers=workers, resume=resume, overwrite=overwrite, progress=on_progress
        )
    summary = {
        name: {
            "read": c.read,
            "kept": c.kept,
            "rejected": c.rejected,
            "rejected_by_reason": c.rejected_by_reason,
        }
        for name, c in report.sources.items()
    }
    if json_out:
        _print_json(
            {"out": str(report.out), "files": report.files, "bytes": report.bytes, "sources": summary}
        )
        return
    table = Table("data_source", "read", "kept", "rejected", "top reject reasons", title=f"{report.out}")
    for name, c in report.sources.items():
        top = sorted(c.rejected_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        reasons = ", ".join(f"{r} {n}" for r, n in top)
        table.add_row(name, str(c.read), str(c.kept), str(c.rejected), reasons)
    out_console.print(table)
    resumed = f", resumed after {report.resumed_from} committed records" if report.resumed_from else ""
    out_console.print(f"{report.files} shards, {report.bytes / 1e6:.1f} MB{resumed}")


@app.command("inspect", epilog="Example: triune inspect out/demo --json")
def inspect_cmd(path: DatasetArg, json_out: JsonOpt = False) -> None:
    """Rows, tasks, verifiers, image sizes, box counts and rejects by reason, per data_source."""
    from triune_data.inspect import inspect_dataset

    info = inspect_dataset(path)
    if json_out:
        _print_json(info)
    else:
        table = Table(
            "data_source",
            "read",
            "kept",
            "rejected",
            "splits",
            "tasks",
            "verifiers",
            "image w×h (median)",
            "boxes",
        )
        for name, s in info["sources"].items():
            size = f"{s['image_width']['median']:.0f}×{s['image_height']['median']:.0f}" if s["kept"] else "-"
            table.add_row(
                name,
                str(s["read"]),
                str(s["kept"]),
                str(s["rejected"]),
                _fmt_counts(s["rows_by_split"]),
                _fmt_counts(s["tasks"]),
                _fmt_counts(s["verifiers"]),
                size,
                str(s.get("boxes", {}).get("total", 0)),
            )
        out_console.print(table)
        for name, s in info["sources"].items():
            if s["rejected_by_reason"]:
                out_console.print(f"[bold]{name}[/] rejects: {_fmt_counts(s['rejected_by_reason'])}")
    if info["problems"]:
        raise TriuneError("; ".join(info["problems"]))


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


@app.command("push", epilog="Example: HF_TOKEN=... triune push out/demo --repo-id my-org/my-data --private")
def push_cmd(
    path: DatasetArg,
    repo_id: Annotated[str, typer.Option("--repo-id", help="Target dataset repository, ORG/NAME.")],
    private: Annotated[bool, typer.Option(help="Create the repository as private.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be uploaded; upload nothing.")
    ] = False,
) -> None:
    """Upload a finished dataset to the Hugging Face Hub in one commit (token from HF_TOKEN)."""
    from triune_data.hub import push

    files = push(path, repo_id, private=private, dry_run=dry_run)
    verb = "would upload" if dry_run else "uploaded"
    for rel, size in files:
        out_console.print(f"{rel}\t{size}")
    out_console.print(
        f"{verb} {len(files)} files, {sum(s for _, s in files) / 1e6:.1f} MB to datasets/{repo_id}"
    )


@app.command(
    "export",
    epilog="Examples: triune export out/demo --format verl --out out/demo-verl\n\n"
    "triune export out/demo --format easyr1 --out out/demo-easyr1",
)
def export_cmd(
    path: DatasetArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="Target layout: verl (verl, V-Triune, ROLL) or easyr1. See docs/interop.md."
        ),
    ] = "verl",
    int_boxes: Annotated[
        bool,
        typer.Option(
            "--int-boxes/--float-boxes",
            help="verl: box ground truth in V-Triune's integer 0-1000 (default: float, exact to 0.001).",
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write the dataset as one parquet file per split that verl or EasyR1 loads as it is."""
    from triune_data.export import export_dataset

    report = export_dataset(
        path, out, fmt=fmt, overwrite=overwrite, box_numbers="int" if int_boxes else "float"
    )
    if json_out:
        _print_json(
            {
                "files": [{"path": str(out / name), "rows": rows} for name, rows in report.files],
                "rows": [
                    {"split": s, "data_source": d, "rows": n} for (s, d), n in sorted(report.rows.items())
                ],
            }
        )
        return
    table = Table("split", "data_source", "rows")
    for (split, source), rows in sorted(report.rows.items()):
        table.add_row(split, source, str(rows))
    out_console.print(table)
    for name, rows in report.files:
        out_console.print(f"{out / name}\t{rows} rows")


@app.command("schemas", hidden=True)
def schemas_cmd(
    out: Annotated[Path, typer.Option(help="Directory for the JSON Schemas.")] = Path("schemas"),
) -> None:
    """Regenerate the committed JSON Schemas from the code."""
    from triune_data.schemas_gen import write_schemas

    for p in write_schemas(out):
        out_console.print(str(p))


# ----------------------------------------------------------------------------------------------
# Rewards


@app.command(
    "serve-rewards", epilog="Example: TRIUNE_REWARD_TOKEN=secret triune serve-rewards --port 8192 --workers 4"
)
def serve_rewards_cmd(
    host: Annotated[
        str, typer.Option(help="Interface to bind; 127.0.0.1 unless you mean to expose it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8192,
    workers: Annotated[
        int, typer.Option(min=0, help="Verifier processes (0: score in the server process).")
    ] = 2,
    timeout: Annotated[float, typer.Option(help="Hard per-item time limit in seconds.")] = 10.0,
) -> None:
    """Serve POST /v1/score and GET /healthz (bearer token from TRIUNE_REWARD_TOKEN if set)."""
    from triune_train.rewards.service import serve

    serve(host=host, port=port, workers=workers, timeout_s=timeout)


@app.command(
    "score",
    epilog=(
        "Examples: triune score --items items.jsonl --out results.jsonl\n\n"
        "triune score --data out/demo --completions completions.jsonl --out results.jsonl --server http://127.0.0.1:8192"
    ),
)
def score_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Results JSONL, one RewardResult a line.")],
    items: Annotated[Path | None, typer.Option(help="Self-contained request items (JSONL).")] = None,
    data: Annotated[Path | None, typer.Option(help="A triune dataset to join completions to.")] = None,
    completions: Annotated[
        Path | None,
        typer.Option(help='JSONL lines {"id", "completions": [...]} (or {"id", "completion"}), with --data.'),
    ] = None,
    server: Annotated[
        list[str] | None, typer.Option(help="Reward server URL(s); default: score in-process.")
    ] = None,
    workers: Annotated[int, typer.Option(min=0, help="In-process verifier processes.")] = 2,
    step: Annotated[int, typer.Option(help="Training step to score at (dynamic IoU); with --data.")] = 0,
    total_steps: Annotated[
        int, typer.Option(help="Total training steps (0: evaluation, final threshold).")
    ] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Score model completions with the verifiers, per data_source."""
    from triune_train.rewards.scoring import score_dataset, score_items_file

    if (items is None) == (data is None):
        raise TriuneError("give exactly one of --items FILE or --data DIR --completions FILE")
    if data is not None and completions is None:
        raise TriuneError("--data needs --completions FILE")
    if items is not None:
        summary = score_items_file(items, out, server_urls=server, workers=workers)
    else:
        summary = score_dataset(
            data, completions, out, server_urls=server, workers=workers, step=step, total_steps=total_steps
        )
    if json_out:
        _print_json(summary)
        return
    table = Table(
        "data_source", "items", "mean reward", "mean accuracy", "errors", "timeouts", title=str(out)
    )
    for name, s in [*summary["by_source"].items(), ("TOTAL", summary["total"])]:
        table.add_row(
            name,
            str(s["count"]),
            _fmt(s["mean_reward"]),
            _fmt(s["mean_accuracy"]),
            str(s["error"]),
            str(s["timeout"]),
        )
    out_console.print(table)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def main() -> None:
    try:
        app()
    except TriuneError as exc:
        if os.environ.get("TRIUNE_DEBUG") == "1":
            raise
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
