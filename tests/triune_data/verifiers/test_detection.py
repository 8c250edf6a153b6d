"""The `detection` verifier: V-Triune's worked numbers, the IoU schedule, frames, matchers, edge cases."""

import json

import numpy as np
import pytest

from triune_data.coords import resized_size
from triune_data.errors import VerifierError
from triune_data.types import Box
from triune_data.verifiers import ScoreItem, VerifyContext, score
from triune_data.verifiers.common.box_match import _max_weight_assignment, match_hungarian
from triune_data.verifiers.detection import DetectionParams, verify_detection

COMPONENTS = {
    "tau", "mean_iou", "completeness", "size_penalty", "iou", "iou_label_first", "iou_iou_first", "map", "map50",
    "map75", "precision50", "recall50", "precision75", "recall75", "precision95", "recall95", "precision99",
    "recall99", "num_pred", "num_gt",
}  # fmt: skip
GT_DOG = [{"label": "dog", "bbox": [100, 100, 300, 300]}]
IMAGE = (640, 480)


def answer(*boxes: tuple[list[float], str], think: str = "A dog lies on the bed.") -> str:
    body = json.dumps([{"bbox_2d": b, "label": lab} for b, lab in boxes])
    return f"<think>\n{think}\n</think>\n<answer>\n{body}\n</answer>"


def run(completion, gt=None, *, step=0, total_steps=0, image_size=IMAGE, model_input_size=None, **params):
    gt = [Box("dog", 100, 100, 300, 300)] if gt is None else gt
    ctx = VerifyContext(
        step=step, total_steps=total_steps, image_size=image_size, model_input_size=model_input_size
    )
    return verify_detection(completion, gt, DetectionParams(**params), ctx)


# docs/vtriune.md §5, worked examples (c = 0.3): IoU([105,105,300,300], GT) = 195² / 200² = 0.950625
NEAR = 0.7 * 0.950625 + 0.3


@pytest.mark.parametrize(
    ("completion", "step", "total", "params", "accuracy"),
    [
        (answer(([100, 100, 300, 300], "dog")), 5, 100, {}, 1.0),
        (answer(([100, 100, 300, 300], "dog")), 90, 100, {}, 1.0),
        (answer(([105, 105, 300, 300], "dog")), 5, 100, {}, NEAR),  # τ 0.85
        (answer(([105, 105, 300, 300], "dog")), 20, 100, {}, NEAR),  # τ 0.95
        (answer(([105, 105, 300, 300], "dog")), 90, 100, {}, 0.0),  # τ 0.99
        (answer(([105, 105, 300, 300], "dog")), 5, 100, {"iou_threshold": 0.99}, 0.0),
        (answer(([100, 100, 300, 300], "dog"), ([400, 100, 500, 300], "dog")), 5, 100, {}, 0.555),
        (answer(([100, 100, 300, 300], "dog"), ([400, 100, 500, 300], "dog")), 90, 100, {}, 0.555),
        (answer(([100, 100, 300, 300], "cat")), 5, 100, {}, 0.0),
        (answer(([100, 100, 300, 300], "Dog ")), 90, 100, {}, 1.0),
        # "average" (V-Triune's released server): the mean over τ = 0.5, 0.55, ..., 0.95, 0.99
        (answer(([100, 100, 300, 300], "dog")), 90, 100, {"iou_threshold": "average"}, 1.0),
        (answer(([105, 105, 300, 300], "dog")), 90, 100, {"iou_threshold": "average"}, 10 * NEAR / 11),
        # IoU 32000 / 40000 = 0.8: matched at the 7 thresholds up to 0.8
        (
            answer(([100, 100, 300, 260], "dog")),
            5,
            100,
            {"iou_threshold": "average"},
            7 * (0.7 * 0.8 + 0.3) / 11,
        ),
        (
            answer(([100, 100, 300, 300], "dog"), ([400, 100, 500, 300], "dog")),
            5,
            100,
            {"iou_threshold": "average"},
            0.555,
        ),
    ],
)
def test_vtriune_worked_examples(completion, step, total, params, accuracy):
    v = run(completion, step=step, total_steps=total, **params)
    assert v.status == "ok" and v.format == 1.0
    assert v.accuracy == pytest.approx(accuracy, abs=1e-12)
    assert set(v.components) == COMPONENTS


@pytest.mark.parametrize(
    ("completion", "step", "reward", "accuracy"),
    [
        (answer(([100, 100, 300, 300], "dog")), 90, 1.0, 1.0),
        (answer(([105, 105, 300, 300], "dog")), 5, (NEAR + 0.1) / 1.1, NEAR),
        (answer(([105, 105, 300, 300], "dog")), 90, 0.1 / 1.1, 0.0),
        (
            answer(([100, 100, 300, 300], "dog"), ([400, 100, 500, 300], "dog")),
            50,
            (0.555 + 0.1) / 1.1,
            0.555,
        ),
        (answer(([100, 100, 300, 300], "cat")), 5, 0.1 / 1.1, 0.0),
        ("<answer>\nI could not find a dog.\n</answer>", 5, 0.0, 0.0),
    ],
)
@pytest.mark.parametrize(
    "ground_truth",
    [
        GT_DOG,
        '[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}]',
        "<answer>\n[{'bbox_2d': [100, 100, 300, 300], 'label': 'dog'}]\n</answer>",
    ],
)
def test_through_score_with_format_weight(completion, step, reward, accuracy, ground_truth):
    item = ScoreItem(verifier="detection", completion=completion, ground_truth=ground_truth, accuracy_weight=1.0, format_weight=0.1,
                     step=step, total_steps=100, image_size=IMAGE)  # fmt: skip
    r = score(item)
    assert r.status == "ok", r.message
    assert r.reward == pytest.approx(reward, abs=1e-12) and r.accuracy == pytest.approx(accuracy, abs=1e-12)


@pytest.mark.parametrize(
    ("step", "total", "params", "tau"),
    [
        (0, 100, {}, 0.85),
        (10, 100, {}, 0.85),
        (1001, 10_000, {}, 0.95),
        (25, 100, {}, 0.95),
        (2501, 10_000, {}, 0.99),
        (100, 100, {}, 0.99),
        (0, 0, {}, 0.99),  # evaluation: training length unknown
        (5, 100, {"iou_threshold": 0.5}, 0.5),
        (40, 100, {"iou_schedule": [[0.5, 0.7], [1.0, 0.9]]}, 0.7),
        (60, 100, {"iou_schedule": [[0.5, 0.7], [1.0, 0.9]]}, 0.9),
    ],
)
def test_dynamic_threshold_schedule(step, total, params, tau):
    assert (
        run(answer(([100, 100, 300, 300], "dog")), step=step, total_steps=total, **params).components["tau"]
        == tau
    )


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"weights": {"iou": 0}}, "weights"),
        ({"iou_schedule": [[0.25, 0.95], [0.1, 0.85], [1.0, 0.99]]}, "iou_schedule"),
        ({"iou_schedule": [[0.1, 0.85], [0.9, 0.99]]}, "iou_schedule"),
        ({"iou_schedule": [[0.1, 1.5], [1.0, 0.99]]}, "iou_schedule"),
        ({"iou_schedule": []}, "iou_schedule"),
        ({"iou_threshold": 0}, "iou_threshold"),
        ({"iou_threshold": "mean"}, "iou_threshold"),
        ({"matcher": "greedy"}, "matcher"),
        ({"coords": "norm100"}, "coords"),
        ({"det_verifier_normalized": True}, "det_verifier_normalized"),
    ],
)
def test_invalid_params_are_errors(params, fragment):
    r = score(
        ScoreItem(
            verifier="detection",
            completion=answer(([1, 1, 2, 2], "dog")),
            ground_truth=GT_DOG,
            params=params,
            image_size=IMAGE,
        )
    )
    assert r.status == "error" and fragment in r.message and r.reward == 0.0


# Stored 1000x500 image; Qwen2.5-VL sees it resized to 1008x504 and answers in those pixels.
STORED = (1000, 500)
GT_WIDE = [{"label": "car", "bbox": [100, 50, 500, 250]}]


@pytest.mark.parametrize(
    ("box", "coords", "model_input_size", "accuracy"),
    [
        ([100.8, 50.4, 504, 252], "pixel", resized_size(STORED), 1.0),
        ([100.8, 50.4, 504, 252], "pixel", None, 0.0),  # read as stored pixels: IoU < 0.99
        ([100, 50, 500, 250], "pixel", None, 1.0),
        ([100, 100, 500, 500], "norm1000", None, 1.0),
        ([100, 100, 500, 500], "norm1000", resized_size(STORED), 1.0),  # input size irrelevant here
        ([0.1, 0.1, 0.5, 0.5], "norm1", None, 1.0),
        ([100, 50, 500, 250], "norm1000", None, 0.0),
    ],
)
def test_coordinate_frames(box, coords, model_input_size, accuracy):
    item = ScoreItem(verifier="detection", completion=answer((box, "car")), ground_truth=GT_WIDE, params={"coords": coords},
                     image_size=STORED, model_input_size=model_input_size)  # fmt: skip
    r = score(item)
    assert r.status == "ok" and r.accuracy == pytest.approx(accuracy, abs=1e-12)


def test_orsta_row_in_norm1000_frame():
    # Orsta-Data-47k v3det row: 799x533 image, boxes in 0-1000; the canonical GT is in pixels.
    norm = [([484, 227, 818, 998], "shiba dog"), ([106, 142, 473, 998], "shiba dog"),
            ([274, 468, 427, 652], "dog collar"), ([490, 522, 609, 611], "dog collar")]  # fmt: skip
    gt = [
        Box(lab, b[0] * 799 / 1000, b[1] * 533 / 1000, b[2] * 799 / 1000, b[3] * 533 / 1000)
        for b, lab in norm
    ]
    v = run(answer(*norm), gt, image_size=(799, 533), coords="norm1000")
    assert v.accuracy == 1.0 and v.components["map"] == 1.0
    # V-Triune's int() truncation of a pixel answer cost up to a unit per side; float keeps it exact
    pixels = [([b[0] * 0.799, b[1] * 0.533, b[2] * 0.799, b[3] * 0.533], lab) for b, lab in norm]
    assert run(answer(*pixels), gt, image_size=(799, 533)).accuracy == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("coords", "image_size", "model_input_size"),
    [("norm1000", None, None), ("norm1", None, None), ("pixel", None, (1008, 504))],
)
def test_missing_image_size_is_an_error_when_needed(coords, image_size, model_input_size):
    item = ScoreItem(verifier="detection", completion=answer(([1, 1, 2, 2], "dog")), ground_truth=GT_DOG, params={"coords": coords},
                     image_size=image_size, model_input_size=model_input_size)  # fmt: skip
    r = score(item)
    assert r.status == "error" and "image size" in r.message


def test_identity_frame_needs_no_image_size():
    r = score(
        ScoreItem(verifier="detection", completion=answer(([100, 100, 300, 300], "dog")), ground_truth=GT_DOG)
    )
    assert r.status == "ok" and r.accuracy == 1.0


def test_iou_first_credits_the_pair_it_matched():
    # V-Triune's loop-variable bug credits the best IoU (1.0, dog-dog) to the LAST unmatched pair
    # (cat-dog), a label mismatch: it would score 0.6 * (0.7 * 0 + 0.3 * 0.75) = 0.135.
    completion = answer(([0, 0, 100, 100], "dog"), ([500, 400, 600, 480], "cat"))
    gt = [Box("dog", 0, 0, 100, 100)]
    for params in ({"matcher": "iou_first"}, {"weights": {"iou": 0, "iou_first": 1}}):
        v = run(completion, gt, **params)
        assert v.accuracy == pytest.approx(0.6 * (0.7 * 1.0 + 0.3 * 0.75), abs=1e-12)
    assert v.components["iou_iou_first"] == pytest.approx(0.555, abs=1e-12)


def test_iou_first_counts_a_label_mismatch_as_a_matched_pair_with_zero_iou():
    v = run(answer(([100, 100, 300, 300], "cat")), matcher="iou_first")
    assert v.components["mean_iou"] == 0.0 and v.components["completeness"] == 1.0
    assert v.accuracy == pytest.approx(0.3, abs=1e-12)
    assert v.components["iou_label_first"] == 0.0


# Greedy label-first lets GT 1 take prediction a (IoU 90/110); GT 2 then has only b (IoU 0.25 < 0.5).
# The optimal assignment is GT1-b (80/120) and GT2-a (70/130).
GT_PAIR = [Box("dog", 0, 0, 100, 100), Box("dog", 40, 0, 140, 100)]
PRED_PAIR = answer(([10, 0, 110, 100], "dog"), ([-20, 0, 80, 100], "dog"))


@pytest.mark.parametrize(
    ("matcher", "accuracy"),
    [
        ("label_first", 0.7 * (90 / 110) / 2 + 0.3 * 0.5),
        ("iou_first", 0.7 * (90 / 110) / 2 + 0.3 * 0.5),
        ("hungarian", 0.7 * (80 / 120 + 70 / 130) / 2 + 0.3 * 1.0),
    ],
)
def test_hungarian_beats_greedy(matcher, accuracy):
    v = run(PRED_PAIR, GT_PAIR, matcher=matcher, iou_threshold=0.5)
    assert v.accuracy == pytest.approx(accuracy, abs=1e-12)


def test_hungarian_total_matches_scipy():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(11)
    for _ in range(200):
        n, m = rng.integers(1, 12, size=2)
        iou = rng.uniform(0, 1, size=(n, m)) * (rng.uniform(size=(n, m)) < 0.6)
        same = rng.uniform(size=(n, m)) < 0.7
        tau = float(rng.choice([0.0001, 0.3, 0.5]))
        w = np.where(same & (iou >= tau), iou, 0.0)
        rows, cols = optimize.linear_sum_assignment(w, maximize=True)
        ours = match_hungarian(iou, same, tau)
        assert sum(t[2] for t in ours) == pytest.approx(w[rows, cols].sum(), abs=1e-9)
        assert len({p for p, _, _ in ours}) == len(ours) == len({g for _, g, _ in ours})
        assert all(same[p, g] and iou[p, g] >= tau for p, g, _ in ours)
    assert _max_weight_assignment(np.zeros((0, 3))) == []


@pytest.mark.parametrize(
    ("boxes", "weights", "accuracy"),
    [
        # one GT, the exact box first then an extra: AP 1.0; the extra first: AP 0.5 (equal scores keep order)
        ([([100, 100, 300, 300], "dog"), ([400, 100, 500, 300], "dog")], {"iou": 0, "map": 1}, 0.6),
        ([([400, 100, 500, 300], "dog"), ([100, 100, 300, 300], "dog")], {"iou": 0, "map": 1}, 0.3),
        ([([100, 100, 300, 284], "dog")], {"iou": 0, "map50": 1}, 1.0),
        ([([100, 100, 300, 284], "dog")], {"iou": 0, "map": 1}, 0.9),  # IoU 0.92: 9 of 10 thresholds
        ([([100, 100, 300, 284], "dog")], {"iou": 1, "map": 1}, (0.0 + 0.9) / 2),
    ],
)
def test_map_terms(boxes, weights, accuracy):
    v = run(answer(*boxes), weights=weights)  # τ 0.99 (evaluation)
    assert v.accuracy == pytest.approx(accuracy, abs=1e-12)


@pytest.mark.parametrize(
    ("completion", "ground_truth", "accuracy", "fmt", "note"),
    [
        # an image without the asked class: only the empty answer is right
        ("<think>\nNo dog here.\n</think>\n<answer>\n[]\n</answer>", "[]", 1.0, 1.0, ""),
        (answer(([100, 100, 300, 300], "dog")), "[]", 0.0, 1.0, ""),
        ("<think>\nNo dog.\n</think>", "[]", 0.0, 0.0, "no <answer>"),
        # an empty answer when there is something to find
        ("<think>\nNo dog here.\n</think>\n<answer>\n[]\n</answer>", GT_DOG, 0.0, 0.0, ""),
        ("<answer>\nThe dog is on the left.\n</answer>", GT_DOG, 0.0, 0.0, "no valid box"),
        # VLM-R1 style: a code fence and no answer block
        (
            '```json\n[\n\t{"bbox_2d": [100, 100, 300, 300], "label": "dog"}\n]\n```',
            GT_DOG,
            0.0,
            0.0,
            "no <answer>",
        ),
        # no newline before <answer>: V-Triune's format rule fails, accuracy still counts
        ('<answer>[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}]</answer>', GT_DOG, 1.0, 0.0, ""),
        # far outside the image: kept, matches nothing
        (answer(([5000, 5000, 6000, 6000], "dog")), GT_DOG, 0.0, 1.0, ""),
        # NaN and unordered boxes are dropped before scoring
        (
            '\n<answer>\n[{"bbox_2d": ["nan", 1, 2, 3], "label": "dog"}, {"bbox_2d": [300, 100, 100, 300], "label": "dog"},'
            ' {"bbox_2d": [100, 100, 300, 300], "label": "dog"}]\n</answer>',
            GT_DOG,
            1.0,
            1.0,
            "2 invalid",
        ),
        # exact duplicates are dropped (V-Triune)
        (
            answer(([100, 100, 300, 300], "dog"), ([100, 100, 300, 300], "dog")),
            GT_DOG,
            1.0,
            1.0,
            "1 duplicate",
        ),
        # unicode labels, case-folded
        (
            answer(([100, 100, 300, 300], "STRASSE")),
            [{"label": "Straße", "bbox": [100, 100, 300, 300]}],
            1.0,
            1.0,
            "",
        ),
        (
            answer(([100, 100, 300, 300], "狗")),
            '[{"bbox_2d": [100, 100, 300, 300], "label": "狗"}]',
            1.0,
            1.0,
            "",
        ),
    ],
)
def test_edge_cases(completion, ground_truth, accuracy, fmt, note):
    r = score(
        ScoreItem(
            verifier="detection",
            completion=completion,
            ground_truth=ground_truth,
            image_size=IMAGE,
            format_weight=0.1,
        )
    )
    assert r.status == "ok", r.message
    assert (r.accuracy, r.format) == (pytest.approx(accuracy, abs=1e-12), fmt)
    assert note in r.message
    assert set(r.components) == COMPONENTS


@pytest.mark.parametrize(
    ("fmt_spec", "expected"),
    [
        ({"mode": "answer_block"}, 0.0),
        ({"mode": "answer_block", "strict_newlines": False}, 1.0),
        ({"mode": "think_answer", "strict_newlines": False}, 0.5),  # no <think> block: 2 of 4 tags
        ({"mode": "none"}, 0.0),
    ],
)
def test_format_rule_is_configurable(fmt_spec, expected):
    v = run('<answer>[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}]</answer>', format=fmt_spec)
    assert (v.accuracy, v.format) == (1.0, expected)


def test_answer_block_optional_when_asked():
    completion = (
        '<think>\nThe dog.\n</think>\n```json\n[{"bbox_2d": [100, 100, 300, 300], "label": "dog"}]\n```'
    )
    v = run(completion, answer_required=False)
    assert (v.accuracy, v.format) == (1.0, 0.0)


@pytest.mark.parametrize(
    ("ground_truth", "fragment"),
    [
        ("the dog on the left", "no boxes"),
        ('[{"bbox_2d": [100, 100, 300, 300]}]', "invalid ground truth"),  # no label
        ('[{"bbox_2d": ["nan", 100, 300, 300], "label": "dog"}]', "invalid ground truth"),
        ([{"label": "dog", "bbox": [300, 100, 100, 300]}], "invalid ground-truth box"),
        ([{"label": "dog", "bbox": [100, 100, 300]}], ""),
        ("[" * 100, "invalid ground truth"),
    ],
)
def test_unusable_ground_truth_is_an_error(ground_truth, fragment):
    r = score(
        ScoreItem(
            verifier="detection",
            completion=answer(([100, 100, 300, 300], "dog")),
            ground_truth=ground_truth,
            image_size=IMAGE,
        )
    )
    assert r.status == "error" and fragment in r.message and r.reward == 0.0


def test_box_ground_truth_is_validated():
    with pytest.raises(VerifierError):
        run(answer(([1, 1, 2, 2], "dog")), [Box("dog", 10, 10, float("inf"), 20)])


def test_ten_thousand_predicted_boxes():
    boxes = [([i % 600, i % 400, i % 600 + 20, i % 400 + 20], "dog") for i in range(10_000)]
    v = run(answer(([100, 100, 300, 300], "dog"), *boxes))
    assert v.status == "ok" and v.accuracy == 0.0 and "more than 1000 boxes" in v.message
    assert v.components["num_pred"] <= 1000


def test_megabyte_completion_called_directly_stays_bounded():
    junk = '[{"bbox_2d": [1, 2, 3, 4], "label": "dog", "note": "' + "a" * 1_000_000 + '"}]'
    v = run("<think>\n" + "x" * 1_000_000 + "\n</think>\n<answer>\n" + junk + "\n</answer>")
    assert v.status == "ok" and v.accuracy == 0.0 and v.components["num_pred"] == 1.0
    deep = run("\n<answer>\n" + "[" * 1_000_000 + "\n</answer>")
    assert deep.accuracy == 0.0 and deep.format == 0.0 and "nesting" in deep.message
    r = score(
        ScoreItem(verifier="detection", completion="x" * 1_000_000, ground_truth=GT_DOG, image_size=IMAGE)
    )
    assert r.status == "ok" and r.reward == 0.0 and "longer than" in r.message


def test_registered_as_box_verifier():
    from triune_data.verifiers import get_verifier

    spec = get_verifier("detection")
    assert spec.boxes and spec.params is DetectionParams and spec.fn is verify_detection
