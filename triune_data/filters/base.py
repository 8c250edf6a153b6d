"""The filter unit: a typed, registered function of a column batch that keeps rows or says why not.

A filter is a pydantic model: its fields are the filter's parameters (what a filter recipe sets),
its `apply` method the filter. The runner (`triune_data.filters.run`) owns everything else: it
loads the dataset's metadata columns once (never the image bytes unless a filter asks for them
through `Context.images`), passes each filter only the rows still kept and in its scope (`tasks`,
`data_sources`), counts read = kept + dropped per data_source at every stage, and writes every
dropped row to the rejects shard, its reason the filter's name and its detail the filter's.

    @register_filter
    class AnswerChars(Filter):
        '''Answer longer than `max_chars` characters (V-Triune §6.2 drops those over 20).'''

        name: ClassVar[str] = "answer_chars"
        columns: ClassVar[tuple[str, ...]] = ("answer",)
        tasks: list[Task] | None = list(REASONING_TASKS)
        max_chars: int = Field(20, ge=1)

        def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
            chars = rows["answer"].str.len_chars()
            return Verdict(chars > self.max_chars, detail=chars.cast(pl.Utf8) + " chars")

Rows: a polars DataFrame with the columns the filter declares in `columns` (any of the sample's
columns but `images`; struct and list columns as polars structs and lists) plus `ROW` (the row's
position in the whole dataset: files in manifest order, rows in file order), `FILE` (index into
`Context.files`) and `POS` (the row's position in its file). Row order is dataset order.

Adding a filter is one module under `triune_data/filters/` plus one table test.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from triune_data.types import Task

ROW, FILE, POS = "_row", "_file", "_pos"

REASONING_TASKS: tuple[Task, ...] = ("math", "puzzle", "science", "chart")
BOX_TASKS: tuple[Task, ...] = ("detection", "grounding")


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a filter may use besides its rows."""

    root: Path  # the dataset being filtered
    files: tuple[Path, ...]  # its shards, in manifest order; the FILE column indexes this
    recipe_dir: Path  # relative paths in a filter's params resolve against this
    seed: int  # the filter recipe's seed: every random choice derives from it
    work: Path  # a folder of this stage's own, kept across `--resume` (caches of expensive work)

    def images(
        self, rows: pl.DataFrame, *, batch_rows: int = 512
    ) -> Iterator[tuple[pl.Series, list[list[bytes | None]]]]:
        """The stored image bytes of `rows` (which must have ROW, FILE, POS), in batches:
        (their ROW values, for each row the bytes of each of its images; None for an image stored
        by path only). Reads the `images` column of one row group at a time, only the row groups
        the rows are in, so memory is bounded by a row group's images, not a shard's."""
        from triune_data.writer import open_shard

        for (file_index,), part in rows.select(ROW, FILE, POS).group_by(FILE, maintain_order=True):
            part = part.sort(POS)
            pf = open_shard(self.files[int(file_index)])
            sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)]
            starts = list(itertools.accumulate(sizes, initial=0))
            # Row group of each row: the last group starting at or before its position.
            group_of = pl.Series(starts[1:], dtype=pl.Int64).search_sorted(
                part[POS].cast(pl.Int64), side="right"
            )
            for (group,), in_group in part.with_columns(group_of.alias("_g")).group_by(
                "_g", maintain_order=True
            ):
                table = pf.read_row_group(int(group), columns=["images"])
                local = in_group[POS].cast(pl.Int64) - starts[int(group)]
                for start in range(0, in_group.height, batch_rows):
                    chunk = in_group.slice(start, batch_rows)
                    taken = table.take(local.slice(start, batch_rows).to_arrow()).column("images")
                    yield (
                        chunk[ROW],
                        [[(im or {}).get("bytes") for im in (ims or [])] for ims in taken.to_pylist()],
                    )
                del table  # before the next group is read

    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.recipe_dir / p


@dataclass(frozen=True)
class Verdict:
    """A filter's answer for its rows, aligned with them.

    - `drop`: Boolean, true drops the row; its reject reason is the filter's name.
    - `detail`: Utf8 (nulls allowed), the value that decided it: `"27 chars"`, `"near-copy of
      coco_det/123 (hamming 3)"`. Only dropped rows' details are kept.
    - `updates`: new values for columns of the rows (e.g. `sample_weight`, `difficulty`), each
      aligned with the rows; the runner writes them into the kept rows.
    - `copies`: UInt32, how many times to write each kept row (1 = once); extra copies get the id
      `{id}~{k}` (k = 1, 2, ...) so that ids stay unique.
    - `facts`: anything worth a line in the report and the manifest (hit counts, thresholds).
    """

    drop: pl.Series
    detail: pl.Series | None = None
    updates: dict[str, pl.Series] = field(default_factory=dict)
    copies: pl.Series | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def keep_all(cls, n: int, **kwargs: Any) -> Verdict:
        return cls(pl.repeat(False, n, dtype=pl.Boolean, eager=True), **kwargs)


class Filter(BaseModel):
    """Base of every filter: its fields are its parameters; scope fields choose the rows it sees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ClassVar[str]  # the recipe's name for it, and the reject reason of the rows it drops
    drops: ClassVar[bool] = True  # False for a filter that only updates or copies rows
    columns: ClassVar[tuple[str, ...]] = ()  # sample columns `apply` reads

    tasks: list[Task] | None = Field(
        default=None, description="Only rows of these tasks (default: the filter's own)."
    )
    data_sources: list[str] | None = Field(
        default=None, description="Only rows of these data sources (default: all)."
    )

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        raise NotImplementedError


_FILTERS: dict[str, type[Filter]] = {}


def register_filter(cls: type[Filter]) -> type[Filter]:
    """Class decorator: make `cls` available to filter recipes under `cls.name`."""
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__}: a filter needs a `name`")
    if name in _FILTERS and _FILTERS[name] is not cls:
        raise ValueError(f"filter {name!r} is registered twice")
    if not (cls.__doc__ or "").strip():
        raise TypeError(
            f"filter {name!r}: its docstring's first line says what it drops (docs, `triune inspect`)"
        )
    _FILTERS[name] = cls
    return cls


def get_filter(name: str) -> type[Filter]:
    _load_builtin()
    try:
        return _FILTERS[name]
    except KeyError:
        raise KeyError(f"unknown filter {name!r} (known: {', '.join(filter_names())})") from None


def filter_names() -> list[str]:
    _load_builtin()
    return sorted(_FILTERS)


def filter_reasons() -> dict[str, str]:
    """Every reason a filter drops rows for (its name) -> what it means (its docstring's first line)."""
    _load_builtin()
    return {
        name: (cls.__doc__ or "").strip().splitlines()[0]
        for name, cls in sorted(_FILTERS.items())
        if cls.drops
    }


def _load_builtin() -> None:
    import triune_data.filters  # noqa: F401  (the package imports every built-in filter module)


__all__ = [
    "BOX_TASKS",
    "FILE",
    "POS",
    "REASONING_TASKS",
    "ROW",
    "Context",
    "Filter",
    "Verdict",
    "filter_names",
    "filter_reasons",
    "get_filter",
    "register_filter",
]
