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

The row is described by the dataclasses below; its Arrow schema comes from the same walker as a
sample's (`schema.record_schema`). The output directory appears whole or not at all
(`atomic.swap_dir`).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pyarrow.parquet as pq

from triune_data import atomic
from triune_data.coords import box_from_canonical
from triune_data.errors import DatasetError
from triune_data.manifest import read_manifest
from triune_data.schema import record_schema, records_to_table
from triune_data.types import BOX_TASKS, Float32, Image
from triune_data.writer import open_shard

F32 = Annotated[float, Float32]


@dataclass(slots=True)
class DetRewardRatio:
    """V-Triune's `det_reward_ratio`: the weights of its detection reward's terms."""

    iou_max_label_first: F32
    iou_max_iou_first: F32
    iou_completeness: F32
    map: F32
    map50: F32
    map75: F32


@dataclass(slots=True)
class VerifierParm:
    det_verifier_normalized: bool | None  # True: the model answers in pixels of its input
    det_reward_ratio: DetRewardRatio | None


@dataclass(slots=True)
class VerlRewardModel:
    answer: str
    ground_truth: str
    accuracy_ratio: F32
    format_ratio: F32
    verifier: str
    verifier_parm: VerifierParm


@dataclass(slots=True)
class VerlMessage:
    content: str
    role: str


@dataclass(slots=True)
class VerlExtraInfo:
    id: str
    image_path: str | None
    split: str
    task: str
    sample_weight: float
    triune_reward: str  # our reward spec, as JSON


@dataclass(slots=True)
class VerlRow:
    """One row of Orsta-Data-47k / verl's RLHFDataset."""

    data_source: str
    images: list[Image]
    prompt: list[VerlMessage]
    ability: str
    reward_model: VerlRewardModel
    extra_info: VerlExtraInfo


VERL_SCHEMA = record_schema(VerlRow)

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


def _det_parm(params: dict[str, Any]) -> VerifierParm:
    weights = {
        "iou": 1.0,
        "iou_first": 0.0,
        "map": 0.0,
        "map50": 0.0,
        "map75": 0.0,
        **params.get("weights", {}),
    }
    return VerifierParm(
        det_verifier_normalized=params.get("coords", "pixel") == "pixel",
        det_reward_ratio=DetRewardRatio(
            iou_max_label_first=weights["iou"],
            iou_max_iou_first=weights["iou_first"],
            iou_completeness=params.get("completeness", 0.3),
            map=weights["map"],
            map50=weights["map50"],
            map75=weights["map75"],
        ),
    )


def verl_row(row: dict[str, Any]) -> VerlRow:
    """One triune row (as read from a shard) -> one Orsta/verl row."""
    reward = row["reward"]
    boxes = row["task"] in BOX_TASKS
    params = json.loads(reward["verifier_params"] or "{}")
    if boxes:
        ground_truth = _box_ground_truth(row)
        parm = _det_parm(params)
    else:
        ground_truth = f"\\boxed{{{row['ground_truth']}}}"
        parm = VerifierParm(det_verifier_normalized=None, det_reward_ratio=None)
    return VerlRow(
        data_source=row["data_source"],
        images=[Image(bytes=i["bytes"], path=i["path"]) for i in row["images"]],
        prompt=[VerlMessage(content=m["content"], role=m["role"]) for m in row["prompt"]],
        ability=ABILITY.get(row["task"], row["task"]),
        reward_model=VerlRewardModel(
            answer=row["answer"],
            ground_truth=ground_truth,
            accuracy_ratio=reward["accuracy_weight"],
            format_ratio=reward["format_weight"],
            verifier="detection" if boxes else "mathverify",
            verifier_parm=parm,
        ),
        extra_info=VerlExtraInfo(
            id=row["id"],
            image_path=row["images"][0]["path"] if row["images"] else None,
            split=row["split"],
            task=row["task"],
            sample_weight=row["sample_weight"],
            triune_reward=json.dumps(reward, sort_keys=True),
        ),
    )


def export_dataset(
    path: str | Path, out: str | Path, *, fmt: str = "verl", overwrite: bool = False
) -> list[tuple[str, int]]:
    """Export a finished dataset; returns (relative path, rows) of the files written."""
    if fmt != "verl":
        raise DatasetError(f"unknown export format {fmt!r} (known: verl)")
    root, out = Path(path), Path(out)
    manifest = read_manifest(root)
    atomic.check_writable(out, directory=True)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DatasetError(f"{out} is not empty: pass --overwrite to replace it")
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for f in manifest.files:
        groups[(f.split or "", f.data_source or "")].append(f.path)

    def produce(tmp: Path) -> list[tuple[str, int]]:
        written = []
        for (split, source), files in sorted(groups.items()):
            part = tmp / split / f".{source}.parquet.part"
            part.parent.mkdir(parents=True, exist_ok=True)
            rows, tasks = 0, set[str]()
            with pq.ParquetWriter(part, VERL_SCHEMA, compression="zstd") as writer:
                for rel in files:
                    for batch in open_shard(root / rel).iter_batches(batch_size=256):
                        converted = [verl_row(r) for r in batch.to_pylist()]
                        tasks.update(r.extra_info.task for r in converted)
                        writer.write_table(records_to_table(converted, VerlRow, VERL_SCHEMA))
                        rows += len(converted)
            task = tasks.pop() if len(tasks) == 1 else "mixed"
            name = f"{split}/{split}_{task}_{source}_{rows}.parquet"
            os.replace(part, tmp / name)  # inside the new directory: not visible until the swap
            written.append((name, rows))
        return written

    return atomic.swap_dir(out, produce)
