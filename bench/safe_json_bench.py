"""The cost of the JSON bounds: `safe_json.loads` beside orjson and `json`, one run.

    .venv/bin/python bench/safe_json_bench.py [--annotations 100000] [--repeat 5]

On a generated COCO-style document (images, annotations with polygons) and on its annotations as
JSONL lines, times `orjson.loads` (no bounds: the floor), `safe_json.loads` (bounds checked on the
raw bytes, then orjson) and `json.loads` (what JSONL lines used before), each the best of
`--repeat` runs, interleaved. The ratios are what to compare.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triune_data import safe_json


def document(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(n // 3)]
    annotations = [
        {
            "id": i,
            "image_id": rng.randrange(n // 3),
            "category_id": rng.randint(1, 80),
            "bbox": [round(rng.random() * 600, 2) for _ in range(4)],
            "area": round(rng.random() * 1e4, 2),
            "iscrowd": 0,
            "segmentation": [[round(rng.random() * 600, 2) for _ in range(16)]],
        }
        for i in range(n)
    ]
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c, "name": f"c{c}"} for c in range(1, 81)],
    }


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--annotations", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    doc = document(a.annotations)
    whole = orjson.dumps(doc)
    lines = [orjson.dumps(x) for x in doc["annotations"]]
    print(
        f"document: {len(whole) / 1e6:.1f} MB; {len(lines)} JSONL lines of {len(whole) // max(len(lines), 1)} bytes\n"
    )
    print("| input | orjson | safe_json | json | safe_json / orjson | safe_json / json |")
    print("|---|---:|---:|---:|---:|---:|")
    cases = {
        "whole document": (
            lambda: orjson.loads(whole),
            lambda: safe_json.loads(whole),
            lambda: json.loads(whole),
        ),
        "JSONL lines": (
            lambda: [orjson.loads(x) for x in lines],
            lambda: [safe_json.loads(x) for x in lines],
            lambda: [json.loads(x.decode()) for x in lines],
        ),
    }
    for name, (fast, bounded, slow) in cases.items():
        t: dict[str, list[float]] = {"orjson": [], "safe": [], "json": []}
        for _ in range(a.repeat):  # interleaved: the same machine noise for all three
            t["orjson"].append(best(fast, 1))
            t["safe"].append(best(bounded, 1))
            t["json"].append(best(slow, 1))
        o, s, j = min(t["orjson"]), min(t["safe"]), min(t["json"])
        print(
            f"| {name} | {o * 1e3:.0f} ms | {s * 1e3:.0f} ms | {j * 1e3:.0f} ms | {s / o:.2f} | {s / j:.2f} |"
        )


if __name__ == "__main__":
    main()
