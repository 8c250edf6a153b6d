"""V-Triune's reward judge and client, re-created from their description for `reward_bench.py`.

Written for the benchmark from the description in docs/vtriune.md §2–5 (no V-Triune code is
copied), keeping everything that costs time:

- server: FastAPI, open CORS, ``POST /judge`` with ONE sample, a pydantic `Payload` whose verifier
  params are a JSON *string*; per request the verifier class is looked up and instantiated with
  ``**json.loads(params)``, format and accuracy are computed, ~30 % of requests are logged as JSON;
  any exception gives all-zero rewards. Served by ``uvicorn _vtriune_baseline:app --workers N``.
- ``mathverify``: lower-case both, `math_verify.parse` the gold with default settings and the
  response with V-Triune's LaTeX-only config, ``verify``; format = 0.25 per newline-exact tag.
- ``detection``: answer block by regex, boxes by string repairs + `json.loads`, IoU in Python,
  both greedy matchers (label-first, iou-first) at all 11 thresholds (the report metrics need
  them), per-sample mAP by building a one-image COCO ground truth and results and running
  pycocotools' COCOeval, size penalty, weighted terms; τ follows ``DET_IOU_THRESHOLD=dynamic``
  (exported here, unlike V-Triune's launch script). The iou-first matcher is the intended one,
  not the released loop-variable bug: same cost, sane numbers.
- client (`judge_all`): ``ThreadPoolExecutor(max_workers=min(32, n))``; each item runs its own
  ``asyncio.run`` with a fresh HTTP session (httpx here, aiohttp there), 30 s timeout, 3 tries.

Left out, in V-Triune's favour: its other per-request log lines, and pycocotools' progress prints
(captured in memory here rather than written to the server's stdout).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import random
import re
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import math_verify
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from latex2sympy2_extended import NormalizationConfig
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from pydantic import BaseModel

log = logging.getLogger("vtriune.judge")  # V-Triune logs at INFO to stderr (root basicConfig there)
log.addHandler(logging.StreamHandler())
log.setLevel(logging.INFO)
THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)
VERIFIERS: dict[str, type] = {}


def register(name: str):
    def wrap(cls: type) -> type:
        VERIFIERS[name] = cls
        return cls

    return wrap


class BaseVerifier:
    def __init__(self, is_training=True, step=0, total_steps=1, image_path=None, image_grid_thw=None,
                 det_verifier_normalized=False, det_reward_ratio=None, **_: Any) -> None:  # fmt: skip
        self.step_ratio = float(step) / float(total_steps)
        self.image_grid_thw = image_grid_thw
        self.normalized = bool(det_verifier_normalized)
        self.ratio = dict(det_reward_ratio or {})


@register("mathverify")
class MathVerifyVerifier(BaseVerifier):
    def verify_format(self, text: str) -> float:
        tags = ("<think>\n", "\n</think>\n", "\n<answer>\n", "\n</answer>")
        return 0.25 * sum(text.count(t) == 1 for t in tags)

    def verify_accuracy(self, text: str, solution: str) -> float:
        gold = math_verify.parse(solution.lower(), extraction_mode="first_match")
        if not gold:
            return 0.0
        norm = NormalizationConfig(
            nits=False, malformed_operators=False, basic_latex=True, boxed="all", units=True
        )
        config = math_verify.LatexExtractionConfig(
            normalization_config=norm, boxed_match_priority=0, try_extract_without_anchor=False
        )
        pred = math_verify.parse(text.lower(), extraction_config=[config], extraction_mode="first_match")
        try:
            return float(math_verify.verify(gold, pred))
        except Exception:
            return 0.0


_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def answer_content(text: str) -> str:
    m = _ANSWER.search(text)
    return m.group(1).strip() if m else ""


def extract_bbox(text: str) -> list[dict] | None:
    """V-Triune's repair-and-json.loads parser: valid, ordered, de-duplicated boxes, or None."""
    if not text.strip():
        return None
    text = text.replace("[[", "[").replace("]]", "]")
    if not text.endswith("]"):
        text = text.rsplit("},", 1)[0] + "}]"
    try:
        items = json.loads(text.replace("'", '"').replace("\\", ""))
    except ValueError:
        return None
    out, seen = [], set()
    for it in items if isinstance(items, list) else ():
        b = it.get("bbox_2d") if isinstance(it, dict) else None
        if (isinstance(b, list) and len(b) == 4 and all(isinstance(v, int | float) for v in b)
                and b[0] <= b[2] and b[1] <= b[3] and isinstance(it.get("label"), str)
                and tuple(b) not in seen):  # fmt: skip
            seen.add(tuple(b))
            out.append(it)
    return out or None


def iou(a: list[float], b: list[float]) -> float:
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match_label_first(pred: list[dict], gt: list[dict], tau: float) -> list[float]:
    taken, out = set(), []
    for g in gt:
        cands = [(iou(p["bbox_2d"], g["bbox_2d"]), i) for i, p in enumerate(pred)
                 if i not in taken and p["label"].lower() == g["label"].lower()]  # fmt: skip
        if cands:
            best, i = max(cands, key=lambda c: (c[0], -c[1]))
            if best >= tau:
                taken.add(i)
                out.append(best)
    return out


def match_iou_first(pred: list[dict], gt: list[dict], tau: float) -> list[float]:
    ious = [[iou(p["bbox_2d"], g["bbox_2d"]) for g in gt] for p in pred]
    free_p, free_g, out = set(range(len(pred))), set(range(len(gt))), []
    while free_p and free_g:
        best, i, j = max((ious[i][j], i, j) for i in free_p for j in free_g)
        if best < tau:
            break
        out.append(best if pred[i]["label"].lower() == gt[j]["label"].lower() else 0.0)
        free_p.discard(i)
        free_g.discard(j)
    return out


def coco_objects(pred: list[dict], gt: list[dict]) -> tuple[COCO, list[dict]] | None:
    """V-Triune's one-image COCO ground truth (categories = GT labels) and results (score 1.0, other
    labels dropped); None when no prediction has a GT label (then every AP is 0)."""
    cats: dict[str, int] = {}
    anns = []
    for k, g in enumerate(gt):
        cats.setdefault(g["label"], len(cats))
        x1, y1, x2, y2 = g["bbox_2d"]
        bbox = [x1, y1, x2 - x1, y2 - y1]
        anns.append({"id": k + 1, "image_id": 0, "category_id": cats[g["label"]], "bbox": bbox,
                     "area": bbox[2] * bbox[3], "iscrowd": 0})  # fmt: skip
    dets = [{"image_id": 0, "category_id": cats[p["label"]], "score": 1.0,
             "bbox": [p["bbox_2d"][0], p["bbox_2d"][1], p["bbox_2d"][2] - p["bbox_2d"][0],
                      p["bbox_2d"][3] - p["bbox_2d"][1]]} for p in pred if p["label"] in cats]  # fmt: skip
    if not dets:
        return None
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on every call
        coco_gt = COCO()
        coco_gt.dataset = {"images": [{"id": 0}], "annotations": anns,
                           "categories": [{"id": i, "name": n} for n, i in cats.items()]}  # fmt: skip
        coco_gt.createIndex()
        return coco_gt, coco_gt.loadRes(dets)


def coco_eval(coco_gt: COCO, coco_dt: COCO) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map": float(ev.stats[0]), "map50": float(ev.stats[1]), "map75": float(ev.stats[2])}


def pycocotools_map(pred: list[dict], gt: list[dict]) -> dict[str, float]:
    """Per-sample COCO AP as V-Triune gets it: stats[0:3] of COCOeval on one image."""
    objects = coco_objects(pred, gt)
    return coco_eval(*objects) if objects else {"map": 0.0, "map50": 0.0, "map75": 0.0}


@register("detection")
class DetectionVerifier(BaseVerifier):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mode = os.environ.get("DET_IOU_THRESHOLD", "average")
        for key in ("iou_max_label_first", "iou_max_iou_first", "iou_completeness", "map", "map50", "map75"):
            self.ratio.setdefault(key, 0.0)

    def verify_format(self, text: str) -> float:
        if not (text.count("\n<answer>\n") and text.count("\n</answer>") == 1):
            return 0.0
        return 1.0 if extract_bbox(answer_content(text.strip()).lower()) else 0.0

    def _scores(self, pred: list[dict], gt: list[dict], matcher: Any, tau: float) -> dict[str, float]:
        m = matcher(pred, gt, tau)
        miss, false_alarm = (len(gt) - len(m)) / len(gt), (len(pred) - len(m)) / len(pred)
        mean_iou, complete = sum(m) / len(gt), 1.0 - (miss + false_alarm) / 2
        c = self.ratio["iou_completeness"]
        return {"pure": mean_iou, "precision": 1 - false_alarm, "recall": 1 - miss,
                "weighted": (1 - c) * mean_iou + c * complete}  # fmt: skip

    def verify_accuracy(self, text: str, solution: str) -> dict[str, float]:
        pred = extract_bbox(answer_content(text.strip()).lower())
        gt = extract_bbox(answer_content(solution.strip()).lower())
        if not gt or not pred:
            return {"final_score": 0.0}
        if self.normalized and self.image_grid_thw:  # model pixels -> V-Triune's 0-1000 grid, truncated
            _, h, w = self.image_grid_thw[0]
            for p in pred:
                p["bbox_2d"] = [int(v / s * 1000) for v, s in zip(p["bbox_2d"], (w, h, w, h), strict=True)]
        penalty = 0.6 ** abs(len(pred) - len(gt))
        table = {(name, t): self._scores(pred, gt, fn, t) for name, fn in
                 (("iou", match_iou_first), ("label", match_label_first)) for t in THRESHOLDS}  # fmt: skip
        step = self.step_ratio
        tau = (0.85 if step <= 0.1 else 0.95 if step <= 0.25 else 0.99) if self.mode == "dynamic" else None
        out = {"size_penalty": penalty}
        for name in ("iou", "label"):
            w = [table[name, t]["weighted"] for t in ((tau,) if tau else THRESHOLDS)]
            out[f"weighted_iou_score_max_{name}"] = penalty * sum(w) / len(w)
        for name, t in (("iou", 0.5), ("iou", 0.95), ("label", 0.5), ("label", 0.75), ("label", 0.95),
                        ("label", 0.99)):  # fmt: skip
            for k in ("pure", "precision", "recall"):
                out[f"report_iou_{round(t * 100)}_{name}_match_{k}"] = table[name, t][k]
        for k, v in pycocotools_map(pred, gt).items():
            out[f"pure_{k}_score"], out[f"weighted_{k}_score"] = v, v * penalty
        r = self.ratio
        terms = {"iou_max_iou_first": out["weighted_iou_score_max_iou"],
                 "iou_max_label_first": out["weighted_iou_score_max_label"], "map": out["weighted_map_score"],
                 "map50": out["weighted_map50_score"], "map75": out["weighted_map75_score"]}  # fmt: skip
        total = sum(float(r[k]) for k in terms)
        out["final_score"] = sum(v * float(r[k]) for k, v in terms.items()) / total if total > 0 else 0.0
        return out


class Payload(BaseModel):
    response: str
    prompt: str
    answer: str
    solution: str
    data_source: str
    reward_verifier: str
    reward_verifier_parm: str
    format_ratio: float | None = None
    accuracy_ratio: float | None = None


app = FastAPI()
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_credentials=True, allow_methods=["*"],
                   allow_headers=["*"])  # fmt: skip


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "Reward Judge Server"}


@app.post("/judge")
async def judge(payload: Payload) -> dict[str, Any]:
    rewards: dict[str, float] = dict.fromkeys(("format_reward", "accuracy_reward", "reflection_reward"), 0.0)
    rewards["final_reward"] = 0.0
    try:
        verifier = VERIFIERS[payload.reward_verifier](**json.loads(payload.reward_verifier_parm))
        fmt = verifier.verify_format(payload.response)
        acc = verifier.verify_accuracy(payload.response, payload.solution)
        if isinstance(acc, dict):
            rewards.update({f"{k}_reward": v for k, v in acc.items() if k != "final_score"})
            acc = acc["final_score"]
        a = 1.0 if payload.accuracy_ratio is None else payload.accuracy_ratio
        f = 0.1 if payload.format_ratio is None else payload.format_ratio
        rewards.update(format_reward=float(fmt), accuracy_reward=float(acc))
        rewards["final_reward"] = acc * a / (a + f) + fmt * f / (a + f)
        if random.random() < 0.3:
            log.info(json.dumps({"verifier": payload.reward_verifier, "prediction": payload.response,
                                 "solution": payload.solution, **rewards}))  # fmt: skip
    except Exception as exc:
        print(f"Error during verification: {exc}")
    return {"rewards": rewards}


# aiohttp builds its default SSL context once per process; httpx would build one per client.
_SSL = ssl.create_default_context()


async def _judge_one(urls: list[str], payload: dict[str, Any]) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=30.0, verify=_SSL, trust_env=False) as client:
        for attempt in range(3):
            try:
                resp = await client.post(random.choice(urls), json=payload)
                resp.raise_for_status()
                return resp.json()["rewards"]
            except (httpx.HTTPError, ValueError, KeyError):
                if attempt < 2:
                    await asyncio.sleep(1.0)
    return {"final_reward": 0.0}


def judge_all(urls: list[str], payloads: list[dict[str, Any]]) -> tuple[list[dict[str, float]], list[float]]:
    """V-Triune's RemoteRewardManager: one thread task, one event loop, one request per item."""

    def one(payload: dict[str, Any]) -> tuple[dict[str, float], float]:
        t = time.perf_counter()
        rewards = asyncio.run(_judge_one(urls, payload))
        return rewards, time.perf_counter() - t

    with ThreadPoolExecutor(max_workers=min(32, len(payloads))) as pool:
        done = list(pool.map(one, payloads))
    return [r for r, _ in done], [s for _, s in done]
