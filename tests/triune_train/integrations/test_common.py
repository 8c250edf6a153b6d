"""Shared pieces of the framework reward functions: image sizes, settings, the step clock, statuses."""

import logging
import multiprocessing
import subprocess
import sys

import pytest

from triune_data.coords import smart_resize
from triune_train.integrations.common import (
    FAMILIES,
    IntegrationError,
    Settings,
    StepClock,
    easyr1_image_size,
    fetch_image_size,
    parse_spec,
    score_rows,
    status_counts,
)


@pytest.mark.parametrize(
    "size, factor, lo, hi, expected",
    [
        ((320, 240), 28, 3136, 12845056, (308, 252)),  # round(320/28)=11, round(240/28)=9
        ((10, 10), 28, 3136, 12845056, (56, 56)),  # sides clamp to 28 first, then 28*28 < 3136 grows
        (
            (4000, 3000),
            28,
            3136,
            1003520,
            (1148, 840),
        ),  # beta = 3.458: floor(867.6/28)=30, floor(1156.7/28)=41
        ((100, 50), 32, 65536, 16777216, (384, 192)),  # beta = sqrt(65536/5000) = 3.620
    ],
)
def test_fetch_image_size(size, factor, lo, hi, expected):
    assert fetch_image_size(size, factor, lo, hi) == expected


def test_fetch_image_size_agrees_with_the_processor_rule_on_ordinary_images():
    for w in range(60, 2000, 37):
        for h in (61, 240, 333, 1080):
            new_h, new_w = smart_resize(h, w, factor=28, min_pixels=3136, max_pixels=12845056)
            assert fetch_image_size((w, h), 28, 3136, 12845056) == (new_w, new_h)


@pytest.mark.parametrize(
    "size, lo, hi, expected",
    [
        ((320, 240), 262144, 4194304, (591, 443)),  # f = sqrt(262144/76800) = 1.8475, truncated
        ((4000, 3000), 262144, 4194304, (2364, 1773)),  # f = sqrt(4194304/12e6) = 0.5912
        ((640, 480), None, None, (640, 480)),
    ],
)
def test_easyr1_image_size(size, lo, hi, expected):
    assert easyr1_image_size(size, lo, hi) == expected


@pytest.mark.parametrize(
    "framework, kwargs, expected",
    [
        ("trl", {}, (308.0, 252.0)),  # the processor alone, released limits
        ("verl", {}, (308.0, 252.0)),  # qwen_vl_utils then the processor: same limits, same size
        # 308x252 > 64*28*28: the processor shrinks qwen_vl_utils' image (from 320x240 it would be 252x168)
        ("verl", {"processor_max_pixels": 64 * 28 * 28}, (224.0, 196.0)),
        ("easyr1", {"data_min_pixels": 262144, "data_max_pixels": 4194304}, (588.0, 448.0)),  # 591x443 first
        ("easyr1", {}, (308.0, 252.0)),
    ],
)
def test_model_input_size_of_qwen2_5_vl(framework, kwargs, expected):
    settings = Settings.from_kwargs(framework, {"model_family": "qwen2_5_vl", **kwargs})
    assert settings.model_input_size([320, 240]) == expected
    assert settings.model_frame == "pixel"


def test_norm1000_families_need_no_input_size():
    for name in ("qwen2_vl", "qwen3_vl"):
        s = Settings.from_kwargs("verl", {"model_family": name})
        assert s.model_frame == "norm1000" and s.model_input_size([320, 240]) is None
    assert FAMILIES["qwen3_vl"].factor == 32 and FAMILIES["qwen2_5_vl"].factor == 28


def test_settings_come_from_kwargs_then_environment(monkeypatch):
    monkeypatch.setenv("TRIUNE_MODEL_FAMILY", "qwen3_vl")
    monkeypatch.setenv("TRIUNE_TOTAL_STEPS", "120")
    monkeypatch.setenv("TRIUNE_ROWS_PER_STEP", "64")
    monkeypatch.setenv("TRIUNE_TRAIN_SPLITS", "train, extra")
    s = Settings.from_kwargs("verl", {"model_family": "qwen2_5_vl"})
    assert (s.model_family, s.total_steps, s.rows_per_step) == ("qwen2_5_vl", 120, 64)
    assert s.train_splits == ("train", "extra") and s.on_error == "count"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"total_step": 10}, r"unknown triune reward setting\(s\) \['total_step'\]"),
        ({"model_family": "llava"}, "unknown model_family 'llava'"),
        ({"total_steps": "ten"}, "total_steps must be an integer"),
        ({"rows_per_step": -1}, "rows_per_step must be >= 0"),
        ({"total_steps": 100}, "total_steps is set but not rows_per_step"),
        ({"box_frame": "pixel"}, "a pixel frame needs a model_family"),
        ({"model_family": "qwen3_vl", "box_frame": "norm1"}, "not both"),
        ({"on_error": "ignore"}, "on_error is count or raise"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(IntegrationError, match=message):
        Settings.from_kwargs("verl", kwargs)


def test_step_clock_counts_training_rows_and_reads_for_others():
    clock = StepClock(rows_per_step=4)
    assert clock.steps([True, True, True]) == [1, 1, 1]
    assert clock.steps([False]) == [0]  # validation between steps: steps done so far
    assert clock.steps([True, True, False, True]) == [1, 2, 0, 2]  # rows 3, 4 then 5
    assert clock.steps([True] * 4) == [2, 2, 3, 3]  # rows 6..9


def _take_many(path: str, n: int, out) -> None:
    clock = StepClock(rows_per_step=10, path=path)
    out.extend([clock.take(1) for _ in range(n)])


def test_a_step_file_is_one_clock_across_processes(tmp_path):
    path = str(tmp_path / "run.step")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        seen = manager.list()
        procs = [ctx.Process(target=_take_many, args=(path, 25, seen)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert sorted(seen) == list(range(100))  # every row counted once, no lost update
    assert int((tmp_path / "run.step").read_text()) == 100
    (tmp_path / "resumed.step").write_text("640\n")  # what docs/interop.md says to write on resume
    assert StepClock(64, str(tmp_path / "resumed.step")).steps([True, False]) == [11, 10]
    (tmp_path / "run.step").write_text("oops")
    with pytest.raises(IntegrationError, match="not a row count"):
        StepClock(10, path).take(1)


def test_parse_spec_refuses_rows_without_one():
    assert parse_spec('{"verifier": "math"}') == {"verifier": "math"}
    for bad in ("\\boxed{3}", None, '["verifier"]'):
        with pytest.raises(IntegrationError, match="no triune reward spec"):
            parse_spec(bad)


SPEC = {"verifier": "math", "ground_truth": "3", "data_source": "m", "id": "m/1", "split": "train"}
BOX_SPEC = {
    "verifier": "grounding",
    "ground_truth": [{"label": "dog", "bbox": [10.0, 10.0, 50.0, 50.0]}],
    "image_size": [100, 100],
    "data_source": "g",
    "id": "g/1",
}


def test_errors_score_zero_are_counted_and_logged(caplog):
    settings = Settings.from_kwargs("verl", {})
    broken = {**SPEC, "params": {"no_such_param": 1}, "id": "m/2"}
    with caplog.at_level(logging.WARNING, logger="triune.integrations"):
        results = score_rows(
            [SPEC, broken, {**SPEC, "verifier": "nope", "id": "m/3"}], ["\\boxed{3}"] * 3, settings
        )
    assert [(r.reward, r.status) for r in results] == [(1.0, "ok"), (0.0, "error"), (0.0, "error")]
    assert status_counts() == {"m": {"ok": 1, "not_applicable": 0, "error": 2, "timeout": 0}}
    assert "m m/2: reward error, scored 0 and counted (1 so far" in caplog.text
    assert "unknown verifier 'nope'" in caplog.text


def test_on_error_raise_stops_at_the_first_error():
    settings = Settings.from_kwargs("verl", {"on_error": "raise"})
    with pytest.raises(IntegrationError, match="m m/2: reward error: math: verifier_params"):
        score_rows([{**SPEC, "params": {"bad": 1}, "id": "m/2"}], ["\\boxed{3}"], settings)


def test_box_rows_need_a_frame():
    with pytest.raises(IntegrationError, match="g: box rows need model_family"):
        score_rows([BOX_SPEC], ["<answer>[]</answer>"], Settings.from_kwargs("verl", {}))
    ok = score_rows(
        [BOX_SPEC],
        ['<answer>\n[{"bbox_2d": [100, 100, 500, 500], "label": "dog"}]\n</answer>'],
        Settings.from_kwargs("verl", {"box_frame": "norm1000"}),
    )
    assert ok[0].accuracy == pytest.approx(1.0)


def test_a_spec_with_context_fields_is_an_error_result():
    [r] = score_rows([{**SPEC, "step": 3}], ["x"], Settings.from_kwargs("verl", {}))
    assert r.status == "error" and "bad reward spec: a reward spec carries no step" in r.message


def test_reward_functions_import_no_framework_and_no_heavy_stack():
    """verl, EasyR1 and TRL load these modules in their reward workers: nothing of theirs, no torch."""
    code = (
        "import sys\n"
        "import triune_train.integrations.verl, triune_train.integrations.easyr1, triune_train.integrations.trl\n"
        "heavy = ('verl', 'trl', 'torch', 'transformers', 'datasets', 'pyarrow', 'triune_data.schema')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
