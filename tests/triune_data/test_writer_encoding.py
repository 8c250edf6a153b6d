"""The shard writer's encodings: image bytes stored as they are, per-row-unique columns without a
dictionary, the repeating ones with one."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from triune_data.build import build_dataset
from triune_data.schema import arrow_schema
from triune_data.writer import UNIQUE_VALUE_COLUMNS, _leaf_paths

from .test_build import PROMPTS, RECIPE


def _encodings(path: Path) -> dict[str, tuple[str, set[str]]]:
    meta = pq.ParquetFile(path).metadata
    group = meta.row_group(0)
    return {
        group.column(i).path_in_schema: (group.column(i).compression, set(group.column(i).encodings))
        for i in range(group.num_columns)
    }


def test_unique_columns_plain_repeating_ones_dictionary_images_uncompressed(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(prompts=PROMPTS))
    build_dataset(recipe, tmp_path / "out")
    shard = sorted((tmp_path / "out" / "data").rglob("*.parquet"))[0]
    enc = _encodings(shard)
    assert set(enc) == set(_leaf_paths(arrow_schema()))
    assert set(enc) >= UNIQUE_VALUE_COLUMNS  # every name is a real column
    for column in UNIQUE_VALUE_COLUMNS:
        assert "RLE_DICTIONARY" not in enc[column][1], column
    for column in ("data_source", "task", "split", "prompt.list.element.role", "reward.verifier"):
        assert "RLE_DICTIONARY" in enc[column][1], column
    assert enc["images.list.element.bytes"][0] == "UNCOMPRESSED"
    assert "RLE_DICTIONARY" not in enc["images.list.element.bytes"][1]
    assert enc["id"][0] == "ZSTD"
