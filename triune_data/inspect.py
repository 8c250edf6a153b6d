"""`triune inspect`: what is in a dataset directory, per data_source.

Reads the shards' small columns only (never the image bytes) and the rejects file, and checks the
ledger: for every source, rows read = rows kept + rows rejected, and the rows found in the shards
equal the manifest's. Reject reasons are described from the one list in `triune_data.rejects` and,
for a dataset `triune filter` wrote, from the registered filters (a filter's name is its reason);
a reason in neither is reported as a problem. A filtered dataset's lineage (its parent and the
stages with their counts) is shown too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from triune_data.errors import TriuneInternalError
from triune_data.manifest import FileEntry, Manifest, read_manifest
from triune_data.rejects import REJECT_REASONS
from triune_data.writer import read_rejects, read_shard

_COLUMNS = ["data_source", "split", "task", "reward", "image_sizes", "boxes", "difficulty"]


def _scan(root: Path, files: list[FileEntry]) -> pl.DataFrame:
    frames = []
    for f in files:
        table = read_shard(root / f.path, columns=_COLUMNS)
        frames.append(pl.DataFrame(table))
    if not frames:
        return pl.DataFrame()
    df = pl.concat(frames)
    return df.with_columns(
        verifier=pl.col("reward").struct.field("verifier"),
        width=pl.col("image_sizes").list.first().struct.field("width"),
        height=pl.col("image_sizes").list.first().struct.field("height"),
        num_images=pl.col("image_sizes").list.len(),
        num_boxes=pl.col("boxes").list.len(),
        pass_rate=pl.col("difficulty").struct.field("pass_rate"),
        mean_reward=pl.col("difficulty").struct.field("mean_reward"),
    ).drop("reward", "image_sizes", "boxes", "difficulty")


def _counts(series: pl.Series) -> dict[str, int]:
    """Value counts, most frequent first, ties by name (stable output for --json)."""
    vc = series.value_counts()
    pairs = zip(vc[:, 0].to_list(), vc[:, 1].to_list(), strict=True)
    return dict(sorted(((str(k), int(v)) for k, v in pairs), key=lambda kv: (-kv[1], kv[0])))


def inspect_dataset(path: str | Path) -> dict[str, Any]:
    """Per-source statistics of a finished dataset, as plain data (what `--json` prints)."""
    root = Path(path)
    manifest = read_manifest(root)
    df = _scan(root, manifest.files)
    rejects = pl.DataFrame(read_rejects(root))
    sources: dict[str, Any] = {}
    problems: list[str] = []
    for name, info in sorted(manifest.sources.items()):
        part = df.filter(pl.col("data_source") == name) if df.height else df
        rej = rejects.filter(pl.col("data_source") == name) if rejects.height else rejects
        rows = part.height
        rejected = rej.height
        entry: dict[str, Any] = {
            "read": info.read,
            "kept": rows,
            "rejected": rejected,
            "rejected_by_reason": _counts(rej["reason"]) if rejected else {},
            "rows_by_split": _counts(part["split"]) if rows else {},
            "tasks": _counts(part["task"]) if rows else {},
            "verifiers": _counts(part["verifier"]) if rows else {},
        }
        if rows:
            entry["image_width"] = _summary(part["width"])
            entry["image_height"] = _summary(part["height"])
            entry["images_per_sample"] = _summary(part["num_images"])
            boxes = part["num_boxes"]
            entry["boxes"] = {"total": int(boxes.sum()), **_summary(boxes)}
            if part["pass_rate"].is_not_null().any():
                entry["difficulty"] = difficulty_summary(part["pass_rate"], part["mean_reward"])
        if info.added:
            entry["added"] = info.added
        if info.read + info.added != rows + rejected:
            added = f" + added {info.added}" if info.added else ""
            problems.append(f"{name}: read {info.read}{added} != kept {rows} + rejected {rejected}")
        if rows != info.kept:
            problems.append(f"{name}: shards hold {rows} rows, manifest says {info.kept}")
        sources[name] = entry
    found: dict[str, int] = {}
    for entry in sources.values():
        for reason, n in entry["rejected_by_reason"].items():
            found[reason] = found.get(reason, 0) + n
    described, unknown = describe_reasons(found)
    problems += [f"rejects name an unknown reason {r!r}" for r in unknown]
    out: dict[str, Any] = {
        "path": str(root),
        "recipe": {"name": manifest.recipe.name, "hash": manifest.recipe.hash, "seed": manifest.recipe.seed},
        "schema_version": manifest.schema_version,
        "rows_by_split": manifest.rows_by_split,
        "files": len(manifest.files),
        "bytes": sum(f.bytes for f in manifest.files),
        "sources": sources,
        "reject_reasons": described,
        "problems": problems,
    }
    if manifest.parent is not None:
        out["lineage"] = lineage(manifest)
    return out


def lineage(manifest: Manifest) -> dict[str, Any]:
    """The parent (path, manifest hash) and, per stage, read/kept/dropped/added per data_source."""
    assert manifest.parent is not None
    return {
        "parent": {"path": manifest.parent.path, "manifest_sha256": manifest.parent.manifest_sha256},
        "stages": [
            {
                "name": stage.name,
                "sources": {
                    name: {"read": c.read, "kept": c.kept, "dropped": c.rejected, "added": c.added}
                    for name, c in sorted(stage.sources.items())
                },
                **({"facts": stage.facts} if stage.facts else {}),
            }
            for stage in manifest.stages
        ],
    }


def describe_reasons(counts: dict[str, int]) -> tuple[dict[str, str], list[str]]:
    """(reason -> its description, for the reasons in `counts` that are known; the unknown ones)."""
    from triune_data.filters import filter_reasons

    descriptions: dict[str, str] = {str(k): v for k, v in REJECT_REASONS.items()}
    descriptions.update(filter_reasons())
    known = {r: descriptions[r] for r in sorted(counts) if r in descriptions}
    return known, sorted(r for r in counts if r not in descriptions)


# Pass-rate buckets: the two ends apart (never solved, always solved: what the band filter cuts at).
PASS_RATE_BUCKETS: tuple[str, ...] = ("0", "(0,0.25]", "(0.25,0.5]", "(0.5,0.75]", "(0.75,1)", "1")


def difficulty_summary(pass_rate: pl.Series, mean_reward: pl.Series) -> dict[str, Any]:
    """The pass-rate distribution of one source's rows (`difficulty_stats` writes the numbers)."""
    rates = pass_rate.drop_nulls()
    bucket = pl.select(
        pl.when(rates == 0)
        .then(0)
        .when(rates >= 1)
        .then(5)
        .when(rates < 1)
        .then((rates * 4).ceil().cast(pl.Int64).clip(1, 4))
    ).to_series()
    counts = bucket.value_counts()
    found = dict(zip(counts[:, 0].to_list(), counts[:, 1].to_list(), strict=True))
    rewards = mean_reward.drop_nulls()
    return {
        "scored": rates.len(),
        "unscored": pass_rate.len() - rates.len(),
        "pass_rate": {name: int(found.get(k, 0)) for k, name in enumerate(PASS_RATE_BUCKETS)},
        "mean_reward": float(rewards.sum()) / rewards.len() if rewards.len() else None,
    }


def _summary(s: pl.Series) -> dict[str, float]:
    return {"min": _number(s.min()), "median": _number(s.median()), "max": _number(s.max())}


def _number(value: object) -> float:
    """A statistic of a non-empty numeric column is a number; anything else is our bug."""
    if isinstance(value, int | float):
        return float(value)
    raise TriuneInternalError(f"expected a number, got {value!r}")
