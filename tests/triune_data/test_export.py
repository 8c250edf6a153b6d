import json
import textwrap

import pyarrow.parquet as pq
import pytest

from triune_data.build import build_dataset
from triune_data.errors import DatasetError
from triune_data.export import VERL_SCHEMA, export_dataset


@pytest.fixture(scope="module")
def exported(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("verl")
    return out, export_dataset(small_dataset, out)


def test_files_follow_the_vtriune_naming(exported):
    _, written = exported
    assert sorted(written) == [
        ("test/test_counting_synth_count_8.parquet", 8),
        ("train/train_detection_synth_det_12.parquet", 12),
        ("train/train_math_synth_math_10.parquet", 10),
    ]


def test_rows_are_orsta_rows(exported, small_dataset):
    out, _ = exported
    det = pq.read_table(out / "train/train_detection_synth_det_12.parquet")
    assert det.schema.equals(VERL_SCHEMA)
    row = det.to_pylist()[0]
    rm = row["reward_model"]
    assert row["ability"] == "cv_detection" and rm["verifier"] == "detection"
    assert rm["ground_truth"].startswith("<answer>\n[{'bbox_2d': [") and rm["ground_truth"].endswith(
        "]\n</answer>"
    )
    assert rm["verifier_parm"]["det_verifier_normalized"] is True
    assert rm["verifier_parm"]["det_reward_ratio"]["iou_max_label_first"] == 1.0
    assert rm["verifier_parm"]["det_reward_ratio"]["iou_completeness"] == pytest.approx(0.3)
    assert rm["format_ratio"] == pytest.approx(0.1)
    assert row["prompt"][0]["content"].startswith("<image>")
    ours = json.loads(row["extra_info"]["triune_reward"])
    assert ours["verifier"] == "detection"

    math = pq.read_table(out / "train/train_math_synth_math_10.parquet").to_pylist()[0]
    assert math["reward_model"]["verifier"] == "mathverify"
    assert math["reward_model"]["ground_truth"] == "\\boxed{" + math["reward_model"]["answer"] + "}"
    assert math["reward_model"]["verifier_parm"] == {
        "det_verifier_normalized": None,
        "det_reward_ratio": None,
    }


def test_export_feeds_back_through_the_orsta_adapter(exported, small_dataset, tmp_path):
    """Round trip: triune -> verl/Orsta parquet -> orsta adapter -> triune, boxes within 0-1000 rounding."""
    out, _ = exported
    recipe = tmp_path / "back.yaml"
    recipe.write_text(
        textwrap.dedent(
            f"""\
            name: back
            prompts: {{detection: {{templates: ["{{{{question}}}}"]}}}}
            sources:
              - adapter: orsta
                data_source: synth_det
                options: {{path: {out / "train" / "train_detection_synth_det_12.parquet"}}}
            """
        )
    )
    back = tmp_path / "back"
    build_dataset(recipe, back)
    original = {
        r["id"].split("/", 1)[1]: r
        for r in pq.read_table(next((small_dataset / "data" / "synth_det").glob("*.parquet"))).to_pylist()
    }
    again = pq.read_table(next((back / "data" / "synth_det").glob("*.parquet"))).to_pylist()
    assert len(again) == len(original)
    for row in again:
        src = next(o for o in original.values() if o["images"][0]["bytes"] == row["images"][0]["bytes"])
        assert row["prompt"] == src["prompt"]
        w = src["image_sizes"][0]["width"]
        for a, b in zip(row["boxes"], src["boxes"], strict=True):
            assert a["label"] == b["label"]
            assert abs(a["x1"] - b["x1"]) <= w / 1000  # one 0-1000 unit
        assert row["reward"]["verifier"] == "detection"
        params = json.loads(row["reward"]["verifier_params"])
        assert params["coords"] == "pixel" and params["weights"]["iou"] == 1.0
        assert params["completeness"] == pytest.approx(0.3)


def test_unknown_format_and_non_empty_output(small_dataset, tmp_path):
    with pytest.raises(DatasetError, match="unknown export format"):
        export_dataset(small_dataset, tmp_path / "x", fmt="trl")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(DatasetError, match="not empty"):
        export_dataset(small_dataset, tmp_path / "full")
