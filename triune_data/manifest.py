"""`manifest.json`, the ledger of a dataset directory, as plain typed data.

Every producer of a dataset directory (`triune build-dataset`, `triune filter`) fills one
`Manifest` and writes it with `write_manifest`, last: a directory with a manifest is complete.
The ledger holds every file with its rows, bytes and sha256; per data_source the records read,
kept and rejected by reason (`read + added == kept + rejected`, checked when written; `added` is
nonzero only where a stage copies rows) and the rows per
split; the schema version; the recipe that made it; and, for a dataset derived from another, its
`parent` (path and the sha256 of the parent's manifest) and the ordered `stages` that turned the
parent's rows into these, each with per-source counts.

Nothing here reads shards or knows a producer's internals: a producer hands over numbers.

>>> counts = SourceCounts(read=3, kept=2, rejected_by_reason={"malformed_record": 1})
>>> counts.rejected
1
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from triune_data import atomic
from triune_data.errors import DatasetError, TriuneInternalError
from triune_data.types import BOX_FRAME, SCHEMA_VERSION

MANIFEST = "manifest.json"
FORMAT = "triune-dataset"


@functools.cache
def triune_version() -> str:
    """The installed triune version ("0+unknown" when running from a checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("triune")
    except PackageNotFoundError:
        return "0+unknown"


def sha256_file(path: Path, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    """One file of the dataset, relative to its root. Shards name their data_source and split."""

    path: str
    rows: int
    bytes: int
    sha256: str
    data_source: str | None = None
    split: str | None = None

    @classmethod
    def of(
        cls,
        root: Path,
        path: str,
        *,
        rows: int,
        data_source: str | None = None,
        split: str | None = None,
        sha256: str | None = None,
    ) -> FileEntry:
        """The entry of the file `root / path` as it is on disk (`sha256` if already known)."""
        full = root / path
        return cls(
            path=path,
            rows=rows,
            bytes=full.stat().st_size,
            sha256=sha256 or sha256_file(full),
            data_source=data_source,
            split=split,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.data_source is not None:
            out["data_source"] = self.data_source
        if self.split is not None:
            out["split"] = self.split
        return out | {"rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True, kw_only=True)
class RecipeInfo:
    """What made the dataset: the recipe's name, the hash of its resolved form, its seed."""

    name: str
    hash: str
    seed: int
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class Parent:
    """The dataset this one was derived from: its path and the sha256 of its `manifest.json`."""

    path: str
    manifest_sha256: str


@dataclass(kw_only=True)
class StageCounts:
    """One source's records through one stage: read + added = kept + rejected.

    `added` counts rows a stage created (copies of kept rows, e.g. V-Triune's doubled puzzle data);
    it is 0 for everything but a duplication stage and is written only when nonzero.
    """

    read: int
    kept: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    added: int = 0

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())


@dataclass(kw_only=True)
class Stage:
    """One step of a derivation (a filter, a dedup, a cap), with its counts per data_source."""

    name: str
    sources: dict[str, StageCounts]
    facts: dict[str, Any] = field(default_factory=dict)  # the stage's own numbers (hits, thresholds)


@dataclass(kw_only=True)
class SourceCounts(StageCounts):
    """One data_source of the dataset: what was read, kept and rejected, where its rows are."""

    rows_by_split: dict[str, int] = field(default_factory=dict)
    adapters: list[str] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class Manifest:
    recipe: RecipeInfo
    files: list[FileEntry]  # the shards
    rejects: FileEntry
    sources: dict[str, SourceCounts]
    parent: Parent | None = None
    stages: list[Stage] = field(default_factory=list)
    schema_version: str = SCHEMA_VERSION
    box_frame: str = BOX_FRAME
    triune_version: str = field(default_factory=triune_version)

    @property
    def rows_by_split(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for s in self.sources.values():
            total.update(s.rows_by_split)
        return dict(sorted(total.items()))

    def problems(self) -> list[str]:
        """Broken ledger invariants (empty when the numbers add up)."""
        out = []
        rows: Counter[str] = Counter()
        for f in self.files:
            rows[f.data_source or ""] += f.rows
        for name, s in self.sources.items():
            if s.read + s.added != s.kept + s.rejected:
                out.append(f"{name}: read {s.read}{_plus_added(s)} != kept {s.kept} + rejected {s.rejected}")
            if rows[name] != s.kept or sum(s.rows_by_split.values()) != s.kept:
                out.append(f"{name}: {rows[name]} rows in files, {s.kept} kept")
        for stage in self.stages:
            for name, c in stage.sources.items():
                if c.read + c.added != c.kept + c.rejected:
                    out.append(
                        f"stage {stage.name}: {name}: read {c.read}{_plus_added(c)} != kept {c.kept} "
                        f"+ rejected {c.rejected}"
                    )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": self.schema_version,
            "box_frame": self.box_frame,
            "triune_version": self.triune_version,
            "recipe": {
                "name": self.recipe.name,
                "hash": self.recipe.hash,
                "seed": self.recipe.seed,
                "description": self.recipe.description,
            },
            "parent": None
            if self.parent is None
            else {"path": self.parent.path, "manifest_sha256": self.parent.manifest_sha256},
            "stages": [
                {
                    "name": st.name,
                    "sources": {k: _counts_json(c) for k, c in sorted(st.sources.items())},
                    **({"facts": st.facts} if st.facts else {}),
                }
                for st in self.stages
            ],
            "files": [f.to_json() for f in self.files],
            "rejects": self.rejects.to_json(),
            "sources": {
                name: {
                    "adapters": s.adapters,
                    **_counts_json(s),
                    "rows_by_split": dict(sorted(s.rows_by_split.items())),
                    "licenses": s.licenses,
                }
                for name, s in sorted(self.sources.items())
            },
            "rows_by_split": self.rows_by_split,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        """The manifest of a parsed `manifest.json`; KeyError/TypeError/ValueError if malformed."""
        if d.get("format") != FORMAT:
            raise ValueError(f"format is {d.get('format')!r}, not {FORMAT!r}")
        parent = d.get("parent")
        return cls(
            recipe=RecipeInfo(**d["recipe"]),
            files=[FileEntry(**f) for f in d["files"]],
            rejects=FileEntry(**d["rejects"]),
            sources={
                name: SourceCounts(
                    read=s["read"],
                    kept=s["kept"],
                    rejected_by_reason=s["rejected_by_reason"],
                    added=s.get("added", 0),
                    rows_by_split=s["rows_by_split"],
                    adapters=s["adapters"],
                    licenses=s["licenses"],
                )
                for name, s in d["sources"].items()
            },
            parent=None if parent is None else Parent(**parent),
            stages=[
                Stage(
                    name=st["name"],
                    sources={
                        k: StageCounts(
                            read=c["read"],
                            kept=c["kept"],
                            rejected_by_reason=c["rejected_by_reason"],
                            added=c.get("added", 0),
                        )
                        for k, c in st["sources"].items()
                    },
                    facts=st.get("facts", {}),
                )
                for st in d.get("stages", [])
            ],
            schema_version=d["schema_version"],
            box_frame=d["box_frame"],
            triune_version=d["triune_version"],
        )


def _counts_json(c: StageCounts) -> dict[str, Any]:
    added = {"added": c.added} if c.added else {}  # absent when 0: build manifests stay as they were
    return {
        "read": c.read,
        **added,
        "kept": c.kept,
        "rejected": c.rejected,
        "rejected_by_reason": dict(sorted(c.rejected_by_reason.items())),
    }


def _plus_added(c: StageCounts) -> str:
    return f" + added {c.added}" if c.added else ""


def write_manifest(out: Path, manifest: Manifest) -> Path:
    """Write `out/manifest.json` atomically, after checking that the ledger adds up.

    A ledger that does not add up is a bug in the producer, not a user error: TriuneInternalError
    names it; nothing is written.
    """
    problems = manifest.problems()
    if problems:
        raise TriuneInternalError(f"{out}: {'; '.join(problems)}")
    path = out / MANIFEST
    atomic.write_json(path, manifest.to_json())
    return path


def read_manifest(path: str | Path) -> Manifest:
    p = Path(path) / MANIFEST
    if not p.exists():
        raise DatasetError(
            f"{path}: no {MANIFEST} (not a finished triune dataset; was the build interrupted?)"
        )
    try:
        return Manifest.from_json(json.loads(p.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{p}: corrupt manifest ({exc.msg})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DatasetError(f"{p}: not a triune manifest ({type(exc).__name__}: {exc})") from None


def manifest_sha256(path: str | Path) -> str:
    """The sha256 of a dataset's `manifest.json` (what a derived dataset records as its parent)."""
    p = Path(path) / MANIFEST
    if not p.exists():
        raise DatasetError(f"{path}: no {MANIFEST}")
    return sha256_file(p)


def verify_files(path: str | Path, manifest: Manifest | None = None) -> list[str]:
    """Return a list of problems (missing files, size or sha256 mismatches); empty when all is well."""
    root = Path(path)
    manifest = manifest or read_manifest(root)
    problems = []
    for f in [*manifest.files, manifest.rejects]:
        p = root / f.path
        if not p.exists():
            problems.append(f"{f.path}: missing")
        elif p.stat().st_size != f.bytes or sha256_file(p) != f.sha256:
            problems.append(f"{f.path}: content differs from the manifest")
    return problems


__all__ = [
    "MANIFEST",
    "FileEntry",
    "Manifest",
    "Parent",
    "RecipeInfo",
    "SourceCounts",
    "Stage",
    "StageCounts",
    "manifest_sha256",
    "read_manifest",
    "sha256_file",
    "triune_version",
    "verify_files",
    "write_manifest",
]
