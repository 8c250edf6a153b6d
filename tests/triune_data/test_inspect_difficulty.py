"""`triune inspect` shows the pass-rate distribution per source of a dataset with difficulty statistics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from cli import app
from triune_data.inspect import PASS_RATE_BUCKETS, inspect_dataset

# pass rates given to synth_math's 10 rows, in order (None: no statistics)
RATES = [0.0, 0.0, 0.125, 0.25, 0.5, 0.75, 0.875, 1.0, None, None]


def with_difficulty(small_dataset: Path, tmp_path: Path) -> Path:
    """A copy of the dataset whose synth_math rows carry `RATES` (mean reward = pass rate)."""
    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    rates = iter(RATES)
    for entry in manifest["files"]:
        if not entry["path"].startswith("data/synth_math/"):
            continue
        path = copy / entry["path"]
        table = pq.read_table(path)
        i = table.schema.get_field_index("difficulty")
        field = table.schema.field(i)
        values = []
        for _ in range(table.num_rows):
            r = next(rates)
            values.append(
                None
                if r is None
                else {"pass_rate": r, "mean_reward": r, "num_rollouts": 8, "model": "m", "metric": "pass@8"}
            )
        pq.write_table(table.set_column(i, field, pa.array(values, type=field.type)), path)
    assert next(rates, "done") == "done"
    return copy


def test_the_pass_rate_distribution_per_source(small_dataset: Path, tmp_path: Path) -> None:
    info = inspect_dataset(with_difficulty(small_dataset, tmp_path))
    assert info["problems"] == []
    assert info["sources"]["synth_math"]["difficulty"] == {
        "scored": 8,
        "unscored": 2,
        "pass_rate": {"0": 2, "(0,0.25]": 2, "(0.25,0.5]": 1, "(0.5,0.75]": 1, "(0.75,1)": 1, "1": 1},
        "mean_reward": 3.5 / 8,
    }
    assert list(info["sources"]["synth_math"]["difficulty"]["pass_rate"]) == list(PASS_RATE_BUCKETS)
    assert "difficulty" not in info["sources"]["synth_det"]  # no statistics: nothing to show


def test_the_printed_inspect_shows_it(small_dataset: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["inspect", str(with_difficulty(small_dataset, tmp_path))])
    assert res.exit_code == 0, res.output
    assert (
        "synth_math pass rate: 0 2, (0,0.25] 2, (0.25,0.5] 1, (0.5,0.75] 1, (0.75,1) 1, 1 1; "
        "unscored 2; mean reward 0.438"
    ) in " ".join(res.output.split())
    assert "synth_det pass rate" not in res.output
