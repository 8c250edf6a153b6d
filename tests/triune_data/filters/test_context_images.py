"""`Context.images`: the stored bytes of the rows asked for, read one row group at a time."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from triune_data.filters.base import FILE, POS, ROW, Context


def _shard(path: Path, rows: int, row_group: int) -> None:
    """A parquet file whose `images` column holds, for row i, [bytes b"i", path-only] (every
    third row: no images), in row groups of `row_group` rows."""
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    images = [
        [] if i % 3 == 2 else [{"bytes": f"{i}".encode(), "path": None}, {"bytes": None, "path": f"p{i}"}]
        for i in range(rows)
    ]
    pq.write_table(pa.table({"images": pa.array(images, pa.list_(image))}), path, row_group_size=row_group)


def _expected(i: int) -> list[bytes | None]:
    return [] if i % 3 == 2 else [f"{i}".encode(), None]


@pytest.mark.parametrize("batch_rows", [1, 2, 512])
def test_rows_across_row_groups_and_files_in_any_order(tmp_path: Path, batch_rows: int) -> None:
    _shard(tmp_path / "a.parquet", 10, 3)  # row groups [0-2] [3-5] [6-8] [9]
    _shard(tmp_path / "b.parquet", 4, 4)
    assert pq.ParquetFile(tmp_path / "a.parquet").metadata.num_row_groups == 4
    ctx = Context(
        root=tmp_path,
        files=(tmp_path / "a.parquet", tmp_path / "b.parquet"),
        recipe_dir=tmp_path,
        seed=0,
        work=tmp_path / "work",
    )
    asked = [(1, 3), (0, 9), (0, 0), (0, 4), (0, 3), (1, 0), (0, 8), (0, 5)]  # (file, pos), unsorted
    rows = pl.DataFrame(
        {
            ROW: pl.Series(range(100, 100 + len(asked)), dtype=pl.UInt64),
            FILE: pl.Series([f for f, _ in asked], dtype=pl.UInt32),
            POS: pl.Series([p for _, p in asked], dtype=pl.UInt32),
        }
    )
    got: dict[int, list[bytes | None]] = {}
    for row_ids, images in ctx.images(rows, batch_rows=batch_rows):
        assert len(row_ids) == len(images) <= batch_rows
        got.update(zip(row_ids.to_list(), images, strict=True))
    assert got == {100 + k: _expected(pos) for k, (_, pos) in enumerate(asked)}


def test_reads_only_the_row_groups_of_the_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _shard(tmp_path / "a.parquet", 12, 3)
    ctx = Context(
        root=tmp_path, files=(tmp_path / "a.parquet",), recipe_dir=tmp_path, seed=0, work=tmp_path / "w"
    )
    read: list[int] = []
    original = pq.ParquetFile.read_row_group

    def spy(self: pq.ParquetFile, i: int, *args: object, **kwargs: object) -> pa.Table:
        read.append(i)
        return original(self, i, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: pytest.fail("read the whole file"))
    rows = pl.DataFrame(
        {
            ROW: pl.Series([0, 1, 2], dtype=pl.UInt64),
            FILE: pl.Series([0, 0, 0], dtype=pl.UInt32),
            POS: pl.Series([10, 4, 3], dtype=pl.UInt32),
        }
    )
    got = {r: ims for ids, batch in ctx.images(rows) for r, ims in zip(ids.to_list(), batch, strict=True)}
    assert read == [1, 3]  # positions 3 and 4 in group 1, 10 in group 3; groups 0 and 2 never read
    assert got == {0: _expected(10), 1: _expected(4), 2: _expected(3)}
