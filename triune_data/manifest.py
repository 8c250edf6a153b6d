"""Finishing a build: shards to their Hub names, the rejects file, `manifest.json`, the card.

The manifest is the dataset's ledger: every file with its sha256, rows per source and split, and
per source `read = kept + rejected` with rejects by reason. It is written last, so a directory
with a manifest is a complete dataset.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from triune_data.errors import DatasetError
from triune_data.schema import BOX_FRAME, SCHEMA_VERSION
from triune_data.writer import (
    REJECT_SCHEMA,
    atomic_write_bytes,
    atomic_write_json,
    concat_parquet,
    final_shard_names,
    sha256_file,
    write_table_atomic,
)

if TYPE_CHECKING:
    from triune_data.build import BuildReport, _Build

REJECTS_FILE = "rejects/rejects-00000-of-00001.parquet"
MANIFEST = "manifest.json"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("triune")
    except Exception:
        return "0+unknown"


def write_outputs(b: _Build, skipped: int) -> BuildReport:
    from triune_data.build import BuildReport, SourceCounts
    from triune_data.hub import render_card

    out, work = b.out, b.work
    b.hasher.shutdown(wait=True)  # shards are hashed where they were written: before they move
    states = {s.key: s.state() for s in b.series.values()}
    mapping = final_shard_names(states)
    for provisional, final in mapping.items():
        src, dst = work / provisional, out / final
        if src.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        elif not dst.exists():
            raise DatasetError(f"{out}: shard {provisional} is missing from the build state")

    rejects = concat_parquet([work / p for p in b.reject_parts], REJECT_SCHEMA)
    write_table_atomic(rejects, out / REJECTS_FILE)

    by_reason: dict[str, Counter] = defaultdict(Counter)
    if rejects.num_rows:
        grouped = rejects.group_by(["data_source", "reason"]).aggregate([("reason", "count")])
        for row in grouped.to_pylist():
            by_reason[row["data_source"]][row["reason"]] = row["reason_count"]

    files = []
    splits: dict[str, dict[str, int]] = defaultdict(dict)
    for key, st in sorted(states.items()):
        source, split = key.split("/", 1)
        splits[source][split] = sum(s["rows"] for s in st["shards"])
        for shard in st["shards"]:
            path = out / mapping[shard["name"]]
            files.append(
                {
                    "path": mapping[shard["name"]],
                    "data_source": source,
                    "split": split,
                    "rows": shard["rows"],
                    "bytes": shard.get("bytes") or path.stat().st_size,
                    "sha256": _digest(b, key, shard["name"], path),
                }
            )

    counts: dict[str, SourceCounts] = {}
    sources: dict[str, Any] = {}
    for run in b.runs:
        ds = run.data_source
        if ds in counts:
            continue
        kept = sum(splits.get(ds, {}).values())
        c = SourceCounts(read=b.read[ds], kept=kept, rejected=by_reason.get(ds, Counter()))
        if c.read != c.kept + c.rejected_total:
            raise DatasetError(
                f"internal error: {ds}: read {c.read} != kept {c.kept} + rejected {c.rejected_total}; please report"
            )
        counts[ds] = c
        sources[ds] = {
            "adapters": sorted({r.adapter for r in b.runs if r.data_source == ds}),
            "read": c.read,
            "kept": c.kept,
            "rejected": c.rejected_total,
            "rejected_by_reason": dict(sorted(c.rejected.items())),
            "rows_by_split": dict(sorted(splits.get(ds, {}).items())),
            "licenses": sorted({r.license for r in b.runs if r.data_source == ds and r.license}),
        }

    manifest = {
        "format": "triune-dataset",
        "schema_version": SCHEMA_VERSION,
        "box_frame": BOX_FRAME,
        "triune_version": _version(),
        "recipe": {"name": b.loaded.recipe.name, "hash": b.loaded.hash, "seed": b.loaded.recipe.seed},
        "files": files,
        "rejects": {
            "path": REJECTS_FILE,
            "rows": rejects.num_rows,
            "bytes": (out / REJECTS_FILE).stat().st_size,
            "sha256": sha256_file(out / REJECTS_FILE),
        },
        "sources": sources,
        "rows_by_split": _rows_by_split(splits),
    }
    atomic_write_json(out / "recipe.json", b.loaded.resolved)
    atomic_write_bytes(out / "README.md", render_card(manifest, b.loaded.resolved).encode())
    atomic_write_json(out / MANIFEST, manifest)
    shutil.rmtree(work, ignore_errors=True)
    total = sum(f["bytes"] for f in files)
    return BuildReport(out=out, sources=counts, files=len(files), bytes=total, resumed_from=skipped)


def _digest(b: _Build, key: str, name: str, path: Path) -> str:
    """The shard's sha256: hashed in the background when it closed, or now (resumed builds)."""
    future = b.series_by_key(key).digests.get(name)
    return future.result() if future is not None else sha256_file(path)


def _rows_by_split(splits: dict[str, dict[str, int]]) -> dict[str, int]:
    total: Counter = Counter()
    for per in splits.values():
        total.update(per)
    return dict(sorted(total.items()))


def read_manifest(path: str | Path) -> dict[str, Any]:
    p = Path(path) / MANIFEST
    if not p.exists():
        raise DatasetError(
            f"{path}: no {MANIFEST} (not a finished triune dataset; was the build interrupted?)"
        )
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{p}: corrupt manifest ({exc.msg})") from None


def verify_files(path: str | Path, manifest: dict[str, Any] | None = None) -> list[str]:
    """Return a list of problems (missing files, size or sha256 mismatches); empty when all is well."""
    root = Path(path)
    manifest = manifest or read_manifest(root)
    problems = []
    for f in [*manifest["files"], manifest["rejects"]]:
        p = root / f["path"]
        if not p.exists():
            problems.append(f"{f['path']}: missing")
        elif p.stat().st_size != f["bytes"] or sha256_file(p) != f["sha256"]:
            problems.append(f"{f['path']}: content differs from the manifest")
    return problems


def read_rejects(path: str | Path) -> pa.Table:
    p = Path(path) / REJECTS_FILE
    return pq.read_table(p) if p.exists() else REJECT_SCHEMA.empty_table()


__all__ = ["MANIFEST", "REJECTS_FILE", "read_manifest", "read_rejects", "verify_files", "write_outputs"]
