"""`--format easyr1`: rows EasyR1's `RLHFDataset` reads with its default keys.

EasyR1 reads `prompt` as ONE string (it splits it on `<image>` into image and text parts of a
single user turn), `answer` as a top-level string, and `images` as `{bytes}` dicts, paths or PIL
images. Its reward function receives only `{response, response_length, ground_truth}`, where
`ground_truth` is the column named by `data.answer_key`; so `triune_reward` carries the whole
reward spec as a top-level string, and `data.answer_key=triune_reward` hands it to triune's reward
function (`triune_train.integrations.easyr1`). `answer` stays the native answer for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from triune_data.errors import DatasetError
from triune_data.export.common import ExtraInfo, extra_info
from triune_data.types import Image, Sample


@dataclass(slots=True)
class EasyR1Row:
    prompt: str  # the user turn, `<image>` where each image goes
    answer: str
    images: list[Image]
    data_source: str
    triune_reward: str  # the reward spec, JSON (EasyR1: data.answer_key=triune_reward)
    extra_info: ExtraInfo


def easyr1_row(sample: Sample, index: int) -> EasyR1Row:
    """One triune sample -> one EasyR1 row; DatasetError for a prompt that is not one user turn."""
    if len(sample.prompt) != 1 or sample.prompt[0].role != "user":
        roles = [m.role for m in sample.prompt]
        raise DatasetError(
            f"{sample.id}: EasyR1 reads a prompt as one user turn, this one has {roles}; "
            "put instructions in EasyR1's data.format_prompt instead"
        )
    info = extra_info(sample, index)
    return EasyR1Row(
        prompt=sample.prompt[0].content,
        answer=sample.answer,
        images=[Image(bytes=i.bytes, path=i.path) for i in sample.images],
        data_source=sample.data_source,
        triune_reward=info.triune_reward,
        extra_info=info,
    )
