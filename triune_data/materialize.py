"""Draft -> Sample: load images, bring boxes to the canonical frame, validate. Runs in workers.

Every check that fails gives a `Reject` with a named reason; nothing here raises for bad rows.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from triune_data.coords import Frame, box_to_canonical, orient_box
from triune_data.errors import RecipeError, VerifierError
from triune_data.files import FileTooLarge, NotRegularFile
from triune_data.images import ImageInfo, ImagePolicy, ImageProblem, probe
from triune_data.rejects import RejectReason
from triune_data.sources.base import (
    Draft,
    DraftBox,
    ImageFile,
    ImageSource,
    Reject,
)
from triune_data.sources.common.fields import shard_path
from triune_data.tasks import TASK_DEFAULTS
from triune_data.types import (
    BOX_TASKS,
    IMAGE_PLACEHOLDER,
    TASK_CATEGORY,
    Box,
    Image,
    ImageSize,
    Provenance,
    RewardSpec,
    Sample,
)
from triune_data.verifiers.base import check_ground_truth, get_verifier, params_json


@dataclass(frozen=True)
class SourceRun:
    """Per-source settings the recipe adds to every draft (picklable, sent to workers)."""

    adapter: str
    data_source: str
    split: str
    sample_weight: float = 1.0
    license: str | None = None
    revision: str | None = None
    verifier: str | None = None
    params: tuple[tuple[str, Any], ...] = ()  # recipe-level verifier params (win over the adapter's)
    accuracy_weight: float | None = None
    format_weight: float | None = None
    entry_index: int = 0  # position in the recipe's `sources`, for error messages


@dataclass(frozen=True)
class MaterializeOptions:
    images: ImagePolicy = field(default_factory=ImagePolicy)
    box_tolerance_px: float = 2.0
    full_ground_truth_check: bool = False  # the recipe's `check_ground_truth: full`

    # Boxes on an image with an EXIF orientation other than 1: drawn on the image as shown, on its
    # stored pixels, or unknown (reject). See docs/decisions.md.
    exif_box_frame: Literal["reject", "displayed", "stored"] = "reject"


class _Rejected(Exception):
    def __init__(self, reason: RejectReason, detail: str):
        self.reason, self.detail = reason, detail


def _reject(draft: Draft, reason: RejectReason, detail: str) -> Reject:
    return Reject(reason=reason, detail=detail, id=draft.id, original_id=draft.original_id, file=draft.file)


def _canonical_box(b: DraftBox, frame: Frame, info: ImageInfo, tol: float, *, stored: bool) -> Box:
    """The box in the canonical frame (pixels of the image as shown); `stored`: it was drawn on
    the stored pixels of an image with an EXIF orientation."""
    x1, y1, x2, y2 = b.x1, b.y1, b.x2, b.y2
    try:
        finite = math.isfinite(x1 + y1 + x2 + y2)  # NaN or inf anywhere makes the sum non-finite
    except TypeError:
        finite = False
    if not finite:
        raise _Rejected("invalid_box", f"non-finite coordinates {[x1, y1, x2, y2]!r} for {b.label!r}")
    width, height = info.width, info.height
    if stored and info.orientation != 1:
        box = box_to_canonical((x1, y1, x2, y2), frame, image_size=info.stored_size)
        x1, y1, x2, y2 = orient_box(box, info.orientation, stored_size=info.stored_size)
    elif frame == "pixel":  # already the canonical frame (COCO, ODVG, RefCOCO): no conversion
        x1, y1, x2, y2 = float(x1), float(y1), float(x2), float(y2)
    else:
        x1, y1, x2, y2 = box_to_canonical((x1, y1, x2, y2), frame, image_size=(width, height))
    if not (x2 > x1 and y2 > y1):
        raise _Rejected("invalid_box", f"box {[b.x1, b.y1, b.x2, b.y2]!r} for {b.label!r} has no area")
    if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
        raise _Rejected("box_outside_image", f"box {[x1, y1, x2, y2]!r} outside {width}x{height}")
    if not b.label.strip():
        raise _Rejected("invalid_box", "box without a label")
    # Clamped to the image, as max(x1, 0.0) and min(x2, width) would (without their argument parsing).
    return Box(
        b.label,
        0.0 if x1 < 0.0 else float(x1),
        0.0 if y1 < 0.0 else float(y1),
        float(width) if width < x2 else float(x2),
        float(height) if height < y2 else float(y2),
    )


def boxes_answer(boxes: list[Box]) -> str:
    """Qwen-style answer text for boxes in the canonical frame (what an SFT target would be):
    a whole coordinate as an integer, any other rounded to two decimals."""
    items = [
        {
            "bbox_2d": [int(v) if v.is_integer() else round(v, 2) for v in (b.x1, b.y1, b.x2, b.y2)],
            "label": b.label,
        }
        for b in boxes
    ]
    return orjson.dumps(items).decode()


def _check_text(draft: Draft) -> None:
    texts = [draft.id, draft.answer, draft.ground_truth, draft.original_id, *(b.label for b in draft.boxes)]
    texts += [m.content for m in draft.prompt]
    for t in texts:
        if not isinstance(t, str):
            raise _Rejected("invalid_text_encoding", f"expected text, got {type(t).__name__}")
        if t.isascii():  # O(1) in CPython, and ASCII always encodes: skip building the bytes
            continue
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            raise _Rejected("invalid_text_encoding", f"text is not valid UTF-8: {t[:40]!r}") from None


def _params_json(verifier: str, params: dict[str, Any]) -> str:
    # Most rows of a source share their params: skip the JSON round trip for the empty case.
    return _empty_params_json(verifier) if not params else params_json(verifier, params)


@functools.cache
def _empty_params_json(verifier: str) -> str:
    return params_json(verifier, {})


def _reward_spec(draft: Draft, run: SourceRun) -> RewardSpec:
    defaults = TASK_DEFAULTS[draft.task]
    verifier = run.verifier or draft.verifier or defaults.verifier
    merged = {**draft.verifier_params, **dict(run.params)}
    try:
        text = _params_json(verifier, merged)
    except VerifierError as exc:
        # If the adapter's own params pass, the recipe's override is what is wrong: stop the build.
        if run.params:
            try:
                params_json(verifier, draft.verifier_params)
            except VerifierError:
                pass
            else:
                raise RecipeError(f"sources[{run.entry_index}].reward.params: {exc}") from None
        raise _Rejected("invalid_verifier_params", str(exc)) from None
    acc = run.accuracy_weight if run.accuracy_weight is not None else draft.accuracy_weight
    fmt = run.format_weight if run.format_weight is not None else draft.format_weight
    return RewardSpec(
        verifier=verifier,
        verifier_params=text,
        accuracy_weight=float(defaults.accuracy_weight if acc is None else acc),
        format_weight=float(defaults.format_weight if fmt is None else fmt),
    )


def _check_ground_truth(
    task: str, reward: RewardSpec, ground_truth: str, boxes: list[Box], *, full: bool
) -> None:
    """Reject the sample when its verifier cannot read its ground truth (`check_ground_truth`):
    a verifier of boxes needs a box task's boxes, a verifier of text a text answer, and the
    verifier's own check must pass. A verifier that reads no ground truth (`format`) takes any."""
    spec = get_verifier(reward.verifier)
    if spec.check_ground_truth is None:
        return
    if spec.boxes != (task in BOX_TASKS):
        wants, has = ("boxes", "none") if spec.boxes else ("a text answer", "boxes")
        raise _Rejected(
            "invalid_ground_truth",
            f"{spec.name} reads {wants}; the ground truth of this {task} sample is {has}",
        )
    try:
        check_ground_truth(
            spec.name, boxes if spec.boxes else ground_truth, reward.verifier_params, full=full
        )
    except VerifierError as exc:
        raise _Rejected("invalid_ground_truth", str(exc)) from None


def _load(src: ImageSource, max_bytes: int) -> bytes:
    """The image's bytes, or a reject naming the file as the recipe does (the same bytes whatever
    the current directory)."""
    try:
        return src.load(max_bytes)
    except OSError as exc:
        shown = src.shown() if isinstance(src, ImageFile) else (src.name or "image")
        if isinstance(exc, FileNotFoundError):
            raise _Rejected("missing_image_file", f"{shown}: no such file") from None
        if isinstance(exc, NotRegularFile):
            raise _Rejected("not_a_regular_file", f"{shown}: {exc.strerror}") from None
        if isinstance(exc, FileTooLarge):
            raise _Rejected("image_too_large", f"{shown}: {exc.strerror} (images.max_bytes)") from None
        raise _Rejected("missing_image_file", f"{shown}: cannot read ({exc.strerror or exc})") from None


def materialize(draft: Draft, run: SourceRun, opts: MaterializeOptions) -> Sample | Reject:
    """Turn a draft into a validated sample, or a reject with a reason."""
    try:
        if draft.task not in TASK_CATEGORY:
            raise _Rejected("unknown_task", f"task {draft.task!r}")
        _check_text(draft)
        if not draft.images:
            raise _Rejected("no_image", "sample has no image")
        placeholders = sum(m.content.count(IMAGE_PLACEHOLDER) for m in draft.prompt)
        if placeholders != len(draft.images):
            raise _Rejected(
                "image_placeholder_mismatch",
                f"{placeholders} {IMAGE_PLACEHOLDER} placeholders for {len(draft.images)} images",
            )
        images, infos = [], []
        for src in draft.images:
            data = _load(src, opts.images.max_bytes)
            try:
                info = probe(data, opts.images)
            except ImageProblem as exc:
                raise _Rejected(exc.reason, exc.detail) from None
            images.append(Image(bytes=data, path=shard_path(src.name)))
            infos.append(info)
        sizes = [ImageSize(width=i.width, height=i.height) for i in infos]
        if draft.boxes and infos[0].orientation != 1 and opts.exif_box_frame == "reject":
            i = infos[0]
            raise _Rejected(
                "exif_rotated_boxes",
                f"EXIF orientation {i.orientation}: stored {i.stored_size[0]}x{i.stored_size[1]}, shown "
                f"{i.width}x{i.height}; set images.exif_box_frame to the frame the boxes were drawn in",
            )
        stored = opts.exif_box_frame == "stored"
        tol = opts.box_tolerance_px
        boxes = [_canonical_box(b, draft.box_frame, infos[0], tol, stored=stored) for b in draft.boxes]
        answer, ground_truth = draft.answer, draft.ground_truth
        if draft.task in BOX_TASKS:
            if not boxes:
                raise _Rejected("missing_answer", "no boxes")
            ground_truth = boxes_answer(boxes)
            answer = answer or ground_truth
        elif not ground_truth.strip():
            raise _Rejected("missing_answer", "empty ground truth")
        reward = _reward_spec(draft, run)
        _check_ground_truth(draft.task, reward, ground_truth, boxes, full=opts.full_ground_truth_check)
    except _Rejected as r:
        return _reject(draft, r.reason, r.detail)
    return Sample(
        id=f"{run.data_source}/{draft.id}",
        data_source=run.data_source,
        task=draft.task,  # type: ignore[arg-type]
        category=TASK_CATEGORY[draft.task],
        split=run.split,
        images=images,
        image_sizes=sizes,
        prompt=draft.prompt,
        answer=answer,
        ground_truth=ground_truth,
        boxes=boxes,
        reward=reward,
        sample_weight=run.sample_weight,
        difficulty=None,
        provenance=Provenance(
            source=run.adapter,
            original_id=draft.original_id,
            license=run.license,
            revision=run.revision,
            file=draft.file,
        ),
    )
