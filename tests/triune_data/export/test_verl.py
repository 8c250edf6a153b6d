"""verl rows: Orsta fields for V-Triune and ROLL, the full reward spec in extra_info, a round trip."""

import json
import textwrap

import numpy as np
import pyarrow.parquet as pq
import pytest

from triune_data.build import build_dataset
from triune_data.coords import box_to_canonical
from triune_data.export import export_dataset
from triune_data.sources.orsta import python_literal
from triune_data.verifiers import score
from triune_data.verifiers.common.box_match import iou_matrix
from triune_data.verifiers.common.wire import item_from_reward_spec


@pytest.fixture(scope="module")
def rows(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("verl")
    export_dataset(small_dataset, out)
    return out, pq.read_table(out / "train.parquet").to_pylist()


def test_detection_row_is_an_orsta_row(rows):
    _, train = rows
    det = train[0]
    rm = det["reward_model"]
    assert det["data_source"] == "synth_det" and det["ability"] == "cv_detection"
    assert rm["style"] == "rule" and rm["verifier"] == "detection"
    assert rm["ground_truth"].startswith("<answer>\n[{'bbox_2d': [") and rm["ground_truth"].endswith(
        "]\n</answer>"
    )
    assert rm["verifier_parm"]["det_verifier_normalized"] is True
    assert rm["verifier_parm"]["det_reward_ratio"]["iou_max_label_first"] == 1.0
    assert rm["verifier_parm"]["det_reward_ratio"]["iou_completeness"] == pytest.approx(0.3)
    assert rm["format_ratio"] == pytest.approx(0.1)
    assert det["prompt"][0]["content"].startswith("<image>") and det["prompt"][0]["role"] == "user"


def test_math_row_is_boxed(rows):
    _, train = rows
    math = next(r for r in train if r["data_source"] == "synth_math")
    rm = math["reward_model"]
    assert rm["verifier"] == "mathverify" and rm["style"] == "rule" and math["ability"] == "math"
    assert rm["ground_truth"] == "\\boxed{" + rm["answer"] + "}"
    assert rm["verifier_parm"] == {"det_verifier_normalized": None, "det_reward_ratio": None}


def test_extra_info_carries_what_scoring_needs(rows, small_dataset):
    _, train = rows
    stored = {
        r["id"]: r for p in (small_dataset / "data").glob("*/*.parquet") for r in pq.read_table(p).to_pylist()
    }
    for row in train:
        info = row["extra_info"]
        src = stored[info["id"]]
        assert info["image_size"] == [[z["width"], z["height"]] for z in src["image_sizes"]]
        assert info["answer"] == src["answer"] and info["split"] == "train" and info["task"] == src["task"]
        spec = json.loads(info["triune_reward"])
        assert spec["verifier"] == src["reward"]["verifier"] and spec["data_source"] == src["data_source"]
        assert spec["image_size"] == info["image_size"][0] and spec["split"] == "train"
        if src["boxes"]:
            assert spec["ground_truth"] == [
                {"label": b["label"], "bbox": [b["x1"], b["y1"], b["x2"], b["y2"]]} for b in src["boxes"]
            ]
        else:
            assert spec["ground_truth"] == src["ground_truth"]


def test_the_spec_scores_a_perfect_answer_fully(rows):
    _, train = rows
    for row in train:
        spec = json.loads(row["extra_info"]["triune_reward"])
        if spec["verifier"] in ("detection", "grounding"):
            boxes = ", ".join(
                f'{{"bbox_2d": {[round(v, 6) for v in b["bbox"]]}, "label": "{b["label"]}"}}'
                for b in spec["ground_truth"]
            )
            completion = f"<think>\nlook\n</think>\n<answer>\n[{boxes}]\n</answer>"
        else:
            completion = (
                f"<think>\nso\n</think>\n<answer>\n\\boxed{{{row['reward_model']['answer']}}}\n</answer>"
            )
        result = score(item_from_reward_spec(spec, completion, model_frame="pixel"))
        assert result.status == "ok" and result.accuracy == pytest.approx(1.0), (result, completion)


def test_float_ground_truth_is_exact_where_integers_are_not(small_dataset, tmp_path):
    """The integer boxes V-Triune wrote cost an exact answer IoU; 3-decimal floats do not."""
    worst = {}
    for numbers in ("float", "int"):
        out = tmp_path / numbers
        export_dataset(small_dataset, out, box_numbers=numbers)
        ious = []
        for row in pq.read_table(out / "train.parquet").to_pylist():
            spec = json.loads(row["extra_info"]["triune_reward"])
            if spec["verifier"] != "detection":
                continue
            gt = row["reward_model"]["ground_truth"].removeprefix("<answer>\n").removesuffix("\n</answer>")
            for written, exact in zip(python_literal(gt), spec["ground_truth"], strict=True):
                back = box_to_canonical(written["bbox_2d"], "norm1000", image_size=spec["image_size"])
                ious.append(iou_matrix(np.array([back]), np.array([exact["bbox"]]))[0, 0])
        worst[numbers] = min(ious)
    assert worst["float"] > 0.99999
    assert worst["int"] < 0.995  # already halfway to τ = 0.99 on these 160x120 images


def test_export_feeds_back_through_the_orsta_adapter(rows, small_dataset, tmp_path):
    """Round trip: triune -> verl/Orsta parquet -> orsta adapter -> triune, boxes within 0-1000 rounding."""
    out, _ = rows
    recipe = tmp_path / "back.yaml"
    recipe.write_text(
        textwrap.dedent(
            f"""\
            name: back
            prompts: {{detection: {{templates: ["{{{{question}}}}"]}}}}
            sources:
              - adapter: orsta
                data_source: synth_det
                options: {{path: {out / "train.parquet"}, source_filter: [synth_det]}}
            """
        )
    )
    back = tmp_path / "back"
    build_dataset(recipe, back)
    original = pq.read_table(next((small_dataset / "data" / "synth_det").glob("*.parquet"))).to_pylist()
    again = pq.read_table(next((back / "data" / "synth_det").glob("*.parquet"))).to_pylist()
    assert len(again) == len(original)
    for row in again:
        src = next(o for o in original if o["images"][0]["bytes"] == row["images"][0]["bytes"])
        assert row["prompt"] == src["prompt"]
        for a, b in zip(row["boxes"], src["boxes"], strict=True):
            assert a["label"] == b["label"]
            assert abs(a["x1"] - b["x1"]) < 1e-2 and abs(a["y2"] - b["y2"]) < 1e-2  # 0.001 of 1000 units
        assert row["reward"]["verifier"] == "detection"
        params = json.loads(row["reward"]["verifier_params"])
        assert params["coords"] == "pixel" and params["weights"]["iou"] == 1.0
        assert params["completeness"] == pytest.approx(0.3)
