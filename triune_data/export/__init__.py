"""`triune export`: a finished dataset in the layout another framework loads as it is.

One parquet file per split, named by it (`train.parquet`, `test.parquet`), the layout of verl's
own examples: a config names each file directly (`data.train_files=OUT/train.parquet`), and
EasyR1 also loads the directory (`OUT` for train, `OUT@test` for the test split), because nothing
but these files is in it. Rows keep the shards' order, data_sources in name order; `extra_info.index`
is the row's position in its file.

Formats (one module each, a row dataclass whose Arrow schema `schema.record_schema` derives):

- `verl`    verl's RLHFDataset / Orsta-Data-47k rows (`export.verl`);
- `easyr1`  EasyR1's RLHFDataset rows (`export.easyr1`).

Both carry the same `extra_info` (`export.common`) with the full reward spec, which triune's
reward functions for these frameworks read (`triune_train.integrations`). The output directory
appears whole or not at all (`atomic.swap_dir`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from triune_data import atomic
from triune_data.errors import DatasetError
from triune_data.export.common import BOX_NUMBERS, BoxNumbers
from triune_data.export.easyr1 import EasyR1Row, easyr1_row
from triune_data.export.verl import VerlRow, verl_row
from triune_data.manifest import read_manifest
from triune_data.schema import record_schema, records_to_table, row_to_sample
from triune_data.types import Sample
from triune_data.writer import open_shard

VERL_SCHEMA = record_schema(VerlRow)
EASYR1_SCHEMA = record_schema(EasyR1Row)


@dataclass(frozen=True)
class Format:
    row_type: type
    schema: pa.Schema
    convert: Callable[[Sample, int, BoxNumbers], Any]


FORMATS: dict[str, Format] = {
    "verl": Format(VerlRow, VERL_SCHEMA, lambda s, i, n: verl_row(s, i, box_numbers=n)),
    "easyr1": Format(EasyR1Row, EASYR1_SCHEMA, lambda s, i, n: easyr1_row(s, i)),
}


@dataclass
class ExportReport:
    """What an export wrote: each file with its rows, and rows per (split, data_source)."""

    files: list[tuple[str, int]] = field(default_factory=list)
    rows: dict[tuple[str, str], int] = field(default_factory=dict)


def export_dataset(
    path: str | Path,
    out: str | Path,
    *,
    fmt: str = "verl",
    overwrite: bool = False,
    box_numbers: BoxNumbers = "float",
) -> ExportReport:
    """Export the finished dataset at `path` to `out` in format `fmt` (see the module docstring).

    `box_numbers` is how the verl format writes box ground truth in `reward_model`: float 0-1000
    (exact to 0.001) or V-Triune's integers. Raises DatasetError for an unknown format, a non-empty
    `out` without `overwrite`, or shards that disagree with the manifest.
    """
    if fmt not in FORMATS:
        raise DatasetError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    if box_numbers not in BOX_NUMBERS:
        raise DatasetError(f"box numbers must be one of {', '.join(BOX_NUMBERS)}, got {box_numbers!r}")
    spec = FORMATS[fmt]
    root, out = Path(path), Path(out)
    manifest = read_manifest(root)
    atomic.check_writable(out, directory=True)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DatasetError(f"{out} is not empty: pass --overwrite to replace it")
    splits: dict[str, list[Any]] = defaultdict(list)
    for f in sorted(manifest.files, key=lambda f: (f.split or "", f.data_source or "", f.path)):
        if not f.split:
            raise DatasetError(f"{f.path}: the manifest gives no split for this shard")
        splits[f.split].append(f)

    def produce(tmp: Path) -> ExportReport:
        report = ExportReport()
        for split, files in sorted(splits.items()):
            name = f"{split}.parquet"
            index = 0
            with pq.ParquetWriter(tmp / name, spec.schema, compression="zstd") as writer:
                for f in files:
                    rows = 0
                    for batch in open_shard(root / f.path).iter_batches(batch_size=256):
                        samples = [row_to_sample(r) for r in batch.to_pylist()]
                        converted = [spec.convert(s, index + k, box_numbers) for k, s in enumerate(samples)]
                        writer.write_table(records_to_table(converted, spec.row_type, spec.schema))
                        index += len(converted)
                        rows += len(converted)
                    if rows != f.rows:
                        raise DatasetError(f"{f.path}: {rows} rows, the manifest says {f.rows}")
                    key = (split, f.data_source or "")
                    report.rows[key] = report.rows.get(key, 0) + rows
            report.files.append((name, index))
        return report

    return atomic.swap_dir(out, produce)


__all__ = ["EASYR1_SCHEMA", "FORMATS", "VERL_SCHEMA", "ExportReport", "export_dataset"]
