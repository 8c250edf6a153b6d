"""`--format verl`: verl's RLHFDataset rows, in the Orsta-Data-47k layout (V-Triune, paper §4.1).

A row is what verl's `RLHFDataset` reads (`data_source`, chat `prompt` with `<image>` placeholders,
`images` as `{bytes, path}`, `ability`, `reward_model`, `extra_info`) with V-Triune's reward fields
in `reward_model`, so V-Triune's reward server and ROLL read it too:

- reasoning, counting, OCR and MCQ rows -> verifier `mathverify`, ground truth `\\boxed{answer}`;
- detection and grounding -> `detection`, ground truth `<answer>\\n[{'bbox_2d': ...}]\\n</answer>`
  in 0-1000 coordinates (`common.box_ground_truth`: floats, or V-Triune's integers).

V-Triune's server knows two verifiers, so `reward_model` loses what it cannot express; triune's
own reward function (`triune_train.integrations.verl`) reads `extra_info.triune_reward` instead,
which loses nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from triune_data.export.common import BoxNumbers, ExtraInfo, box_ground_truth, extra_info
from triune_data.types import BOX_TASKS, Float32, Image, Sample

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
    style: str  # verl: "rule" (a rule-based reward, not a reward model)
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
class VerlRow:
    """One row of verl's RLHFDataset / Orsta-Data-47k."""

    data_source: str
    images: list[Image]
    prompt: list[VerlMessage]
    ability: str
    reward_model: VerlRewardModel
    extra_info: ExtraInfo


ABILITY = {"detection": "cv_detection", "grounding": "cv_detection"}


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


def verl_row(sample: Sample, index: int, *, box_numbers: BoxNumbers = "float") -> VerlRow:
    """One triune sample -> one verl / Orsta row; `index` is its position in the split's file."""
    reward = sample.reward
    boxes = sample.task in BOX_TASKS
    if boxes:
        ground_truth = box_ground_truth(sample, box_numbers)
        parm = _det_parm(json.loads(reward.verifier_params or "{}"))
    else:
        ground_truth = f"\\boxed{{{sample.ground_truth}}}"
        parm = VerifierParm(det_verifier_normalized=None, det_reward_ratio=None)
    return VerlRow(
        data_source=sample.data_source,
        images=[Image(bytes=i.bytes, path=i.path) for i in sample.images],
        prompt=[VerlMessage(content=m.content, role=m.role) for m in sample.prompt],
        ability=ABILITY.get(sample.task, sample.task),
        reward_model=VerlRewardModel(
            style="rule",
            answer=sample.answer,
            ground_truth=ground_truth,
            accuracy_ratio=reward.accuracy_weight,
            format_ratio=reward.format_weight,
            verifier="detection" if boxes else "mathverify",
            verifier_parm=parm,
        ),
        extra_info=extra_info(sample, index),
    )
