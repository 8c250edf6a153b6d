"""`triune`: thin commands over triune_data and triune_train.

Every command parses its options, calls one library function and prints the result. Mistakes a
user can make raise `TriuneError`; `main()` prints those as one line naming the thing and the
cause and exits 2 (the traceback only with TRIUNE_DEBUG=1), like the `hf` CLI. A broken invariant
(`TriuneInternalError`) or an unexpected exception is a bug: one line asking for a report, exit 1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from triune_data.errors import TriuneError, TriuneInternalError

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
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def _tty() -> bool:
    """Progress bars only on a terminal: in a pipe or a log they would leave blank lines behind."""
    return err_console.is_terminal


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
    progress = Progress(
        *columns, console=err_console, transient=True, disable=json_out or not _tty(), auto_refresh=False
    )
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
        for name, s in info["sources"].items():
            if d := s.get("difficulty"):
                mean = "-" if d["mean_reward"] is None else f"{d['mean_reward']:.3f}"
                out_console.print(
                    f"[bold]{name}[/] pass rate: {_fmt_counts(d['pass_rate'])}; "
                    f"unscored {d['unscored']}; mean reward {mean}"
                )
        if "lineage" in info:
            parent = info["lineage"]["parent"]
            out_console.print(
                f"derived from {parent['path']} (manifest sha256 {parent['manifest_sha256'][:12]})"
            )
            for i, stage in enumerate(info["lineage"]["stages"]):
                changed = {k: c for k, c in stage["sources"].items() if c["kept"] != c["read"]}
                if not changed:
                    rows = sum(c["read"] for c in stage["sources"].values())
                    out_console.print(f"  {i}. {stage['name']}: kept all {rows} rows")
                    continue
                counts = ", ".join(f"{k} {c['kept']}/{c['read']}" for k, c in changed.items())
                out_console.print(f"  {i}. {stage['name']}: {counts} (kept/read; the others unchanged)")
    if info["problems"]:
        raise TriuneError("; ".join(info["problems"]))


@app.command(
    "filter",
    epilog="Example: triune filter out/demo --recipe recipes/filters/demo.yaml --out out/demo-filtered --report",
)
def filter_cmd(
    path: DatasetArg,
    recipe: Annotated[Path, typer.Option("--recipe", help="Filter recipe YAML (docs/filtering.md).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for the filtered dataset.")],
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in --out.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
    analyse_only: Annotated[
        bool, typer.Option("--analyse-only", help="Count what each filter would drop; keep every row.")
    ] = False,
    report: Annotated[
        bool, typer.Option("--report", help="Print kept/dropped by filter and data_source.")
    ] = False,
    server: Annotated[
        list[str] | None,
        typer.Option(help="Reward server URL(s) for difficulty_stats; default: the local reward pool."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the filters of a recipe over a dataset; write the kept rows as a new dataset with lineage."""
    from triune_data.filters.run import filter_dataset
    from triune_train.rewards.difficulty import use_reward_backend

    # Difficulty statistics score on the same backend as `triune score`: the reward pool (a hard
    # per-item timeout, crashed workers replaced) or the services at --server.
    use_reward_backend(server or None)
    result = filter_dataset(path, recipe, out, resume=resume, overwrite=overwrite, analyse_only=analyse_only)
    if json_out:
        _print_json(result.to_json())
        return
    if report:
        table = Table(
            "stage", "filter", "data_source", "read", "kept", "dropped", "added", title=str(result.out)
        )
        quiet = []  # stages that neither dropped nor added a row: one line, not a row per source
        for i, stage in enumerate(result.stages):
            if not any(c.rejected or c.added for c in stage.sources.values()):
                quiet.append(f"{i} {stage.name}")
                continue
            for name, c in sorted(stage.sources.items()):
                table.add_row(
                    str(i), stage.name, name, str(c.read), str(c.kept), str(c.rejected), str(c.added)
                )
        out_console.print(table)
        if quiet:
            out_console.print(f"kept every row: {', '.join(quiet)}")
    table = Table("data_source", "read", "kept", "dropped", "added", title=f"{result.out}")
    for name, c in sorted(result.sources.items()):
        table.add_row(name, str(c.read), str(c.kept), str(c.rejected), str(c.added))
    out_console.print(table)
    mode = " (analyse only: nothing dropped)" if result.analyse_only else ""
    resumed = f", resumed after {result.resumed_from} parent shards" if result.resumed_from else ""
    out_console.print(f"{result.files} shards, {result.bytes / 1e6:.1f} MB{mode}{resumed}")


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
    json_out: JsonOpt = False,
) -> None:
    """Upload a finished dataset to the Hugging Face Hub in one commit (token from HF_TOKEN)."""
    from triune_data.hub import push

    files = push(path, repo_id, private=private, dry_run=dry_run)
    if json_out:
        _print_json(
            {
                "repo_id": repo_id,
                "dry_run": dry_run,
                "files": [{"path": rel, "bytes": size} for rel, size in files],
                "bytes": sum(size for _, size in files),
            }
        )
        return
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
                "out": str(out),
                "format": fmt,
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
    from triune_train.schemas_gen import all_generators

    for p in write_schemas(out, all_generators()):
        out_console.print(str(p))


# ----------------------------------------------------------------------------------------------
# Rewards


@app.command(
    "serve-rewards",
    epilog=(
        "Example: TRIUNE_REWARD_TOKEN=secret triune serve-rewards --port 8192 --workers 4 "
        "--preload my_project.verifiers"
    ),
)
def serve_rewards_cmd(
    host: Annotated[
        str, typer.Option(help="Interface to bind; 127.0.0.1 unless you mean to expose it.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8192,
    workers: Annotated[
        int, typer.Option(min=0, help="Verifier processes (0: score in the server process).")
    ] = 2,
    timeout: Annotated[
        float,
        typer.Option("--timeout", "--timeout-s", min=0.001, help="Hard per-item time limit in seconds."),
    ] = 10.0,
    preload: Annotated[
        list[str] | None,
        typer.Option(help="A module that registers more verifiers (out-of-tree); repeat for several."),
    ] = None,
    max_items: Annotated[
        int | None, typer.Option(min=1, help="Most items one request may hold (default 4096).")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(min=1, help="Largest request body accepted, in bytes (default 64 MiB).")
    ] = None,
    log_level: Annotated[LogLevel, typer.Option(case_sensitive=False, help="Server log level.")] = "info",
    request_timeout_s: Annotated[
        float, typer.Option(min=0.001, help="A request must arrive whole within this many seconds.")
    ] = 30.0,
    keep_alive_s: Annotated[
        int, typer.Option(min=1, help="Idle kept-alive connections close after this many seconds.")
    ] = 5,
    max_connections: Annotated[int, typer.Option(min=1, help="Open connections at most.")] = 1024,
) -> None:
    """Serve POST /v1/score and GET /healthz (bearer token from TRIUNE_REWARD_TOKEN if set)."""
    from triune_train.rewards.protocol import MAX_BODY_BYTES, MAX_ITEMS
    from triune_train.rewards.service import serve

    serve(
        host=host,
        port=port,
        workers=workers,
        timeout_s=timeout,
        preload=preload or (),
        max_items=max_items or MAX_ITEMS,
        max_body_bytes=max_body_bytes or MAX_BODY_BYTES,
        log_level=log_level,
        request_timeout_s=request_timeout_s,
        keep_alive_s=keep_alive_s,
        max_connections=max_connections,
    )


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
    total = _count_lines(items) if items is not None else None  # completions: several a line
    with _progress("scoring", total=total, disable=json_out or not _tty()) as progress:
        if items is not None:
            summary = score_items_file(items, out, server_urls=server, workers=workers, progress=progress)
        elif data is not None and completions is not None:  # (checked above)
            summary = score_dataset(
                data,
                completions,
                out,
                server_urls=server,
                workers=workers,
                step=step,
                total_steps=total_steps,
                progress=progress,
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


# ----------------------------------------------------------------------------------------------
# Training

# What the `train` extra installs; the data and reward commands import none of it.
TRAIN_EXTRA = ("torch", "transformers", "tensorboardX", "matplotlib")


@contextmanager
def _train_extra(command: str) -> Iterator[None]:
    """Turn a missing training dependency into one line that says which extra to install."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in TRAIN_EXTRA:
            raise
        raise TriuneError(
            f"`triune {command}` needs the training extra ({missing} is not installed): "
            "pip install 'triune[train]'"
        ) from exc


@app.command(
    "train",
    epilog=(
        "Examples: triune train recipes/train/demo.yaml --out out/demo-run\n\n"
        "triune train recipes/train/demo.yaml --out out/demo-run --resume\n\n"
        "triune train recipes/train/demo.yaml --out out/try --set total_steps=4 --set optim.lr=3e-4"
    ),
)
def train_cmd(
    recipe: RecipeArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (metrics, checkpoints, eval).")],
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from its last checkpoint.")] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key: --set optim.lr=3e-4 (repeatable)."),
    ] = None,
) -> None:
    """GRPO-train the policy of RECIPE; metrics per data_source go to OUT/metrics.jsonl."""
    with _train_extra("train"):
        from triune_train.config import load_train_config
        from triune_train.loop import train

        cfg = load_train_config(recipe, overrides or [])
        result = train(cfg, out, resume=resume, echo=lambda line: out_console.print(line, highlight=False))
    last = result.checkpoint.name if result.checkpoint else "none"
    out_console.print(f"done: {result.step} steps in {result.run}, last checkpoint {last}")


@app.command(
    "eval",
    epilog=(
        "Examples: triune eval out/demo-run/checkpoints/step-000012/policy --data out/demo --out out/demo-eval\n\n"
        "triune eval tiny:qwen2_5_vl --data out/demo --split train --num-samples 8 --out out/difficulty"
    ),
)
def eval_cmd(
    model: Annotated[str, typer.Argument(help="Model folder, Hub id, or tiny:qwen2_5_vl / tiny:qwen3_vl.")],
    data: Annotated[Path, typer.Option(help="A dataset written by `triune build-dataset`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    split: Annotated[str, typer.Option(help="Split to evaluate.")] = "test",
    num_samples: Annotated[
        int, typer.Option(min=1, help="Completions per sample: 1 is greedy, more are sampled.")
    ] = 1,
    temperature: Annotated[
        float, typer.Option(min=0.0, help="Sampling temperature (num-samples > 1).")
    ] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest completion.")] = 256,
    max_prompt_tokens: Annotated[
        int, typer.Option(min=1, help="Longer prompts are skipped, counted.")
    ] = 4096,
    max_per_source: Annotated[
        int | None, typer.Option(min=1, help="At most this many samples per source.")
    ] = None,
    server: Annotated[
        list[str] | None, typer.Option(help="Reward server URL(s); default: score in-process.")
    ] = None,
    workers: Annotated[int, typer.Option(min=0, help="In-process verifier processes.")] = 0,
    seed: Annotated[int, typer.Option(help="Sampling seed (and a tiny model's seed).")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Complete and score a split: OUT/completions.jsonl, results.jsonl, summary.json, per data_source."""
    with _train_extra("eval"):
        from triune_train.eval import eval_model

        summary = eval_model(
            model, data, out, split=split, num_samples=num_samples, temperature=temperature,
            max_new_tokens=max_new_tokens, max_prompt_tokens=max_prompt_tokens, max_per_source=max_per_source,
            server_urls=server or [], workers=workers, seed=seed,
        )  # fmt: skip
    if json_out:
        _print_json(summary)
        return
    table = Table(
        "data_source", "completions", "reward", "accuracy", "format", "truncated", "errors", title=str(out)
    )
    for name, m in summary["by_source"].items():
        table.add_row(
            name, f"{m.get('count', 0):.0f}", _fmt(m.get("reward")), _fmt(m.get("accuracy")), _fmt(m.get("format")),
            _fmt(m.get("truncation_ratio")), _fmt(m.get("error_rate")),
        )  # fmt: skip
    out_console.print(table)
    for key, n in summary["skipped"].items():
        out_console.print(f"skipped {n} prompts: {key}")


@app.command("report", epilog="Example: triune report out/demo-run")
def report_cmd(
    run: Annotated[Path, typer.Argument(help="A run directory written by `triune train`.")],
) -> None:
    """Write RUN/report.html with plots per data_source (readable offline)."""
    with _train_extra("report"):
        from triune_train.report import write_report

        out_console.print(str(write_report(run)))


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _count_lines(path: Path) -> int | None:
    """Non-blank lines of a file (the bar's total), None if it cannot be read (the command says why)."""
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


@contextmanager
def _progress(what: str, *, total: int | None, disable: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (transient); yields `update(done)`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    # auto_refresh=False: no refresh thread, so reward workers can be forked (see triune_data.produce).
    with Progress(*columns, console=err_console, transient=True, disable=disable, auto_refresh=False) as bar:
        task = bar.add_task(what, total=total)

        def update(done: int) -> None:
            bar.update(task, completed=done)
            bar.refresh()

        yield update


DEBUG_HINT = "(TRIUNE_DEBUG=1 shows the traceback)"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def main() -> None:
    debug = os.environ.get("TRIUNE_DEBUG") == "1"
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except TriuneError as exc:  # the user's to fix
        if debug:
            raise
        # escape: a message is text, not markup ("pip install 'triune[train]'" keeps its brackets)
        err_console.print(
            f"[red]error:[/] {escape(_one_line(exc))} {DEBUG_HINT}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except OSError as exc:  # the machine's: a file, a disk, a port no seam named
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        err_console.print(
            f"[red]error:[/] {escape(where + _one_line(exc.strerror or exc))} {DEBUG_HINT}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    except Exception as exc:  # ours: a broken invariant (TriuneInternalError) or any other bug
        if debug:
            raise
        kind = "" if isinstance(exc, TriuneInternalError) else f"{type(exc).__name__}: "
        err_console.print(
            f"[red]internal error:[/] {escape(kind + _one_line(exc))}; this is a bug in triune, please report it "
            "with the output of the same command run with TRIUNE_DEBUG=1",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
