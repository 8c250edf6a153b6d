"""gold_verifies: realistic golds per verifier pass, one broken gold per verifier is dropped."""

import json
import re
from pathlib import Path

import pytest

from tests.triune_data.filters._rows import context, rows, sample, with_null
from tests.triune_data.filters._rows import outcome as _outcome
from triune_data.filters import gold
from triune_data.filters.gold import GoldVerifies, gold_completion
from triune_data.types import Sample, Task


def outcome(verdict: object) -> list[tuple[bool, str | None]]:
    """(dropped, detail) per row, without the list of known verifiers (other tests register more)."""
    return [(d, None if t is None else re.sub(r" \(known: [^)]*\)", "", t)) for d, t in _outcome(verdict)]


MCQ = json.dumps({"options": ["3", "4", "5"]})
NORM = json.dumps({"coords": "norm1000"})


def det(id: str, boxes: list, *, verifier: str = "detection", params: str = "{}", **kw) -> Sample:
    task: Task = "grounding" if verifier == "grounding" else "detection"
    return sample(
        id, task=task, answer="", ground_truth="", verifier=verifier, params=params, boxes=boxes, **kw
    )


# (sample, expected detail or None when the gold verifies)
CASES: list[tuple[Sample, str | None]] = [
    # math: V-Triune's math-verify, plain and boxed golds, fractions, units, percentages
    (sample("m1", answer="4"), None),
    (sample("m2", answer="\\frac{1}{2}", ground_truth="0.5"), None),
    (sample("m3", answer="12 cm", ground_truth="12"), None),
    (sample("m4", answer="50\\%", ground_truth="0.5"), None),
    (sample("m5", answer="\\boxed{25\\pi}", ground_truth="\\boxed{25\\pi}"), None),
    (sample("m_bad", answer="4", ground_truth="5"), "accuracy 0 (read '4')"),
    # mcq: a label or an option's text
    (sample("q1", answer="B", verifier="mcq", params=MCQ), None),
    (sample("q2", answer="5", ground_truth="C", verifier="mcq", params=MCQ), None),
    (
        sample("q_bad", answer="E", verifier="mcq", params=MCQ),
        "error: mcq: ground truth 'E' matches no option text or label",
    ),
    # counting
    (sample("c1", task="counting", answer="3", verifier="counting"), None),
    (
        sample("c_bad", task="counting", answer="many", verifier="counting"),
        "error: counting: ground truth 'many' is not a non-negative integer",
    ),
    # ocr
    (sample("o1", task="ocr", answer="Coca-Cola", verifier="ocr"), None),
    (sample("o2", task="ocr", answer="STOP", ground_truth="\\boxed{stop}", verifier="ocr"), None),
    (
        sample("o_bad", task="ocr", answer="Stop", ground_truth="Exit", verifier="ocr"),
        "accuracy 0 (read 'stop')",
    ),
    # detection, in pixels and in 0-1000 coordinates
    (det("d1", [("dog", 10.0, 20.0, 300.0, 400.0), ("cat", 50.0, 60.0, 70.0, 80.0)]), None),
    (det("d2", [("dog", 10.0, 20.0, 300.0, 400.0)], params=NORM), None),
    (
        det("d_bad", [("dog", 10.0, 20.0, 300.0, 400.0)], params=NORM, sizes=[]),
        "no image size to write the boxes in the verifier's frame",
    ),
    # grounding
    (det("g1", [("the dog on the left", 14.5, 133.5, 121.8, 469.6)], verifier="grounding"), None),
    (
        det("g_bad", [("the dog", 300.0, 20.0, 10.0, 400.0)], verifier="grounding"),
        "error: invalid item: ground_truth: Value error, invalid ground-truth box "
        "[300.0, 20.0, 10.0, 400.0] (finite, x1 <= x2, y1 <= y2)",
    ),
    # unknown verifier, params the verifier refuses, nothing to state
    (
        sample("u", verifier="nope"),
        "unknown verifier 'nope'",
    ),
    (
        sample("p", params='{"bogus": 1}'),
        "error: math: verifier_params.bogus: Extra inputs are not permitted",
    ),
    (sample("e", answer="", ground_truth=""), "no answer and no ground truth to state"),
]


def test_gold_verifies_per_verifier(tmp_path: Path) -> None:
    batch = rows(*(s for s, _ in CASES))
    verdict = GoldVerifies().apply(batch, context(tmp_path))
    got = dict(zip(batch["id"], outcome(verdict), strict=True))
    assert got == {s.id: (want is not None, want) for s, want in CASES}


def test_gold_falls_back_to_ground_truth_and_min_accuracy(tmp_path: Path) -> None:
    batch = with_null(
        rows(sample("a", answer="7", ground_truth="7"), sample("b", ground_truth="3")), "answer"
    )
    assert outcome(GoldVerifies().apply(batch, context(tmp_path))) == [
        (False, None),
        (True, "accuracy 0 (read '4')"),
    ]
    # min_accuracy 0 keeps a wrong gold, never one its verifier cannot score
    wrong_and_broken = rows(sample("w", answer="4", ground_truth="5"), sample("x", verifier="nope"))
    assert [
        d for d, _ in outcome(GoldVerifies(min_accuracy=0.0).apply(wrong_and_broken, context(tmp_path)))
    ] == [
        False,
        True,
    ]


def test_gold_completion_forms() -> None:
    row = rows(det("d", [("dog", 64.0, 48.0, 320.0, 240.0)], params=NORM)).row(0, named=True)
    assert gold_completion(row).endswith(
        '<answer>\n[{"bbox_2d": [100.0, 100.0, 500.0, 500.0], "label": "dog"}]\n</answer>'
    )
    math_row = rows(sample(answer="x^2")).row(0, named=True)
    assert gold_completion(math_row).endswith("<answer>\n\\boxed{x^2}\n</answer>")
    ocr_row = rows(sample(task="ocr", answer="STOP", verifier="ocr")).row(0, named=True)
    assert gold_completion(ocr_row).endswith("<answer>\nSTOP\n</answer>")


def test_gold_workers_agree_with_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gold, "_CHUNK", 3)  # several chunks over two worker processes
    batch = rows(*(s for s, _ in CASES[:8]))
    serial = GoldVerifies().apply(batch, context(tmp_path))
    pooled = GoldVerifies(workers=2).apply(batch, context(tmp_path))
    assert outcome(pooled) == outcome(serial)


def test_gold_memo_keeps_params_apart_and_null_reward_is_dropped(tmp_path: Path) -> None:
    two = json.dumps({"options": ["3", "4"]})
    batch = rows(
        sample("a", answer="C", verifier="mcq", params=MCQ),
        sample("b", answer="C", verifier="mcq", params=two),  # same gold and completion, other options
        sample("c", answer="C", verifier="mcq", params=MCQ),
        sample("d"),
    )
    batch = with_null(batch, "reward", 3)
    assert outcome(GoldVerifies().apply(batch, context(tmp_path))) == [
        (False, None),
        (True, "error: mcq: ground truth 'C' matches no option text or label"),
        (False, None),
        (
            True,
            "unknown verifier ''",
        ),
    ]
