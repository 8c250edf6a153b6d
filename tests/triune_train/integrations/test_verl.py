"""The verl reward function, called exactly as verl 0.9's reward managers call it (verl not installed).

- naive / dapo / reward loop: ``partial(_call_with_kwargs, fn, reward_kwargs)`` then
  ``fn(data_source=, solution_str=, ground_truth=, extra_info=, **router_kwargs)`` per rollout, with
  ``num_turns`` and ``rollout_reward_scores`` added to extra_info;
- batch: ``fn(data_sources=, solution_strs=, ground_truths=, extra_infos=, **reward_kwargs)`` with numpy
  object arrays.
"""

import json

import numpy as np
import pytest

from tests.triune_train.integrations._kit import answer, spec_of
from triune_train.integrations.common import IntegrationError, Settings
from triune_train.integrations.verl import compute_score, compute_score_batch

KEYS = {
    "score",
    "acc",
    "format",
    "status_ok",
    "status_not_applicable",
    "status_error",
    "status_timeout",
    "triune_message",
}


def naive(reward_kwargs, row, completion, **router):
    """verl's NaiveRewardManager.run_single through get_custom_reward_fn's wrapper."""
    extra_info = dict(row["extra_info"])
    extra_info["num_turns"] = None
    extra_info["rollout_reward_scores"] = {}
    kwargs = dict(
        data_source=row["data_source"],
        solution_str=completion,
        ground_truth=row["reward_model"]["ground_truth"],
        extra_info=extra_info,
        **router,
    )
    return compute_score(**{**kwargs, **reward_kwargs})


def batch(reward_kwargs, rows, completions):
    """verl's BatchRewardManager.verify."""
    extras = np.array([dict(r["extra_info"], rollout_reward_scores={}) for r in rows], dtype=object)
    return compute_score_batch(
        data_sources=np.array([r["data_source"] for r in rows], dtype=object),
        solution_strs=completions,
        ground_truths=[r["reward_model"]["ground_truth"] for r in rows],
        extra_infos=extras,
        **reward_kwargs,
    )


@pytest.mark.parametrize(
    "family, frame", [("qwen2_5_vl", "pixel"), ("qwen3_vl", "norm1000"), ("qwen2_vl", "norm1000")]
)
def test_right_answers_in_the_models_frame_score_fully(exported, family, frame):
    rows = exported["verl"]
    kwargs = {"model_family": family}
    settings = Settings.from_kwargs("verl", kwargs)
    for row in rows:
        spec = spec_of(row)
        size = settings.model_input_size(spec.get("image_size")) if frame == "pixel" else None
        result = naive(kwargs, row, answer(spec, frame, size), reward_router_address=None)
        assert set(result) == KEYS
        assert result["status_ok"] == 1.0 and result["acc"] == pytest.approx(1.0, abs=1e-4), (
            row["data_source"],
            result,
        )
    results = batch(
        kwargs,
        rows,
        [answer(spec_of(r), frame, settings.model_input_size(spec_of(r).get("image_size"))) for r in rows],
    )
    assert all(set(r) == KEYS and r["acc"] == pytest.approx(1.0, abs=1e-4) for r in results)


def test_qwen2_5_vl_boxes_are_read_in_the_resized_input(exported):
    """The demo's 160x120 images reach Qwen2.5-VL as 168x112: boxes in stored pixels are off."""
    det = [r for r in exported["verl"] if r["data_source"] == "synth_det"]
    assert Settings.from_kwargs("verl", {"model_family": "qwen2_5_vl"}).model_input_size([160, 120]) == (
        168.0,
        112.0,
    )
    stored_frame = [naive({"model_family": "qwen2_5_vl"}, r, answer(spec_of(r), "pixel"))["acc"] for r in det]
    assert max(stored_frame) < 0.5


def test_the_iou_threshold_follows_the_counted_step(exported, tmp_path):
    """10 steps of 4 rollouts: τ = 0.85 for step 1, 0.99 from step 3 (paper §3.4); a box off by 5% of its
    width has IoU 0.905, so it counts early and not late."""
    det = next(r for r in exported["verl"] if r["data_source"] == "synth_det")
    kwargs = {
        "model_family": "qwen3_vl",
        "total_steps": 10,
        "rows_per_step": 4,
        "step_file": str(tmp_path / "s"),
    }
    near = answer(spec_of(det), "norm1000", jitter=0.05)
    accs = [naive(kwargs, det, near)["acc"] for _ in range(12)]
    assert accs[0] == accs[3] > 0.6  # step 1
    assert accs[8] == accs[11] < 0.35  # step 3
    assert int((tmp_path / "s").read_text()) == 12
    test_row = next(r for r in exported["verl"] if r["extra_info"]["split"] == "test")
    naive(kwargs, test_row, "x")
    assert int((tmp_path / "s").read_text()) == 12  # validation rows do not advance the clock


def test_an_error_is_zero_counted_with_the_same_keys(exported):
    row = exported["verl"][0]
    spec = {**spec_of(row), "params": {"iou_threshold": 7}}
    broken = {**row, "extra_info": {**row["extra_info"], "triune_reward": json.dumps(spec)}}
    result = naive({"model_family": "qwen2_5_vl"}, broken, "anything")
    assert set(result) == KEYS
    assert (result["score"], result["status_error"], result["status_ok"]) == (0.0, 1.0, 0.0)
    assert "iou_threshold" in result["triune_message"]


def test_a_row_without_a_triune_spec_is_refused_with_advice(exported):
    row = exported["verl"][0]
    plain = {**row, "extra_info": {"index": 0}}
    with pytest.raises(IntegrationError, match=r"no triune reward spec.*triune export"):
        naive({"model_family": "qwen2_5_vl"}, plain, "x")


def test_unknown_reward_kwargs_are_refused(exported):
    with pytest.raises(IntegrationError, match="unknown triune reward setting"):
        naive({"model_familly": "qwen2_5_vl"}, exported["verl"][0], "x")
