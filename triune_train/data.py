"""Training data: one split of a triune dataset streamed as prompts, with an exact, resumable position.

`TrainStream` never loads the dataset: it indexes the split from the `data_source` and `task`
columns only (no image bytes) and reads the row groups that hold the rows it hands out, keeping the
last few in a small cache.

Order. Without mixing weights every row is equally likely, as in the paper (§5.1.1: "uniformly
mixed"): one shuffled pass over the split per epoch, reshuffled every epoch. With weights (by
`data_source` or by `task`) each draw first picks a group with probability weight / total, then
the next row of that group's own shuffled pass; a group that runs out starts its next epoch alone.

Determinism. The permutation of group g in epoch e depends only on (seed, g, e), the group picked by
draw k only on (seed, k). The position is therefore a few integers — draws so far and each group's
(epoch, cursor) — and `state_dict()` / `load_state_dict()` restore it exactly.

`read_split` reads a whole (small) split for evaluation, in a fixed order.
"""

from __future__ import annotations

import bisect
import random
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from triune_data.errors import DatasetError
from triune_data.manifest import read_manifest
from triune_data.schema import row_to_sample
from triune_data.types import Sample

ALL = "*"  # the one group when no mixing weights are given
ROW_GROUP_CACHE = 4  # decoded row groups kept (each up to the dataset's row-group size, ~32 MB)


@dataclass(frozen=True)
class _Shard:
    path: Path
    rows: int
    row_group_starts: tuple[int, ...]  # first row of every row group, within the file


class ShardReader:
    """Random access to the rows of a list of shards, by a global row number."""

    def __init__(self, paths: list[Path]):
        self.shards: list[_Shard] = []
        self.starts: list[int] = []  # first global row of every shard
        total = 0
        for path in paths:
            try:
                meta = pq.ParquetFile(path).metadata
            except (OSError, pa.ArrowInvalid) as exc:
                raise DatasetError(f"{path}: cannot read the shard ({exc})") from None
            starts, n = [], 0
            for i in range(meta.num_row_groups):
                starts.append(n)
                n += meta.row_group(i).num_rows
            self.shards.append(_Shard(path, n, tuple(starts)))
            self.starts.append(total)
            total += n
        self.num_rows = total
        self._cache: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()

    def column(self, name: str) -> list[Any]:
        """One (small) column of every row, in global row order."""
        out: list[Any] = []
        for shard in self.shards:
            out.extend(pq.read_table(shard.path, columns=[name]).column(name).to_pylist())
        return out

    def rows(self, indices: list[int]) -> list[dict[str, Any]]:
        """The rows with these global numbers, in this order (read in file order, then reordered)."""
        by_index = {i: self._row(i) for i in sorted(set(indices))}
        return [by_index[i] for i in indices]

    def _row(self, index: int) -> dict[str, Any]:
        s = bisect.bisect_right(self.starts, index) - 1
        shard, local = self.shards[s], index - self.starts[s]
        g = bisect.bisect_right(shard.row_group_starts, local) - 1
        key = (s, g)
        table = self._cache.get(key)
        if table is None:
            table = pq.ParquetFile(shard.path).read_row_group(g)
            self._cache[key] = table
            while len(self._cache) > ROW_GROUP_CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return table.slice(local - shard.row_group_starts[g], 1).to_pylist()[0]


def split_shards(root: str | Path, split: str) -> list[Path]:
    """The shard files of `split` in a finished dataset, in manifest order; DatasetError if none."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset directory not found")
    manifest = read_manifest(root)
    files = [f for f in manifest.files if f.split == split]
    if not files:
        splits = ", ".join(sorted(manifest.rows_by_split)) or "none"
        raise DatasetError(f"{root}: no rows in split {split!r} (splits: {splits})")
    paths = []
    for f in files:
        p = root / f.path
        if not p.exists():
            raise DatasetError(f"{root}: shard {f.path} is missing")
        if p.stat().st_size != f.bytes:
            raise DatasetError(f"{root}: shard {f.path} differs from the manifest (size)")
        paths.append(p)
    return paths


class TrainStream:
    """Samples of one split, mixed, shuffled and weighted by the recipe, with an exact position.

    ``next_batch(n)`` hands out the next n samples; ``state_dict()`` is the position (JSON) and
    ``load_state_dict(state)`` restores it, refusing a dataset whose rows or groups changed.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        split: str = "train",
        seed: int = 0,
        mix_by: Literal["data_source", "task"] = "data_source",
        weights: Mapping[str, float] | None = None,
        shuffle: bool = True,
    ):
        self.root, self.split, self.seed, self.shuffle = Path(root), split, seed, shuffle
        self.reader = ShardReader(split_shards(root, split))
        sources = self.reader.column("data_source")
        self.rows_by_source = _count(sources)
        if weights is None:
            self.groups: dict[str, list[int]] = {ALL: list(range(self.reader.num_rows))}
            self.weights = {ALL: 1.0}
        else:
            keys = sources if mix_by == "data_source" else self.reader.column("task")
            by_key: dict[str, list[int]] = {}
            for i, k in enumerate(keys):
                by_key.setdefault(k, []).append(i)
            unknown = sorted(set(weights) - set(by_key))
            if unknown:
                raise DatasetError(
                    f"data.mix.weights: no {mix_by} {', '.join(map(repr, unknown))} in split {split!r} "
                    f"of {root} (it has: {', '.join(sorted(by_key))})"
                )
            self.weights = {k: float(w) for k, w in sorted(weights.items()) if w > 0}
            if not self.weights:
                raise DatasetError("data.mix.weights: every weight is 0")
            self.groups = {k: by_key[k] for k in self.weights}
        self.draws = 0
        self.position: dict[str, list[int]] = {g: [0, 0] for g in self.groups}  # group -> [epoch, cursor]
        self._orders: dict[str, tuple[int, list[int]]] = {}  # group -> (epoch, permutation)

    @property
    def num_rows(self) -> int:
        return sum(len(rows) for rows in self.groups.values())

    @property
    def epoch(self) -> float:
        """Passes made over the sampled rows (fractional)."""
        done = sum(e * len(self.groups[g]) + c for g, (e, c) in self.position.items())
        return done / max(1, self.num_rows)

    def next_batch(self, n: int) -> list[Sample]:
        """The next `n` samples; advances the position."""
        return [row_to_sample(r) for r in self.reader.rows(self.next_indices(n))]

    def next_indices(self, n: int) -> list[int]:
        out = []
        for _ in range(n):
            group = self._pick_group()
            epoch, cursor = self.position[group]
            order = self._order(group, epoch)
            out.append(order[cursor])
            cursor += 1
            if cursor == len(order):
                epoch, cursor = epoch + 1, 0
            self.position[group] = [epoch, cursor]
            self.draws += 1
        return out

    def _pick_group(self) -> str:
        if len(self.weights) == 1:
            return next(iter(self.weights))
        r = random.Random(f"{self.seed}/mix/{self.draws}").random() * sum(self.weights.values())
        for group, w in self.weights.items():
            r -= w
            if r < 0:
                return group
        return group  # rounding at the very top of the range

    def _order(self, group: str, epoch: int) -> list[int]:
        cached = self._orders.get(group)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        order = list(self.groups[group])
        if self.shuffle:
            random.Random(f"{self.seed}/{group}/{epoch}").shuffle(order)
        self._orders[group] = (epoch, order)
        return order

    def state_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "num_rows": self.num_rows,
            "draws": self.draws,
            "position": {g: list(p) for g, p in self.position.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state["num_rows"] != self.num_rows or set(state["position"]) != set(self.position):
            raise DatasetError(
                f"{self.root}: the dataset changed since the checkpoint "
                f"({state['num_rows']} rows in groups {sorted(state['position'])}, now {self.num_rows} in "
                f"{sorted(self.position)})"
            )
        self.draws = int(state["draws"])
        self.position = {g: [int(e), int(c)] for g, (e, c) in state["position"].items()}


def read_split(root: str | Path, split: str, *, max_per_source: int | None = None) -> list[Sample]:
    """Every sample of `split` (at most `max_per_source` per data_source), ordered by data_source, id."""
    reader = ShardReader(split_shards(root, split))
    keys = sorted(zip(reader.column("data_source"), reader.column("id"), range(reader.num_rows), strict=True))
    kept: list[int] = []
    per: dict[str, int] = {}
    for source, _, i in keys:
        if max_per_source is None or per.get(source, 0) < max_per_source:
            per[source] = per.get(source, 0) + 1
            kept.append(i)
    return [row_to_sample(r) for r in reader.rows(kept)]


def _count(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


__all__ = ["ShardReader", "TrainStream", "read_split", "split_shards"]
