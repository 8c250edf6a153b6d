"""`triune filter`: run a filter recipe over a triune dataset and write the derived dataset.

1. Open the parent: its manifest, its schema version, each shard's Arrow schema (a foreign
   parquet or another schema version is one line naming the file and the mismatch).
2. Load the metadata columns the recipe's filters declare, once, over all shards (never the
   `images` column), with ROW / FILE / POS.
3. Run the stages in order, each on the rows still kept and in its scope; count per data_source
   (read + added = kept + rejected), collect rejects (reason = the filter's name), apply the
   filter's updates and copies. `analyse_only` counts what each stage would drop and keeps all.
4. Write: for each parent shard, one pyarrow read, the kept rows masked (or taken, a row's copies
   right after it), the updated columns put in, streamed into the same size-capped `ShardSeries`
   build uses, in manifest order within each (data_source, split) series (two series at a time,
   on two threads); then rejects, card and manifest (with the parent's manifest hash and the
   stages: the lineage), through the same calls as build.

Resume: a shard series is committed parent file by parent file (`.work/state.json`), so
`resume` skips the parent files already in committed shards and writes the same bytes an
uninterrupted run writes. The stages rerun (cheap: metadata only); a stage caches its own
expensive work in `Context.work`, which survives a resume.

Steps 1-2 live in `filters/parent.py`, the shard series of step 4 in `filters/output.py`.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from triune_data import atomic, outdir
from triune_data.card import write_card
from triune_data.errors import DatasetError, TriuneInternalError
from triune_data.filters.base import FILE, POS, ROW, Context, Filter, Verdict
from triune_data.filters.output import COPY, WORK_DIR, ShardWriter, shard_table
from triune_data.filters.parent import ORIGINAL_ID, load_rows, open_parent
from triune_data.filters.recipe import LoadedFilterRecipe, load_filter_recipe
from triune_data.manifest import (
    MANIFEST,
    FileEntry,
    Manifest,
    Parent,
    RecipeInfo,
    SourceCounts,
    Stage,
    StageCounts,
    manifest_sha256,
    write_manifest,
)
from triune_data.schema import arrow_schema
from triune_data.writer import (
    REJECT_SCHEMA,
    final_shard_names,
    write_rejects,
)

BASE_COLUMNS = ("id", "data_source", "task", "split")
# A filter may not rewrite what places a row (its shard, its identity) or its image bytes.
FROZEN_COLUMNS = frozenset({"id", "data_source", "split", "images"})
MAX_DETAIL = 1000
WRITE_THREADS = 2


@dataclass
class StageReport:
    name: str
    sources: dict[str, StageCounts]  # per data_source
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class FilterReport:
    out: Path
    parent: Path
    stages: list[StageReport]
    sources: dict[str, SourceCounts]  # as in the manifest: read (the parent's rows), kept, rejected
    files: int
    bytes: int
    analyse_only: bool = False
    resumed_from: int = 0  # parent shards skipped because an interrupted run had committed them

    def to_json(self) -> dict[str, Any]:
        def counts(c: StageCounts) -> dict[str, Any]:
            return {
                "read": c.read,
                "added": c.added,
                "kept": c.kept,
                "rejected": c.rejected,
                "rejected_by_reason": dict(sorted(c.rejected_by_reason.items())),
            }

        return {
            "out": str(self.out),
            "parent": str(self.parent),
            "analyse_only": self.analyse_only,
            "files": self.files,
            "bytes": self.bytes,
            "stages": [
                {
                    "name": s.name,
                    "sources": {k: counts(c) for k, c in sorted(s.sources.items())},
                    "facts": s.facts,
                }
                for s in self.stages
            ],
            "sources": {k: counts(c) for k, c in sorted(self.sources.items())},
            "totals": {
                key: sum(getattr(c, key) for c in self.sources.values())
                for key in ("read", "added", "kept", "rejected")
            },
        }


# ----------------------------------------------------------------------------------------------
# Running the stages


@dataclass
class _Rejects:
    parts: list[pl.DataFrame] = field(default_factory=list)

    def add(self, rows: pl.DataFrame, reason: str, detail: pl.Series) -> None:
        self.parts.append(
            pl.DataFrame(
                {
                    "data_source": rows["data_source"],
                    "split": rows["split"],
                    "id": rows["id"],
                    "original_id": rows[ORIGINAL_ID],
                    "reason": pl.repeat(reason, rows.height, dtype=pl.Utf8, eager=True),
                    "detail": detail.fill_null("").str.slice(0, MAX_DETAIL),
                    "file": pl.repeat(None, rows.height, dtype=pl.Utf8, eager=True),
                }
            )
        )

    def table(self) -> pa.Table:
        if not self.parts:
            return REJECT_SCHEMA.empty_table()
        return pl.concat(self.parts).to_arrow().cast(REJECT_SCHEMA)


def _check_verdict(f: Filter, v: Verdict, n: int, schema: pa.Schema) -> None:
    """A filter's answer must be aligned with its rows and typed as documented: a bug otherwise."""

    def bad(what: str) -> TriuneInternalError:
        return TriuneInternalError(f"filter {f.name}: {what} (for {n} rows)")

    if not isinstance(v, Verdict):
        raise bad(f"apply returned {type(v).__name__}, not a Verdict")
    if len(v.drop) != n or v.drop.dtype != pl.Boolean:
        raise bad(f"drop is {len(v.drop)} values of {v.drop.dtype}, expected Boolean")
    if v.drop.null_count():
        raise bad("drop has nulls")
    if v.detail is not None and (len(v.detail) != n or v.detail.dtype not in (pl.Utf8, pl.Null)):
        raise bad(f"detail is {len(v.detail)} values of {v.detail.dtype}, expected Utf8")
    if v.copies is not None:
        if len(v.copies) != n or not v.copies.dtype.is_integer() or v.copies.null_count():
            raise bad(f"copies is {len(v.copies)} values of {v.copies.dtype}, expected UInt32")
        if n and int(v.copies.min() or 0) < 1:  # type: ignore[arg-type]
            raise bad("copies must be at least 1 (drop a row with `drop`)")
    for col, values in v.updates.items():
        if col in FROZEN_COLUMNS or col not in schema.names:
            raise bad(f"updates {col!r}, which a filter cannot write")
        if len(values) != n:
            raise bad(f"updates {col!r} with {len(values)} values")
        try:
            values.to_arrow().cast(schema.field(col).type)
        except (pa.ArrowException, pl.exceptions.PolarsError) as exc:
            raise bad(f"updates {col!r} with {values.dtype}: {exc}") from None
    try:
        json.dumps(v.facts)
    except (TypeError, ValueError) as exc:
        raise bad(f"facts are not JSON ({exc})") from None


def _per_source(series: pl.Series, sources: pl.Series) -> Counter[str]:
    if not len(series):
        return Counter()
    df = pl.DataFrame({"s": sources, "v": series}).group_by("s").agg(pl.col("v").sum())
    return Counter({k: int(v) for k, v in zip(df["s"].to_list(), df["v"].to_list(), strict=True) if v})


def _load_column(df: pl.DataFrame, files: list[Path], col: str) -> pl.DataFrame:
    """Add sample column `col` (not yet loaded) to the rows, by FILE and POS."""
    extra = load_rows(files, [col]).select(FILE, POS, col)
    return df.join(extra, on=[FILE, POS], how="left", maintain_order="left")


def _scope_mask(df: pl.DataFrame, f: Filter) -> pl.Series:
    if f.tasks is None and f.data_sources is None:
        return pl.repeat(True, df.height, dtype=pl.Boolean, eager=True)
    # Series operations: a one-column `df.select` costs several times more on a wide frame.
    mask = pl.repeat(True, df.height, dtype=pl.Boolean, eager=True)
    if f.tasks is not None:
        mask &= df["task"].is_in(list(f.tasks))
    if f.data_sources is not None:
        mask &= df["data_source"].is_in(list(f.data_sources))
    return mask


def _write_column(df: pl.DataFrame, col: str, positions: pl.Series, values: pl.Series) -> pl.DataFrame:
    """`df` with `values` written into column `col` at row `positions`."""
    current = df[col]
    values = values.cast(current.dtype)
    if not current.dtype.is_nested():
        return df.with_columns(current.scatter(positions, values))
    # Polars cannot scatter into a struct or list column: a join on the position of just that column.
    patch = pl.DataFrame({"_i": positions.cast(pl.UInt32), "_v": values}).with_columns(_hit=pl.lit(True))
    merged = (
        pl.DataFrame({col: current})
        .with_row_index("_i")
        .join(patch, on="_i", how="left", maintain_order="left")
        .select(pl.when(pl.col("_hit")).then(pl.col("_v")).otherwise(pl.col(col)).alias(col))
    )
    return df.with_columns(merged[col])


def run_stages(
    loaded: LoadedFilterRecipe,
    df: pl.DataFrame,
    ctx_for: Callable[[int, Filter], Context],
    files: list[Path],
    all_sources: list[str],
    *,
    analyse_only: bool,
) -> tuple[pl.DataFrame, list[StageReport], _Rejects, set[str]]:
    """Run every stage over `df` (all parent rows); returns the kept rows (copies included, in
    dataset order: FILE, POS, COPY) with the columns the output needs, the per-stage counts, the
    rejects and the names of the columns filters updated.

    Rows are never moved while the stages run: a dropped row is switched off in `alive`, an update
    is written in place, a copy is appended at the end (and sorted into place for the filters that
    see it). So each stage costs what its own columns cost, not a copy of every loaded column.
    """
    schema = arrow_schema()
    rejects = _Rejects()
    updated: set[str] = set()
    reports = []
    alive = pl.repeat(True, df.height, dtype=pl.Boolean, eager=True)
    # Rows alive per data_source: counted once, then kept up to date from each stage's counts.
    live: Counter[str] = Counter(dict(df["data_source"].value_counts().iter_rows()) if df.height else {})
    order: pl.Series | None = None  # positions in dataset order, once copies are appended
    for index, f in enumerate(loaded.filters):
        for col in f.columns:
            if col not in df.columns and col != "images":
                df = _load_column(df, files, col)
        read = live.copy()  # what the stage before kept
        needed = [
            c
            for c in dict.fromkeys([*f.columns, *BASE_COLUMNS, ORIGINAL_ID, ROW, FILE, POS])
            if c != "images"
        ]
        mask = alive & _scope_mask(df, f)
        if order is None and mask.all():  # every row: no copy of the stage's columns
            at = pl.int_range(df.height, dtype=pl.UInt32, eager=True)
            rows = df.select(needed)
        elif order is None:
            at = mask.arg_true()
            rows = df.select(needed).filter(mask)
        else:  # dataset order: a copy right after its row; one gather of the stage's columns
            at = order.filter(mask.gather(order))
            rows = df.select(needed)[at]
        verdict = f.apply(rows, ctx_for(index, f))
        _check_verdict(f, verdict, rows.height, schema)
        drop = verdict.drop
        any_drop = bool(drop.any())
        dropped = _per_source(drop.cast(pl.UInt32), rows["data_source"]) if any_drop else Counter()
        keep = drop.not_()
        if any_drop and not analyse_only:
            detail = verdict.detail if verdict.detail is not None else pl.repeat("", rows.height, eager=True)
            rejects.add(rows.filter(drop), f.name, detail.filter(drop).cast(pl.Utf8))
            alive = alive.scatter(at.filter(drop), False)
        kept_at = at if analyse_only or not any_drop else at.filter(keep)
        # Updates: written into the kept rows (every row, in analyse-only mode).
        for col, values in verdict.updates.items():
            if col not in df.columns:
                df = _load_column(df, files, col)
            vals = values if analyse_only or not any_drop else values.filter(keep)
            df = _write_column(df, col, kept_at, vals)
            updated.add(col)
        added: Counter[str] = Counter()
        if verdict.copies is not None:
            copies = verdict.copies if analyse_only or not any_drop else verdict.copies.filter(keep)
            copies = copies.cast(pl.UInt32)
            sources = (
                rows["data_source"] if analyse_only or not any_drop else rows["data_source"].filter(keep)
            )
            added = _per_source((copies - 1).cast(pl.UInt64), sources)
            if not analyse_only and any(added.values()):
                # A copy carries only the columns a later stage or the output reads (nulls elsewhere).
                later = {c for g in loaded.filters[index + 1 :] for c in g.columns}
                extra = _copies_of(df, kept_at, copies, keep={*later, *BASE_COLUMNS, *updated})
                df = pl.concat([df, extra])
                alive = pl.concat([alive, pl.repeat(True, extra.height, dtype=pl.Boolean, eager=True)])
                updated.add("id")
                order = _dataset_order(df)
        counts = {}
        for source in all_sources:
            reasons = {f.name: dropped[source]} if dropped[source] else {}
            counts[source] = StageCounts(
                read=read[source],
                added=added[source],
                kept=read[source] + added[source] - dropped[source],
                rejected_by_reason=reasons,
            )
        reports.append(StageReport(f.name, counts, dict(verdict.facts)))
        if not analyse_only:
            live = Counter({k: c.kept for k, c in counts.items() if c.kept})
    out_columns = [*dict.fromkeys([FILE, POS, COPY, ROW, *BASE_COLUMNS, *sorted(updated)])]
    if order is None:
        return df.select(out_columns).filter(alive), reports, rejects, updated
    return df.select(out_columns)[order.filter(alive.gather(order))], reports, rejects, updated


def _dataset_order(df: pl.DataFrame) -> pl.Series:
    """Row positions sorted by (FILE, POS, COPY): a copy right after its row. One UInt64 key
    (FILE in the top 16 bits, POS in the next 32, COPY in the low 16) sorts faster than three."""
    key = (
        pl.col(FILE).cast(pl.UInt64) * (1 << 48)
        + pl.col(POS).cast(pl.UInt64) * (1 << 16)
        + pl.col(COPY).cast(pl.UInt64)
    )
    return df.select(key.arg_sort()).to_series().cast(pl.UInt32)


def _copies_of(df: pl.DataFrame, at: pl.Series, copies: pl.Series, keep: set[str]) -> pl.DataFrame:
    """Copy k = 1..copies-1 of the rows at positions `at`: id `{id}~{k}`, COPY k, a new ROW; of the
    other columns only those in `keep` (the rest null: gathering unread struct columns is costly)."""
    extra = pl.DataFrame({"_at": at, "_n": copies}).filter(pl.col("_n") > 1)
    extra = extra.with_columns(pl.int_ranges(1, pl.col("_n"), dtype=pl.UInt32).alias("_k")).explode("_k")
    carried = [c for c in df.columns if c in keep or c in (ORIGINAL_ID, ROW, FILE, POS, COPY)]
    base = df.select(carried)[extra["_at"]]
    next_row = int(df[ROW].max() or 0) + 1  # type: ignore[arg-type]
    return base.with_columns(
        (pl.col("id") + "~" + extra["_k"].cast(pl.Utf8)).alias("id"),
        extra["_k"].alias(COPY),
        pl.int_range(next_row, next_row + pl.len(), dtype=pl.UInt64).alias(ROW),
        *(pl.lit(None, dtype=df.schema[c]).alias(c) for c in df.columns if c not in carried),
    ).select(df.columns)


# ----------------------------------------------------------------------------------------------
# The command


def filter_dataset(
    src: str | Path,
    recipe: str | Path | LoadedFilterRecipe,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    analyse_only: bool = False,
    progress: Callable[[int], None] | None = None,
) -> FilterReport:
    """Filter the dataset `src` with `recipe` into `out` (see the module docstring).

    `progress` is called with the number of parent shards done after each one. `out` is claimed
    as build claims its output (`triune_data.outdir`): an overwrite never deletes `src` or the recipe.
    """
    loaded = recipe if isinstance(recipe, LoadedFilterRecipe) else load_filter_recipe(recipe)
    src, out = Path(src), Path(out)
    if out.resolve() == src.resolve():
        raise DatasetError(f"--out {out} is the dataset being filtered; choose another directory")
    manifest, files = open_parent(src)
    lock = outdir.claim(out, resume=resume, overwrite=overwrite, inputs=[src, loaded.path])
    try:
        if resume and (out / MANIFEST).exists() and not (out / WORK_DIR).exists():
            raise DatasetError(f"{out} is already complete; nothing to resume")
        return _run(
            loaded, src, manifest, files, out, resume=resume, analyse_only=analyse_only, progress=progress
        )
    except OSError as exc:
        raise outdir.write_error(out, exc) from None
    finally:
        outdir.release(lock)


def _run(
    loaded: LoadedFilterRecipe,
    src: Path,
    manifest: Manifest,
    files: list[Path],
    out: Path,
    *,
    resume: bool,
    analyse_only: bool,
    progress: Callable[[int], None] | None,
) -> FilterReport:
    parent_sha = manifest_sha256(src)
    schema = arrow_schema({"triune_recipe": json.dumps({"name": loaded.recipe.name, "hash": loaded.hash})})
    output = loaded.recipe.output
    writer = ShardWriter(
        out,
        schema,
        int(output.shard_size_mb * 1024 * 1024),
        int(output.row_group_mb * 1024 * 1024),
        {"recipe_hash": loaded.hash, "parent_manifest_sha256": parent_sha, "analyse_only": analyse_only},
        resume=resume,
    )

    def ctx_for(index: int, f: Filter) -> Context:
        work = out / WORK_DIR / "stages" / f"{index:02d}-{f.name}"
        work.mkdir(parents=True, exist_ok=True)
        return Context(
            root=src, files=tuple(files), recipe_dir=loaded.base_dir, seed=loaded.recipe.seed, work=work
        )

    columns = [*BASE_COLUMNS, *(c for f in loaded.filters for c in f.columns)]
    df = load_rows(files, columns)
    all_sources = sorted(manifest.sources)
    df, stages, rejects, updated = run_stages(
        loaded, df, ctx_for, files, all_sources, analyse_only=analyse_only
    )

    by_file = (
        df.select(FILE, POS, COPY, *sorted(updated)).partition_by(FILE, as_dict=True) if df.height else {}
    )
    keys = [(e.data_source or "", e.split or "") for e in manifest.files]
    todo: dict[tuple[str, str], list[int]] = defaultdict(list)  # per output series, its parent files
    for i, key in enumerate(keys):
        if i >= writer.get(key).committed_upto:
            todo[key].append(i)
    skipped = len(files) - sum(map(len, todo.values()))
    # Series are independent: two threads each write whole series, reading a parent shard and
    # writing it (pyarrow releases the GIL for both), so both cores work. Within a series the
    # parent files go in order, so the bytes do not depend on the threads.
    stop = threading.Event()
    done = [skipped]
    count = threading.Lock()

    def write_series(key: tuple[str, str], indices: list[int]) -> None:
        for i in indices:
            if stop.is_set():
                return
            kept = by_file.get((i,))
            if kept is not None and kept.height:
                writer.add(key, i, shard_table(files[i], kept, updated, schema))
            if progress:
                with count:
                    done[0] += 1
                    progress(done[0])
        writer.close_series(key, len(files))

    with ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="triune-write") as pool:
        futures = [pool.submit(write_series, key, indices) for key, indices in todo.items()]
        try:
            for future in futures:
                future.result()
            writer.finish(len(files))
        except BaseException:
            stop.set()
            wait(futures)
            writer.abort()
            raise
    return _finish(loaded, src, parent_sha, manifest, out, writer, stages, rejects, analyse_only, skipped)


def _finish(
    loaded: LoadedFilterRecipe,
    src: Path,
    parent_sha: str,
    parent: Manifest,
    out: Path,
    writer: ShardWriter,
    stages: list[StageReport],
    rejects: _Rejects,
    analyse_only: bool,
    skipped: int,
) -> FilterReport:
    writer.hasher.shutdown(wait=True)  # shards are hashed where they were written: before they move
    states = {s.key: s.state() for s in writer.series.values()}
    mapping = final_shard_names(states)
    for provisional, final in mapping.items():
        src_path, dst = writer.work / provisional, out / final
        if src_path.exists():
            atomic.move(src_path, dst)
        elif not dst.exists():
            raise DatasetError(f"{out}: shard {provisional} is missing from the run's state")
    rejects_entry = write_rejects(out, rejects.table())

    files, splits = [], defaultdict(dict)  # type: ignore[var-annotated]
    for key, st in sorted(states.items()):
        source, split = key.split("/", 1)
        splits[source][split] = sum(s["rows"] for s in st["shards"])
        for shard in st["shards"]:
            files.append(
                FileEntry.of(
                    out,
                    mapping[shard["name"]],
                    rows=shard["rows"],
                    data_source=source,
                    split=split,
                    sha256=writer.digest(key, shard["name"]),
                )
            )
    sources: dict[str, SourceCounts] = {}
    for name, p in sorted(parent.sources.items()):
        reasons: Counter[str] = Counter()
        added = 0
        for stage in stages:
            reasons.update(stage.sources[name].rejected_by_reason)
            added += stage.sources[name].added
        kept = sum(splits.get(name, {}).values())
        sources[name] = SourceCounts(
            read=p.kept,
            added=0 if analyse_only else added,
            kept=kept,
            rejected_by_reason={} if analyse_only else dict(reasons),
            rows_by_split={k: v for k, v in splits.get(name, {}).items() if v},
            adapters=p.adapters,
            licenses=p.licenses,
        )
    suffix = " (analyse only)" if analyse_only else ""
    recipe = loaded.recipe
    manifest = Manifest(
        recipe=RecipeInfo(
            name=recipe.name, hash=loaded.hash, seed=recipe.seed, description=recipe.description
        ),
        files=files,
        rejects=rejects_entry,
        sources=sources,
        parent=Parent(path=str(src), manifest_sha256=parent_sha),
        stages=[Stage(name=s.name + suffix, sources=s.sources, facts=s.facts) for s in stages],
    )
    atomic.write_json(out / "recipe.json", loaded.resolved)
    write_card(out, manifest)
    write_manifest(out, manifest)
    shutil.rmtree(writer.work, ignore_errors=True)
    return FilterReport(
        out=out,
        parent=src,
        stages=stages,
        sources=sources,
        files=len(files),
        bytes=sum(f.bytes for f in files),
        analyse_only=analyse_only,
        resumed_from=skipped,
    )


__all__ = ["FilterReport", "StageReport", "filter_dataset", "load_rows", "open_parent", "run_stages"]
