"""Every reason a record can be rejected for, in one list, and the reject row.

A reject reason is a `RejectReason`: code writes the name itself (`BadRecord("not_counting", ...)`)
and mypy checks it against this Literal, so no module invents a reason of its own. A test checks
that the reasons the code uses are exactly those listed here, and that `docs/rejects.md` is
`markdown()` (regenerate it with ``python -m triune_data.rejects > docs/rejects.md``).
`triune inspect` describes the reasons it finds with `REJECT_REASONS`.

>>> REJECT_REASONS["duplicate_id"]
'another record of the same data_source has this id (the first one is kept)'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

RejectReason = Literal[
    # any adapter
    "malformed_record",
    "invalid_text_encoding",
    "non_finite_number",
    "missing_answer",
    "duplicate_id",
    "path_outside_root",
    # the build's checks, the same for every adapter
    "unknown_task",
    "no_image",
    "missing_image_file",
    "not_a_regular_file",
    "image_placeholder_mismatch",
    "corrupt_image",
    "truncated_image",
    "unknown_image_format",
    "image_too_large",
    "extreme_aspect_ratio",
    "exif_rotated_boxes",
    "invalid_box",
    "box_outside_image",
    "invalid_verifier_params",
    "invalid_ground_truth",
    # one adapter's rules
    "no_annotations",
    "partial_annotations",
    "crowd_region",
    "too_many_boxes",
    "box_too_large",
    "count_out_of_range",
    "not_counting",
    "low_answer_agreement",
    "answer_too_long",
    "not_english",
    "not_rule_verifiable",
    "verifier_mismatch",
    "duplicate_expression",
    "multiple_choice",
    "answer_not_in_options",
]

REJECT_REASONS: dict[RejectReason, str] = {
    "malformed_record": "the record is not what its format says (not an object, a field missing or of the wrong type)",
    "invalid_text_encoding": "a text field is not valid UTF-8 (a lone surrogate from a JSON escape, bad bytes in a parquet string)",
    "non_finite_number": "a number that stands for text (an answer, a ground truth) is NaN or infinite",
    "missing_answer": "no answer or ground truth (test splits often have none)",
    "duplicate_id": "another record of the same data_source has this id (the first one is kept)",
    "path_outside_root": "an image path leaves its images folder (`../`, an absolute path); see `images.allow_outside_root`",
    "unknown_task": "the task is none of triune's eight (orsta: map the ability with `task_map`)",
    "no_image": "the sample has no image",
    "missing_image_file": "an image file is missing or unreadable",
    "not_a_regular_file": "an image path names a directory, FIFO, device or socket, not a file",
    "image_placeholder_mismatch": "the prompt's <image> placeholders do not match the number of images",
    "corrupt_image": "the image bytes do not decode (empty, a broken header or data)",
    "truncated_image": "the image data ends before its end marker",
    "unknown_image_format": "not an image format Pillow reads, or not an accepted one",
    "image_too_large": "more bytes than `images.max_bytes`, or more pixels than `images.max_pixels` (a decompression bomb guard)",
    "extreme_aspect_ratio": "the image's sides differ by more than `images.max_aspect_ratio`",
    "exif_rotated_boxes": "boxes on an image with an EXIF rotation or flip, and `images.exif_box_frame` does not say which frame they were drawn in",
    "invalid_box": "a box with non-finite coordinates, no area or no label",
    "box_outside_image": "a box reaches outside the image by more than `images.box_tolerance_px`",
    "invalid_verifier_params": "the verifier's params model refuses the adapter's params for this record",
    "invalid_ground_truth": "the verifier cannot read the ground truth (its registered check: a math answer `\\frac{`, a count `many`, an MCQ gold that is no option, boxes for a verifier of text or text for a verifier of boxes)",
    "no_annotations": "nothing to ask about: no annotation of a prompted category, or an empty list",
    "partial_annotations": "some of the image's annotations were rejected (coco: its id spelled both as a number and as a string), so the rest would be an incomplete ground truth",
    "crowd_region": "coco: a prompted category has a crowd region, so its ground truth is incomplete",
    "too_many_boxes": "coco: more boxes of one category than `max_boxes_per_category`",
    "box_too_large": "coco: a box covers more of the image than `max_box_area_fraction`",
    "count_out_of_range": "coco counting: the count is outside [`min_count`, `max_count`]",
    "not_counting": "clevr: the answer is not a count (yes/no, colour, shape ... questions)",
    "low_answer_agreement": "ocr_vqa: the top answer has fewer votes than `min_answer_agreement`",
    "answer_too_long": "ocr_vqa: the ground truth is longer than `max_answer_chars`",
    "not_english": "ocr_vqa: `english_only` and the question or answer has non-ASCII letters",
    "not_rule_verifiable": "orsta: the reward style needs a model judge, not a rule",
    "verifier_mismatch": "orsta: the row's verifier contradicts its task",
    "duplicate_expression": "refcoco: the expression repeats within its ref (it would be the same sample)",
    "multiple_choice": "vqa: a multiple-choice row with `mcq: drop`",
    "answer_not_in_options": "vqa: the answer (or its letter) names none of the options",
}
assert tuple(REJECT_REASONS) == get_args(RejectReason), "list each reason once, in the Literal's order"


@dataclass(kw_only=True, slots=True)
class RejectRow:
    """One row of a dataset's rejects shard: which record, and why it is not a sample."""

    data_source: str
    split: str
    id: str  # `{data_source}/{the record's id, or its place in the source}`
    original_id: str
    reason: RejectReason
    detail: str
    file: str | None = None


def markdown() -> str:
    """The reasons as a Markdown table (the content of `docs/rejects.md`)."""
    lines = [
        "# Reject reasons",
        "",
        "Every record a build reads becomes a sample or a row of `rejects/` with one of these reasons",
        "(generated from `triune_data/rejects.py`; a test keeps this file current).",
        "",
        "| reason | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{reason}` | {text} |" for reason, text in REJECT_REASONS.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")


__all__ = ["REJECT_REASONS", "RejectReason", "RejectRow", "markdown"]
