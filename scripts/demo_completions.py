"""Write plausible model completions for a triune dataset, for the demo's `triune score` step.

A stand-in for a real model: for each sample, a completion in the format the prompt asks for,
right about 60% of the time (seeded). Boxes are the ground truth jittered by a few pixels, so
the dynamic IoU threshold shows in the detection scores.

    python scripts/demo_completions.py out/demo out/demo-completions.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pyarrow.parquet as pq


def _wrong(answer: str, rng: random.Random) -> str:
    try:
        return str(int(answer) + rng.choice([-2, -1, 1, 3]))
    except ValueError:
        return answer[::-1] + "x"


def completion(row: dict, rng: random.Random) -> str:
    right = rng.random() < 0.6
    if row["task"] in ("detection", "grounding"):
        boxes = []
        for b in row["boxes"]:
            jitter = 1.5 if right else 12.0
            box = [round(v + rng.uniform(-jitter, jitter)) for v in (b["x1"], b["y1"], b["x2"], b["y2"])]
            boxes.append({"bbox_2d": box, "label": b["label"]})
        return f"<think>\nI see {len(boxes)} objects.\n</think>\n<answer>\n{json.dumps(boxes)}\n</answer>"
    answer = row["ground_truth"] if right else _wrong(row["ground_truth"], rng)
    return f"<think>\nWorking it out step by step.\n</think>\n<answer>\n\\boxed{{{answer}}}\n</answer>"


def main(data_dir: str, out_path: str, seed: int = 0) -> None:
    rng = random.Random(seed)
    manifest = json.loads((Path(data_dir) / "manifest.json").read_text())
    with open(out_path, "w") as out:
        for f in manifest["files"]:
            table = pq.read_table(Path(data_dir) / f["path"], columns=["id", "task", "ground_truth", "boxes"])
            for row in table.to_pylist():
                out.write(json.dumps({"id": row["id"], "completion": completion(row, rng)}) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
