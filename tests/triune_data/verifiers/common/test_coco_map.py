"""Per-image COCO AP in numpy against pycocotools' COCOeval, run here as V-Triune runs it."""

import contextlib
import io
import random

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from triune_data.verifiers.common.coco_map import coco_ap


def reference(gt, gt_labels, dt, dt_labels, scores=None) -> list[float]:
    """stats[0:3] of COCOeval on a one-image dataset built like V-Triune's pack_for_map_score."""
    cats = list(dict.fromkeys(gt_labels))
    cat_id = {c: k for k, c in enumerate(cats)}
    scores = [1.0] * len(dt) if scores is None else scores
    categories = [{"id": k, "name": str(c)} for k, c in enumerate(cats)]
    gt_json = {
        "images": [{"id": 0}],
        "categories": categories,
        "annotations": [
            {"id": i + 1, "image_id": 0, "category_id": cat_id[lab], "iscrowd": 0,
             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])}
            for i, (b, lab) in enumerate(zip(gt, gt_labels, strict=True))
        ],
    }  # fmt: skip
    dt_json = [
        {
            "image_id": 0,
            "category_id": cat_id[lab],
            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
            "score": s,
        }
        for b, lab, s in zip(dt, dt_labels, scores, strict=True)
        if lab in cat_id
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_json
        coco_gt.createIndex()
        if dt_json:
            coco_dt = coco_gt.loadRes(dt_json)
        else:  # loadRes cannot take an empty list
            coco_dt = COCO()
            coco_dt.dataset = {"images": [{"id": 0}], "categories": categories, "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats[:3]]


def ours(gt, gt_labels, dt, dt_labels, scores=None) -> list[float]:
    ap = coco_ap(
        np.array(gt, float).reshape(-1, 4), gt_labels, np.array(dt, float).reshape(-1, 4), dt_labels, scores
    )
    return [ap.map, ap.map50, ap.map75]


def _random_case(rng: random.Random):
    labels = ["dog", "cat", "shiba dog", "dog collar"][: rng.randint(1, 4)]
    gt, gt_labels = [], []
    for _ in range(rng.randint(0, 15)):
        x, y, w, h = rng.randint(0, 300), rng.randint(0, 300), rng.randint(1, 90), rng.randint(1, 90)
        gt.append([x, y, x + w, y + h])
        gt_labels.append(rng.choice(labels))
    dt, dt_labels = [], []
    for _ in range(rng.randint(0, 20)):
        if gt and rng.random() < 0.75:  # a near-duplicate of some GT box
            b = rng.choice(gt)
            box = [v + rng.choice([0, 0, 0, 1, -1, 2, -4, rng.uniform(-6, 6)]) for v in b]
            dt.append(box if box[0] < box[2] and box[1] < box[3] else list(b))
        else:
            x, y, w, h = rng.uniform(0, 300), rng.uniform(0, 300), rng.uniform(0.5, 90), rng.uniform(0.5, 90)
            dt.append([x, y, x + w, y + h])
        dt_labels.append(rng.choice([*labels, "zebra"]))
    scores = None if rng.random() < 0.5 else [rng.choice([1.0, 0.9, 0.5, rng.random()]) for _ in dt]
    return gt, gt_labels, dt, dt_labels, scores


@pytest.mark.parametrize("seed", range(8))
def test_random_images_match_pycocotools(seed):
    rng = random.Random(seed)
    for _ in range(60):
        case = _random_case(rng)
        np.testing.assert_allclose(ours(*case), reference(*case), rtol=0, atol=1e-9)


GT2 = [[0, 0, 100, 100], [200, 200, 300, 300]]

TABLE = [
    # (gt, gt_labels, dt, dt_labels, scores)
    (GT2, ["dog", "dog"], GT2, ["dog", "dog"], None),  # perfect
    (GT2, ["dog", "dog"], [], [], None),  # nothing predicted: AP 0, not -1
    (GT2, ["dog", "cat"], GT2, ["zebra", "zebra"], None),  # labels outside the GT: dropped
    ([], [], GT2, ["dog", "dog"], None),  # no GT category: -1 everywhere
    ([], [], [], [], None),
    # IoU exactly on thresholds (0.5, 0.75, 0.95) and just below them
    ([[0, 0, 100, 100]], ["a"], [[0, 0, 50, 100]], ["a"], None),
    ([[0, 0, 100, 100]], ["a"], [[0, 0, 75, 100]], ["a"], None),
    ([[0, 0, 100, 100]], ["a"], [[0, 0, 95, 100]], ["a"], None),
    ([[0, 0, 100, 100]], ["a"], [[0, 0, 74.999, 100]], ["a"], None),
    # two GT with equal IoU to one detection: pycocotools takes the last
    (
        [[0, 0, 100, 100], [50, 0, 150, 100]],
        ["a", "a"],
        [[25, 0, 125, 100], [50, 0, 150, 100]],
        ["a", "a"],
        None,
    ),
    # exact duplicates: the second is a false positive; order of equal scores decides
    ([[0, 0, 100, 100]], ["a"], [[10, 0, 100, 100], [0, 0, 100, 100]], ["a", "a"], None),
    ([[0, 0, 100, 100]], ["a"], [[10, 0, 100, 100], [0, 0, 100, 100]], ["a", "a"], [0.5, 0.9]),
    # more than maxDets = 100 detections in one category
    (
        [[0, 0, 10, 10]],
        ["a"],
        [[i, i, i + 10, i + 10] for i in range(1, 150)] + [[0, 0, 10, 10]],
        ["a"] * 150,
        None,
    ),
    # a GT box beyond areaRng "all" (> 1e10) is ignored: its category is undefined
    (
        [[0, 0, 2e5, 2e5], [0, 0, 10, 10]],
        ["huge", "a"],
        [[0, 0, 2e5, 2e5], [0, 0, 10, 10]],
        ["huge", "a"],
        None,
    ),
    ([[0, 0, 10, 10]], ["a"], [[0, 0, 2e5, 2e5], [0, 0, 10, 10]], ["a", "a"], None),
    # degenerate boxes
    ([[0, 0, 10, 10]], ["a"], [[5, 5, 5, 9], [0, 0, 10, 10]], ["a", "a"], None),
]


@pytest.mark.parametrize("case", TABLE)
def test_table_matches_pycocotools(case):
    np.testing.assert_allclose(ours(*case), reference(*case), rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ((GT2, ["dog", "dog"], GT2, ["dog", "dog"], None), [1.0, 1.0, 1.0]),
        ((GT2, ["dog", "dog"], [], [], None), [0.0, 0.0, 0.0]),
        (([], [], GT2, ["dog", "dog"], None), [-1.0, -1.0, -1.0]),
        # IoU 0.8 matches at .50:.80 (7 of 10 thresholds), precision 1 up to recall 1
        (([[0, 0, 100, 100]], ["a"], [[0, 0, 80, 100]], ["a"], None), [0.7, 1.0, 1.0]),
    ],
)
def test_known_values(case, expected):
    np.testing.assert_allclose(ours(*case), expected, rtol=0, atol=1e-12)
