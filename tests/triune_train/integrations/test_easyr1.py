"""The EasyR1 reward function, loaded and called as EasyR1's AutoRewardManager does (EasyR1 not installed).

AutoRewardManager loads the file by path as module `custom_reward_fn`, reads `REWARD_TYPE`, binds
`reward_function_kwargs` with functools.partial and, for a batch function, calls it with one
``{"response", "response_length", "ground_truth"}`` per rollout, where ground_truth is the
`data.answer_key` column; every key of the results is averaged into a metric.
"""

import importlib.util
import sys
from functools import partial

import pytest

from tests.triune_train.integrations._kit import answer, spec_of
from triune_train.integrations import easyr1
from triune_train.integrations.common import IntegrationError, Settings

KEYS = {
    "overall",
    "accuracy",
    "format",
    "status_ok",
    "status_not_applicable",
    "status_error",
    "status_timeout",
}


@pytest.fixture
def reward_fn(monkeypatch):
    """What AutoRewardManager.__init__ builds from `worker.reward.reward_function=<easyr1.py>:compute_score`."""

    def load(**reward_function_kwargs):
        spec = importlib.util.spec_from_file_location("custom_reward_fn", easyr1.__file__)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, "custom_reward_fn", module)
        spec.loader.exec_module(module)
        assert getattr(module, "REWARD_TYPE", "batch") == "batch" and module.REWARD_NAME == "triune"
        return partial(module.compute_score, **reward_function_kwargs)

    return load


def inputs(rows, completions, answer_key="triune_reward"):
    return [
        {"response": c, "response_length": len(c), "ground_truth": row[answer_key]}
        for row, c in zip(rows, completions, strict=True)
    ]


def test_right_answers_score_fully_with_metrics_as_floats(exported, reward_fn):
    rows = exported["easyr1"]
    kwargs = {"model_family": "qwen2_5_vl", "data_min_pixels": 262144, "data_max_pixels": 4194304}
    settings = Settings.from_kwargs("easyr1", kwargs)
    completions = [
        answer(spec_of(r), "pixel", settings.model_input_size(spec_of(r).get("image_size"))) for r in rows
    ]
    scores = reward_fn(**kwargs)(inputs(rows, completions))
    assert len(scores) == len(rows)
    for s in scores:
        assert set(s) == KEYS and all(type(v) is float for v in s.values())
        assert s["accuracy"] == pytest.approx(1.0, abs=1e-4) and s["status_ok"] == 1.0


def test_easyr1_pre_resize_changes_what_qwen2_5_vl_saw(exported, reward_fn):
    """With EasyR1's default data.min_pixels the 160x120 images are enlarged before the processor."""
    assert Settings.from_kwargs(
        "easyr1", {"model_family": "qwen2_5_vl", "data_min_pixels": 262144}
    ).model_input_size([160, 120]) == (
        588.0,
        448.0,
    )  # 591x443 first (f = sqrt(262144/19200) = 3.695, truncated)
    det = [r for r in exported["easyr1"] if r["data_source"] == "synth_det"]
    without = Settings.from_kwargs("easyr1", {"model_family": "qwen2_5_vl"})
    completions = [
        answer(spec_of(r), "pixel", without.model_input_size(spec_of(r)["image_size"])) for r in det
    ]
    scores = reward_fn(model_family="qwen2_5_vl", data_min_pixels=262144)(inputs(det, completions))
    assert max(s["accuracy"] for s in scores) < 0.5  # boxes read in the wrong input size


def test_the_default_answer_key_gets_advice(exported, reward_fn):
    with pytest.raises(IntegrationError, match="no triune reward spec"):
        reward_fn(model_family="qwen2_5_vl")(inputs(exported["easyr1"][:1], ["x"], answer_key="answer"))
