"""The manifest is plain data: any producer writes it (and the card and rejects) through the same calls."""

import json
import shutil

import pyarrow as pa
import pytest

from triune_data.card import render_card, write_card
from triune_data.errors import TriuneInternalError
from triune_data.hub import push
from triune_data.inspect import inspect_dataset
from triune_data.manifest import (
    Manifest,
    Parent,
    SourceCounts,
    Stage,
    StageCounts,
    manifest_sha256,
    read_manifest,
    verify_files,
    write_manifest,
)
from triune_data.writer import REJECT_SCHEMA, read_rejects, write_rejects


def test_manifest_round_trips_through_json(small_dataset):
    manifest = read_manifest(small_dataset)
    text = json.loads((small_dataset / "manifest.json").read_text())
    assert manifest.to_json() == text
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.parent is None and manifest.stages == []
    assert manifest.rows_by_split == {"test": 8, "train": 22}


def test_a_ledger_that_does_not_add_up_is_never_written(small_dataset, tmp_path):
    manifest = read_manifest(small_dataset)
    manifest.sources["synth_math"].read += 1
    with pytest.raises(TriuneInternalError, match=r"synth_math: read 11 != kept 10 \+ rejected 0"):
        write_manifest(tmp_path, manifest)
    assert not (tmp_path / "manifest.json").exists()


def test_a_second_producer_writes_rejects_manifest_and_card_through_the_same_calls(small_dataset, tmp_path):
    """What `triune filter` will do: derive a dataset from a parent, record the parent and the stages."""
    out = tmp_path / "filtered"
    shutil.copytree(small_dataset / "data", out / "data")  # a stage that kept every row
    parent = read_manifest(small_dataset)
    rejects_entry = write_rejects(out, REJECT_SCHEMA.empty_table())
    stage = Stage(
        name="dedup", sources={n: StageCounts(read=s.kept, kept=s.kept) for n, s in parent.sources.items()}
    )
    sources = {
        name: SourceCounts(
            read=s.kept, kept=s.kept, rows_by_split=s.rows_by_split, adapters=s.adapters, licenses=s.licenses
        )
        for name, s in parent.sources.items()
    }
    manifest = Manifest(
        recipe=parent.recipe,
        files=parent.files,
        rejects=rejects_entry,
        sources=sources,
        parent=Parent(path=str(small_dataset), manifest_sha256=manifest_sha256(small_dataset)),
        stages=[stage],
    )
    write_card(out, manifest)
    write_manifest(out, manifest)

    back = read_manifest(out)
    assert back == manifest and back.parent is not None
    assert back.parent.manifest_sha256 == manifest_sha256(small_dataset)
    assert back.stages[0].sources["synth_math"].kept == 10
    assert verify_files(out) == []
    assert inspect_dataset(out)["problems"] == []
    assert push(out, "org/x", dry_run=True)
    card = (out / "README.md").read_text()
    assert card == render_card(manifest)
    assert f"Derived from `{small_dataset}`" in card
    assert "| 1 | `dedup` |" in card and "synth_count 8/8" in card


def test_rejects_shard_round_trips(tmp_path):
    row = {
        "data_source": "synth_math",
        "split": "train",
        "id": "synth_math/train-000001",
        "original_id": "train-000001",
        "reason": "duplicate_id",
        "detail": "seen before",
        "file": None,
    }
    entry = write_rejects(tmp_path, pa.Table.from_pylist([row], schema=REJECT_SCHEMA))
    assert entry.rows == 1 and entry.path == "rejects/rejects-00000-of-00001.parquet"
    assert read_rejects(tmp_path).to_pylist() == [row]
    assert read_rejects(tmp_path / "nothing").num_rows == 0
