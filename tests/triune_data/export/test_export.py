"""The export driver: one file per split, nothing else in the directory, counts per source, atomic."""

import hashlib
import shutil

import pyarrow.parquet as pq
import pytest

from triune_data.errors import DatasetError
from triune_data.export import EASYR1_SCHEMA, VERL_SCHEMA, export_dataset

SCHEMAS = {"verl": VERL_SCHEMA, "easyr1": EASYR1_SCHEMA}


@pytest.fixture(scope="module", params=["verl", "easyr1"])
def exported(request, small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "out"
    return request.param, out, export_dataset(small_dataset, out, fmt=request.param)


def test_one_file_per_split_and_nothing_else(exported):
    fmt, out, report = exported
    assert sorted(p.name for p in out.iterdir()) == ["test.parquet", "train.parquet"]
    assert report.files == [("test.parquet", 8), ("train.parquet", 22)]
    assert report.rows == {
        ("test", "synth_count"): 8,
        ("train", "synth_det"): 12,
        ("train", "synth_math"): 10,
    }
    for name, rows in report.files:
        table = pq.read_table(out / name)
        assert table.schema.equals(SCHEMAS[fmt]) and table.num_rows == rows


def test_index_is_the_position_in_the_file_and_sources_keep_their_rows(exported, small_dataset):
    _, out, _ = exported
    train = pq.read_table(out / "train.parquet").to_pylist()
    assert [r["extra_info"]["index"] for r in train] == list(range(22))
    assert [r["data_source"] for r in train] == ["synth_det"] * 12 + ["synth_math"] * 10
    stored = pq.read_table(next((small_dataset / "data" / "synth_det").glob("*.parquet"))).to_pylist()
    assert [r["extra_info"]["id"] for r in train[:12]] == [r["id"] for r in stored]


def test_same_input_gives_identical_files(small_dataset, tmp_path):
    digests = []
    for run in ("a", "b"):
        export_dataset(small_dataset, tmp_path / run, fmt="easyr1")
        digests.append(hashlib.sha256((tmp_path / run / "train.parquet").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fmt": "trl"}, "unknown export format 'trl' \\(known: verl, easyr1\\)"),
        ({"box_numbers": "half"}, "box numbers must be one of float, int"),
    ],
)
def test_bad_options(small_dataset, tmp_path, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        export_dataset(small_dataset, tmp_path / "x", **kwargs)


def test_non_empty_output_needs_overwrite_and_failure_leaves_it_alone(small_dataset, tmp_path):
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        export_dataset(small_dataset, out)
    broken = tmp_path / "broken"
    shutil.copytree(small_dataset, broken)
    shard = next((broken / "data" / "synth_math").glob("*.parquet"))
    pq.write_table(pq.read_table(shard).slice(0, 3), shard)  # fewer rows than the manifest says
    with pytest.raises(DatasetError, match="3 rows, the manifest says 10"):
        export_dataset(broken, out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["keep"]
    export_dataset(small_dataset, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["test.parquet", "train.parquet"]
