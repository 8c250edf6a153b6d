"""What every export format shares: `extra_info`, the box ground truth string, the reward spec.

`extra_info` is the same struct in every format. Frameworks hand it (verl) or nothing but one
column (EasyR1) to a reward function, so it carries what scoring needs and they do not pass:

- `index`        the row's position in its split's file (verl reads it as the sample index);
- `image_size`   [width, height] of every image, to compute the size the model saw;
- `triune_reward` the sample's reward spec (`verifiers.common.wire.reward_spec`) as JSON: verifier,
                 params, weights, exact ground truth (boxes in stored-image pixels), image size,
                 data_source, id and split;
- `answer`       the native answer; plus id, split, task, image_path and sample_weight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Literal, TypeAlias

from triune_data.coords import box_from_canonical
from triune_data.types import Int32, Sample
from triune_data.verifiers.common.wire import reward_spec

BoxNumbers: TypeAlias = Literal["float", "int"]
BOX_NUMBERS: tuple[BoxNumbers, ...] = ("float", "int")
FLOAT_DECIMALS = 3  # 0.001 of a 0-1000 unit: far below any IoU threshold's resolution

I32 = Annotated[int, Int32]


@dataclass(slots=True)
class ExtraInfo:
    index: int
    id: str
    split: str
    task: str
    answer: str
    image_path: str | None
    image_size: list[list[I32]]  # [width, height] of every image
    sample_weight: float
    triune_reward: str  # the reward spec, JSON


def extra_info(sample: Sample, index: int) -> ExtraInfo:
    return ExtraInfo(
        index=index,
        id=sample.id,
        split=sample.split,
        task=sample.task,
        answer=sample.answer,
        image_path=sample.images[0].path if sample.images else None,
        image_size=[[z.width, z.height] for z in sample.image_sizes],
        sample_weight=sample.sample_weight,
        triune_reward=reward_spec_json(sample),
    )


def reward_spec_json(sample: Sample) -> str:
    return json.dumps(reward_spec(sample), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _number(v: float, numbers: BoxNumbers) -> str:
    return str(round(v)) if numbers == "int" else repr(round(v, FLOAT_DECIMALS) + 0.0)


def box_ground_truth(sample: Sample, numbers: BoxNumbers = "float") -> str:
    """V-Triune's detection ground truth: ``<answer>\\n[{'bbox_2d': [x1, y1, x2, y2], 'label': ...}]\\n</answer>``
    in 0-1000 coordinates of the first image: floats to 3 decimals, or V-Triune's integers (rounded;
    V-Triune truncated, rounding halves the error, and either costs an exact answer reward at τ = 0.99).

    >>> from triune_data.types import Box, ImageSize, Provenance, RewardSpec
    >>> s = Sample("a", "s", "grounding", "perception", "train", [], [ImageSize(640, 480)], [], "", "",
    ...            [Box("dog", 1.0, 2.0, 321.0, 479.0)], RewardSpec("grounding", "{}", 1.0, 0.0), 1.0, None,
    ...            Provenance("x", "a"))
    >>> box_ground_truth(s)
    "<answer>\\n[{'bbox_2d': [1.562, 4.167, 501.562, 997.917], 'label': 'dog'}]\\n</answer>"
    >>> box_ground_truth(s, "int")
    "<answer>\\n[{'bbox_2d': [2, 4, 502, 998], 'label': 'dog'}]\\n</answer>"
    """
    size = sample.image_sizes[0]
    items = []
    for b in sample.boxes:
        box = box_from_canonical((b.x1, b.y1, b.x2, b.y2), "norm1000", image_size=(size.width, size.height))
        coords = ", ".join(_number(v, numbers) for v in box)
        items.append(f"{{'bbox_2d': [{coords}], 'label': {b.label!r}}}")
    return "<answer>\n[" + ", ".join(items) + "]\n</answer>"


__all__ = [
    "BOX_NUMBERS",
    "BoxNumbers",
    "ExtraInfo",
    "box_ground_truth",
    "extra_info",
    "reward_spec_json",
]
