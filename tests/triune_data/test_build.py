"""The build pipeline end to end on the synthetic source: layout, determinism, resume, loading."""

import json
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from triune_data.build import build_dataset
from triune_data.errors import DatasetError

RECIPE = """\
name: build-test
seed: 7
prompts: {prompts}
output: {{shard_size_mb: 0.05, row_group_mb: 0.02}}
sources:
  - adapter: synthetic
    data_source: synth_det
    options: {{task: detection, count: 150, image_size: [96, 72]}}
  - adapter: synthetic
    data_source: synth_count
    split: test
    options: {{task: counting, count: 70, image_size: [80, 64], format: jpeg}}
  - adapter: synthetic
    data_source: synth_math
    options: {{task: math, count: 40, image_size: [120, 48]}}
"""

PROMPTS = Path(__file__).resolve().parents[2] / "recipes" / "prompts" / "vtriune.yaml"


@pytest.fixture
def recipe(tmp_path) -> Path:
    p = tmp_path / "recipe.yaml"
    p.write_text(RECIPE.format(prompts=PROMPTS))
    return p


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_manifest_and_counts(recipe, tmp_path):
    out = tmp_path / "out"
    report = build_dataset(recipe, out)
    files = snapshot(out)
    assert {"README.md", "manifest.json", "recipe.json", "rejects/rejects-00000-of-00001.parquet"} <= set(
        files
    )
    manifest = json.loads(files["manifest.json"])
    shards = [f["path"] for f in manifest["files"]]
    assert any(p.startswith("data/synth_det/train-00000-of-") for p in shards)
    assert len([p for p in shards if p.startswith("data/synth_det/")]) > 1  # the size cap split it
    assert all(p.startswith("data/synth_count/test-") for p in shards if "synth_count" in p)
    for name, src in manifest["sources"].items():
        assert src["read"] == src["kept"] + src["rejected"], name
        assert report.sources[name].kept == src["kept"]
    assert manifest["sources"]["synth_det"]["read"] == 150
    total = sum(pq.ParquetFile(out / p).metadata.num_rows for p in shards)
    assert total == sum(s["kept"] for s in manifest["sources"].values())
    assert not (out / ".work").exists()


def test_same_input_gives_same_bytes_for_any_worker_count(recipe, tmp_path):
    build_dataset(recipe, tmp_path / "one", workers=1)
    build_dataset(recipe, tmp_path / "two", workers=2)
    assert snapshot(tmp_path / "one") == snapshot(tmp_path / "two")


def test_interrupted_build_resumes_to_identical_bytes(recipe, tmp_path):
    build_dataset(recipe, tmp_path / "clean")

    calls = {"n": 0}

    def crash_after_some_chunks(progress):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        build_dataset(recipe, out, progress=crash_after_some_chunks)
    state = json.loads((out / ".work" / "state.json").read_text())
    assert any(s["shards"] for s in state["series"].values()), (
        "some shards should be committed before the crash"
    )
    assert not list((out / ".work").rglob("*.tmp"))  # open shards were discarded, not half-written

    report = build_dataset(recipe, out, resume=True)
    assert report.resumed_from > 0
    assert snapshot(out) == snapshot(tmp_path / "clean")


def test_resume_refuses_a_different_recipe(recipe, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        build_dataset(recipe, out, progress=lambda p: (_ for _ in ()).throw(KeyboardInterrupt))
    recipe.write_text(recipe.read_text().replace("seed: 7", "seed: 8"))
    with pytest.raises(DatasetError, match="different recipe"):
        build_dataset(recipe, out, resume=True)


def test_non_empty_output_needs_a_flag(recipe, tmp_path):
    out = tmp_path / "out"
    build_dataset(recipe, out)
    with pytest.raises(DatasetError, match=r"--resume .* or --overwrite"):
        build_dataset(recipe, out)
    with pytest.raises(DatasetError, match="already complete"):
        build_dataset(recipe, out, resume=True)
    build_dataset(recipe, out, overwrite=True)


def test_datasets_loads_the_layout_offline_with_images(recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    import datasets

    out = tmp_path / "out"
    build_dataset(recipe, out)
    everything = datasets.load_dataset(str(out))
    assert set(everything) == {"train", "test"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert everything["train"].num_rows == manifest["rows_by_split"]["train"]
    one = datasets.load_dataset(str(out), "synth_count")
    row = one["test"][0]
    assert row["data_source"] == "synth_count"
    image = row["images"][0]
    assert image.size == (80, 64) and image.format == "JPEG"
    assert isinstance(one["test"].features["images"].feature, datasets.Image)


def test_a_source_that_cannot_be_read_is_one_clear_error(tmp_path):
    from triune_data.errors import SourceError

    p = tmp_path / "r.yaml"
    bad = tmp_path / "instances.json"
    bad.write_text("{not json")
    p.write_text(
        textwrap.dedent(
            f"""\
            name: broken
            prompts: {PROMPTS}
            sources:
              - adapter: coco
                data_source: coco_det
                options: {{annotations: {bad}, images: {tmp_path}}}
            """
        )
    )
    with pytest.raises(SourceError, match=r"instances\.json"):
        build_dataset(p, tmp_path / "out")


def test_a_recipe_outside_the_checkout_without_prompts_builds(tmp_path):
    """The prompt pools ship with the package: `prompts:` is optional wherever the recipe lives."""
    p = tmp_path / "elsewhere" / "recipe.yaml"
    p.parent.mkdir()
    p.write_text("\n".join(line for line in RECIPE.format(prompts="x").splitlines() if "prompts" not in line))
    report = build_dataset(p, tmp_path / "out")
    assert {name: c.kept for name, c in report.sources.items()} == {
        "synth_det": 150,
        "synth_count": 70,
        "synth_math": 40,
    }


def test_an_unknown_verifier_stops_the_build_before_any_work(recipe, tmp_path):
    from triune_data.errors import RecipeError

    text = recipe.read_text().replace(
        "    options: {task: math, count: 40, image_size: [120, 48]}",
        "    options: {task: math, count: 40, image_size: [120, 48]}\n    reward: {verifier: mathh}",
    )
    recipe.write_text(text)
    with pytest.raises(
        RecipeError, match=r"recipe\.yaml:16: sources\[2\]\.reward\.verifier: unknown verifier 'mathh'"
    ):
        build_dataset(recipe, tmp_path / "out")
    assert not (tmp_path / "out").exists()
