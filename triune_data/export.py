"""`triune export --format verl`: our shards in the verl / Orsta-Data-47k layout.

The Orsta rows (vtriune.md §1.1) are what verl's RLHFDataset, EasyR1 and ROLL's VLM pipeline read:
`data_source, images, prompt, ability, reward_model{answer, ground_truth, accuracy_ratio,
format_ratio, verifier, verifier_parm{det_verifier_normalized, det_reward_ratio{...}}}, extra_info`.
Files are named as V-Triune's release: `{split}/{split}_{task}_{data_source}_{rows}.parquet`.

V-Triune's reward server knows two verifiers, so the mapping loses what it cannot express:
- reasoning, counting, OCR and MCQ rows -> `mathverify` with ground truth `\\boxed{answer}`;
- detection and grounding -> `detection`, ground truth `<answer>\\n[{'bbox_2d': ...}]\\n</answer>`
  in 0-1000 coordinates, rounded (V-Triune truncated; rounding halves the error).
Our own reward spec travels in `extra_info.triune_reward` (JSON) so nothing is lost for triune.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from triune_data.coords import box_from_canonical
from triune_data.errors import DatasetError
from triune_data.manifest import read_manifest
from triune_data.types import BOX_TASKS

_F32 = pa.float32()
_RATIO = pa.struct(
    [
        pa.field(k, _F32)
        for k in ("iou_max_label_first", "iou_max_iou_first", "iou_completeness", "map", "map50", "map75")
    ]
)
VERL_SCHEMA = pa.schema(
    [
        pa.field("data_source", pa.string()),
        pa.field(
            "images", pa.list_(pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())]))
        ),
        pa.field(
            "prompt", pa.list_(pa.struct([pa.field("content", pa.string()), pa.field("role", pa.string())]))
        ),
        pa.field("ability", pa.string()),
        pa.field(
            "reward_model",
            pa.struct(
                [
                    pa.field("answer", pa.string()),
                    pa.field("ground_truth", pa.string()),
                    pa.field("accuracy_ratio", _F32),
                    pa.field("format_ratio", _F32),
                    pa.field("verifier", pa.string()),
                    pa.field(
                        "verifier_parm",
                        pa.struct(
                            [
                                pa.field("det_verifier_normalized", pa.bool_()),
                                pa.field("det_reward_ratio", _RATIO),
                            ]
                        ),
                    ),
                ]
            ),
        ),
        pa.field(
            "extra_info",
            pa.struct(
                [
                    pa.field("id", pa.string()),
                    pa.field("image_path", pa.string()),
                    pa.field("split", pa.string()),
                    pa.field("task", pa.string()),
                    pa.field("sample_weight", pa.float64()),
                    pa.field("triune_reward", pa.string()),
                ]
            ),
        ),
    ]
)

ABILITY = {"detection": "cv_detection", "grounding": "cv_detection"}


def _box_ground_truth(row: dict[str, Any]) -> str:
    size = row["image_sizes"][0]
    image_size = (size["width"], size["height"])
    items = []
    for b in row["boxes"]:
        box = box_from_canonical((b["x1"], b["y1"], b["x2"], b["y2"]), "norm1000", image_size=image_size)
        coords = ", ".join(str(round(v)) for v in box)
        items.append(f"{{'bbox_2d': [{coords}], 'label': {b['label']!r}}}")
    return "<answer>\n[" + ", ".join(items) + "]\n</answer>"


def _det_parm(params: dict[str, Any]) -> dict[str, Any]:
    weights = {
        "iou": 1.0,
        "iou_first": 0.0,
        "map": 0.0,
        "map50": 0.0,
        "map75": 0.0,
        **params.get("weights", {}),
    }
    return {
        "det_verifier_normalized": params.get("coords", "pixel") == "pixel",
        "det_reward_ratio": {
            "iou_max_label_first": weights["iou"],
            "iou_max_iou_first": weights["iou_first"],
            "iou_completeness": params.get("completeness", 0.3),
            "map": weights["map"],
            "map50": weights["map50"],
            "map75": weights["map75"],
        },
    }


def verl_row(row: dict[str, Any]) -> dict[str, Any]:
    """One triune row (as read from a shard) -> one Orsta/verl row."""
    reward = row["reward"]
    boxes = row["task"] in BOX_TASKS
    params = json.loads(reward["verifier_params"] or "{}")
    if boxes:
        ground_truth = _box_ground_truth(row)
        parm = _det_parm(params)
    else:
        ground_truth = f"\\boxed{{{row['ground_truth']}}}"
        parm = {"det_verifier_normalized": None, "det_reward_ratio": None}
    return {
        "data_source": row["data_source"],
        "images": row["images"],
        "prompt": [{"content": m["content"], "role": m["role"]} for m in row["prompt"]],
        "ability": ABILITY.get(row["task"], row["task"]),
        "reward_model": {
            "answer": row["answer"],
            "ground_truth": ground_truth,
            "accuracy_ratio": reward["accuracy_weight"],
            "format_ratio": reward["format_weight"],
            "verifier": "detection" if boxes else "mathverify",
            "verifier_parm": parm,
        },
        "extra_info": {
            "id": row["id"],
            "image_path": row["images"][0]["path"] if row["images"] else None,
            "split": row["split"],
            "task": row["task"],
            "sample_weight": row["sample_weight"],
            "triune_reward": json.dumps(reward, sort_keys=True),
        },
    }


def export_dataset(
    path: str | Path, out: str | Path, *, fmt: str = "verl", overwrite: bool = False
) -> list[tuple[str, int]]:
    """Export a finished dataset; returns (relative path, rows) of the files written."""
    if fmt != "verl":
        raise DatasetError(f"unknown export format {fmt!r} (known: verl)")
    root, out = Path(path), Path(out)
    manifest = read_manifest(root)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(f"{out} is not empty: pass --overwrite to replace it")
        shutil.rmtree(out)
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for f in manifest.files:
        groups[(f.split or "", f.data_source or "")].append(f.path)
    written = []
    for (split, source), files in sorted(groups.items()):
        tmp = out / split / f".{source}.parquet.tmp"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        rows, tasks = 0, set()
        with pq.ParquetWriter(tmp, VERL_SCHEMA, compression="zstd") as writer:
            for rel in files:
                for batch in pq.ParquetFile(root / rel).iter_batches(batch_size=256):
                    converted = [verl_row(r) for r in batch.to_pylist()]
                    tasks.update(r["extra_info"]["task"] for r in converted)
                    writer.write_table(pa.Table.from_pylist(converted, schema=VERL_SCHEMA))
                    rows += len(converted)
        task = tasks.pop() if len(tasks) == 1 else "mixed"
        rel = f"{split}/{split}_{task}_{source}_{rows}.parquet"
        os.replace(tmp, out / rel)
        written.append((rel, rows))
    return written
