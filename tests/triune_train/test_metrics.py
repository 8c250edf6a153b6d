"""Per-source metrics against hand-computed values, and the metrics logger's files."""

from __future__ import annotations

import json
import struct
import sys
import types
from pathlib import Path

import pytest

from triune_train.metrics import (
    REFLECTION_WORDS,
    CompletionRecord,
    MetricsError,
    MetricsLogger,
    completion_metrics,
    has_reflection,
    read_metrics,
    sample_completions,
)


def rec(source, verifier, status, reward, fmt, comps, tokens, text, group, *, truncated=False, neutralized=0):
    return CompletionRecord(
        data_source=source,
        task="reasoning" if verifier == "math" else "perception",
        verifier=verifier,
        status=status,
        reward=reward,
        accuracy=reward,
        format=fmt,
        components=comps,
        response_tokens=tokens,
        truncated=truncated,
        text=text,
        group=group,
        neutralized=neutralized,
        sample_id=f"{source}-{group}",
    )


RECORDS = [
    # math/geo (key math_geo): group 0 = [1, 0]; group 1 = [error, 1]
    rec("math/geo", "math", "ok", 1.0, 1.0, {"predicted": 1.0}, 10, "Let me verify: 4", 0),
    rec("math/geo", "math", "ok", 0.0, 1.0, {"predicted": 1.0}, 20, "5", 0, truncated=True, neutralized=2),
    rec("math/geo", "math", "error", 0.0, 0.0, {}, 30, "Wait", 1),
    rec("math/geo", "math", "ok", 1.0, 0.0, {"predicted": 1.0}, 40, "4", 1),
    # det: group 2 = [0.6, 0.6] (no spread); group 3 = [timeout]. "count" collides with our own name.
    rec(
        "det",
        "detection",
        "ok",
        0.6,
        1.0,
        {"iou": 0.6, "tau": 0.85, "precision50": 1.0, "count": 3.0},
        50,
        "a",
        2,
    ),
    rec(
        "det",
        "detection",
        "ok",
        0.6,
        1.0,
        {"iou": 0.6, "tau": 0.85, "precision50": 0.5, "count": 1.0},
        70,
        "b",
        2,
    ),
    rec("det", "detection", "timeout", 0.0, 0.0, {}, 10, "", 3),
]

EXPECTED = {
    # math_geo: 4 rows, 3 scored ok (rewards 1, 0, 1; formats 1, 1, 0).
    "train/math_geo/count": 4.0,
    "train/math_geo/reward": 2 / 3,
    "train/math_geo/accuracy": 2 / 3,
    "train/math_geo/format": 2 / 3,
    "train/math_geo/correct_ratio": 2 / 3,
    "train/math_geo/response_length": 25.0,  # (10 + 20 + 30 + 40) / 4: every generated response
    "train/math_geo/response_length_correct": 25.0,  # (10 + 40) / 2
    "train/math_geo/response_length_wrong": 20.0,
    "train/math_geo/truncation_ratio": 0.25,
    "train/math_geo/reflection_ratio": 1 / 3,  # "verify" in 1 of 3 scored ("Wait" was an error row)
    "train/math_geo/accuracy_reflection": 1.0,
    "train/math_geo/accuracy_no_reflection": 0.5,  # (0 + 1) / 2
    "train/math_geo/zero_variance_group_ratio": 0.5,  # group 1 has one ok row: no signal
    "train/math_geo/error_rate": 0.25,
    "train/math_geo/timeout_rate": 0.0,
    "train/math_geo/not_applicable_rate": 0.0,
    "train/math_geo/neutralized": 2.0,
    "train/math_geo/predicted": 1.0,
    # det: 3 rows, 2 scored (0.6 each); accuracy 0.6 ≥ 0.5 counts as correct.
    "train/det/count": 3.0,
    "train/det/reward": 0.6,
    "train/det/accuracy": 0.6,
    "train/det/format": 1.0,
    "train/det/correct_ratio": 1.0,
    "train/det/response_length": 130 / 3,  # (50 + 70 + 10) / 3
    "train/det/response_length_correct": 60.0,
    "train/det/truncation_ratio": 0.0,
    "train/det/reflection_ratio": 0.0,
    "train/det/accuracy_no_reflection": 0.6,
    "train/det/zero_variance_group_ratio": 1.0,  # [0.6, 0.6] and a group with nothing scored
    "train/det/error_rate": 0.0,
    "train/det/timeout_rate": 1 / 3,
    "train/det/not_applicable_rate": 0.0,
    "train/det/neutralized": 0.0,
    "train/det/iou": 0.6,
    "train/det/tau": 0.85,
    "train/det/precision50": 0.75,
    "train/det/component_count": 2.0,
    # all: 7 rows, 5 scored: rewards 1, 0, 1, 0.6, 0.6.
    "train/all/count": 7.0,
    "train/all/reward": 0.64,
    "train/all/accuracy": 0.64,
    "train/all/format": 0.8,
    "train/all/correct_ratio": 0.8,
    "train/all/response_length": 230 / 7,
    "train/all/response_length_correct": 42.5,  # (10 + 40 + 50 + 70) / 4
    "train/all/response_length_wrong": 20.0,
    "train/all/truncation_ratio": 1 / 7,
    "train/all/reflection_ratio": 0.2,
    "train/all/accuracy_reflection": 1.0,
    "train/all/accuracy_no_reflection": 2.2 / 4,  # (0 + 1 + 0.6 + 0.6) / 4
    "train/all/zero_variance_group_ratio": 0.75,
    "train/all/error_rate": 1 / 7,
    "train/all/timeout_rate": 1 / 7,
    "train/all/not_applicable_rate": 0.0,
    "train/all/neutralized": 2.0,
    "train/all/predicted": 1.0,
    "train/all/iou": 0.6,
    "train/all/tau": 0.85,
    "train/all/precision50": 0.75,
    "train/all/component_count": 2.0,
}


def test_completion_metrics_by_hand():
    assert completion_metrics(RECORDS, split="train") == pytest.approx(EXPECTED)


def test_correct_threshold_per_verifier():
    # V-Triune's definition (accuracy == 1) makes the detection answers wrong: no correct length.
    m = completion_metrics(RECORDS, split="val", correct_threshold={"detection": 1.0})
    assert m["val/det/correct_ratio"] == 0.0
    assert "val/det/response_length_correct" not in m
    assert m["val/det/response_length_wrong"] == 60.0
    assert m["val/math_geo/correct_ratio"] == pytest.approx(2 / 3)  # binary: unchanged


def test_single_rollout_eval_has_no_zero_variance_metric_and_empty_input_no_keys():
    m = completion_metrics([rec("s", "math", "ok", 1.0, 1.0, {}, 3, "x", g) for g in range(3)], split="test")
    assert "test/s/zero_variance_group_ratio" not in m
    assert m["test/s/accuracy"] == 1.0
    assert completion_metrics([], split="train") == {}


def test_non_numeric_and_non_finite_components_are_skipped():
    comps = {"iou": float("nan"), "note": "x", "hit": True}
    rows = [
        rec("s", "detection", "ok", 0.5, 1.0, comps, 5, "", 0),
        rec("s", "detection", "ok", 0.5, 1.0, {"iou": 0.4}, 5, "", 0),
    ]
    m = completion_metrics(rows, split="train")
    assert (m["train/s/iou"], m["train/s/hit"]) == (0.4, 1.0)
    assert "train/s/note" not in m


def test_not_applicable_rows_count_but_are_not_scored():
    rows = [
        rec("s", "math", "not_applicable", 0.0, 0.0, {}, 5, "x", 0),
        rec("s", "math", "ok", 1.0, 1.0, {}, 7, "y", 0),
    ]
    m = completion_metrics(rows, split="train")
    assert (m["train/s/not_applicable_rate"], m["train/s/reward"], m["train/s/response_length"]) == (
        0.5,
        1.0,
        6.0,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Let me RE-CHECK this.", True),
        ("Hmm, wait.", True),
        ("I should think again", True),
        ("not yet sure", True),
        ("They await the bus", True),  # substring match, as in the paper's code: "wait"
        ("The answer is 42.", False),
        ("", False),
    ],
)
def test_reflection_words(text, expected):
    assert has_reflection(text) is expected


def test_reflection_word_list_is_the_papers():
    assert len(REFLECTION_WORDS) == 15 and len(set(REFLECTION_WORDS)) == 15


def test_sample_completions_is_deterministic_and_capped():
    rows = [rec(src, "math", "ok", 1.0, 1.0, {}, 3, "t" * 50, g) for g in range(20) for src in ("b", "a")]
    first = sample_completions(rows, per_source=3, seed=7, step=10, max_chars=5)
    assert first == sample_completions(rows, per_source=3, seed=7, step=10, max_chars=5)
    assert [s["data_source"] for s in first] == ["a"] * 3 + ["b"] * 3
    assert all(s["text"] == "ttttt" for s in first)
    other_steps = [sample_completions(rows, per_source=3, seed=7, step=k) for k in range(11, 15)]
    assert any([s["group"] for s in o] != [s["group"] for s in first] for o in other_steps)


# ----------------------------------------------------------------------------------------------
# MetricsLogger


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def tensorboard_scalars(run: Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in RUN/tensorboard, read from the TFRecord framing."""
    from tensorboardX.proto import event_pb2

    out = []
    for path in sorted((run / "tensorboard").glob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                out.append((v.tag, event.step, v.simple_value))
    return out


def test_logger_writes_jsonl_samples_and_tensorboard(tmp_path):
    with MetricsLogger(tmp_path) as log:
        log.log(1, {"train/a/reward": 0.5, "train/all/reward": 0.5})
        log.log(1, {"val/a/reward": 0.25})  # eval of the same step: another line, merged on read
        log.log(2, {"train/a/reward": 0.75, "train/all/loss": float("nan")})
        log.log_samples(2, [{"data_source": "a", "text": "hi", "reward": 1.0}])
    rows = lines(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 1, 2]
    assert rows[2]["train/all/loss"] is None  # JSON has no NaN
    assert read_metrics(tmp_path) == [
        {
            "step": 1,
            "time": rows[1]["time"],
            "train/a/reward": 0.5,
            "train/all/reward": 0.5,
            "val/a/reward": 0.25,
        },
        {"step": 2, "time": rows[2]["time"], "train/a/reward": 0.75},
    ]
    assert lines(tmp_path / "samples.jsonl") == [{"step": 2, "data_source": "a", "text": "hi", "reward": 1.0}]
    scalars = tensorboard_scalars(tmp_path)
    assert ("train/a/reward", 2, 0.75) in scalars and ("val/a/reward", 1, 0.25) in scalars
    assert not any(tag == "train/all/loss" for tag, _, _ in scalars)


def test_resume_drops_replayed_steps_and_torn_lines(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as log:
        for step in range(1, 6):
            log.log(step, {"train/all/reward": step / 10})
            log.log_samples(step, [{"text": str(step)}])
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "train/all/rew')  # killed mid-write
    # Checkpoint at step 3: the resumed run starts again at step 4.
    with MetricsLogger(tmp_path, tensorboard=False, resume_step=4) as log:
        assert [r["step"] for r in lines(tmp_path / "metrics.jsonl")] == [1, 2, 3]
        assert [r["step"] for r in lines(tmp_path / "samples.jsonl")] == [1, 2, 3]
        with pytest.raises(ValueError, match="step 2 logged after step 3"):
            log.log(2, {})
        log.log(4, {"train/all/reward": 0.4})
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4]


def test_fresh_open_keeps_complete_lines(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a"')
    MetricsLogger(tmp_path, tensorboard=False).close()
    assert lines(tmp_path / "metrics.jsonl") == [{"step": 1, "a": 1.0}]


def test_resumed_tensorboard_purges_replayed_steps(tmp_path):
    with MetricsLogger(tmp_path) as log:
        for step in (1, 2, 3):
            log.log(step, {"x": float(step)})
    with MetricsLogger(tmp_path, resume_step=2) as log:
        log.log(2, {"x": 20.0})
    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted((tmp_path / "tensorboard").glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            events.append(event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length]))
            pos += 16 + length
    purges = [
        e.step for e in events if e.HasField("session_log") and e.session_log.status == e.session_log.START
    ]
    assert purges == [2]  # TensorBoard drops earlier events at steps >= 2 when it reads this


def test_wandb_is_optional_and_lazy(tmp_path, monkeypatch):
    calls: list[tuple] = []

    class Run:
        def log(self, metrics, step):
            calls.append(("log", metrics, step))

        def finish(self):
            calls.append(("finish",))

    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: calls.append(("init", kw)) or Run()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    with MetricsLogger(tmp_path, tensorboard=False, wandb={"project": "p"}) as log:
        log.log(3, {"train/all/reward": 1.0})
    assert calls == [
        ("init", {"dir": str(tmp_path), "project": "p"}),
        ("log", {"train/all/reward": 1.0}, 3),
        ("finish",),
    ]
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    with pytest.raises(MetricsError, match="needs the wandb package"):
        MetricsLogger(tmp_path / "b", tensorboard=False, wandb={})


def test_read_metrics_without_a_run(tmp_path):
    with pytest.raises(MetricsError, match="no metrics file"):
        read_metrics(tmp_path)
