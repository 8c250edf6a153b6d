"""`refcoco`: referring expressions (RefCOCO-style JSON or JSONL) -> grounding samples.

V-Triune's grounding data (D³, paper §5.1.1) pairs one phrase with its box; the public REC sets
come in a few shapes, all read here through configurable key lists:

- VLM-R1 REC JSON, a list of `{"image": "train2014/COCO_train2014_....jpg", "problem" /
  "normal_caption": expression, "solution": [x1, y1, x2, y2] pixels, "width", "height"}`;
- JSONL (or a JSON list) of refs `{"image" | "file_name", "expression" | "sentence" | "sentences":
  [...], "bbox": [x, y, w, h] or [x1, y1, x2, y2]}`, sentences as strings or refer-style
  `{"sent": ...}` objects (ScreenSpot's `img_filename` / `instruction` also fit).

One sample per (ref, expression), id `<ref id>-<k>` with k the expression's index (the ref id is
the row's `ref_id`/`id`, else `row<n>` by position). The expression is also the box's label. A
repeated expression within a ref is rejected as `duplicate_expression`: it would be a second copy
of the same sample. `bbox_format` has no default on purpose: RefCOCO's native boxes are xywh and
VLM-R1's are xyxy, and guessing wrong yields plausible but wrong boxes. `frame` declares boxes on
a 0–1000 (`norm1000`) or 0–1 (`norm1`) grid instead of pixels (e.g. VLM-R1's
`normalized_solution`); the pipeline converts them with the stored image's size (`triune_data.coords`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from triune_data.coords import Frame
from triune_data.errors import SourceError
from triune_data.sources.base import (
    Draft,
    DraftBox,
    Reject,
    SourceContext,
    SourceOptions,
    iter_jsonl,
    read_json_file,
    register_source,
)
from triune_data.sources.common.fields import BadRecord, coords, first, image_file, text
from triune_data.sources.common.ids import record_id


class RefCocoOptions(SourceOptions):
    path: str = Field(description="A JSON list of refs, or JSONL with one ref per line.")
    images: str = Field(description="Folder the image paths are relative to.")
    bbox_format: Literal["xyxy", "xywh"] = Field(
        description="Box layout (RefCOCO native: xywh; VLM-R1: xyxy)."
    )
    frame: Frame = Field(
        "pixel", description="Box units: pixel = pixels of the image, norm1000 = a 0-1000 grid, norm1 = 0-1."
    )
    format: Literal["auto", "json", "jsonl"] = Field("auto", description="auto: by suffix (.jsonl or JSON).")
    image_keys: list[str] = Field(
        ["image", "file_name", "img_filename", "image_path"],
        description="Image path keys, first present wins.",
    )
    expression_keys: list[str] = Field(
        ["expression", "sentences", "sentence", "normal_caption", "problem", "instruction"],
        description="Expression keys (a string or a list of strings / {sent} objects), first present wins.",
    )
    bbox_keys: list[str] = Field(["bbox", "solution"], description="Box keys, first present wins.")
    id_keys: list[str] = Field(["ref_id", "id"], description="Ref id keys (default id: row<n> by position).")


def rows(path: Path, fmt: str, label: str) -> Iterator[tuple[int, Any]]:
    """(1-based position, row or Reject) from a JSON list or a JSONL file."""
    if fmt == "jsonl" or (fmt == "auto" and path.suffix == ".jsonl"):
        yield from iter_jsonl(path, label=label)
        return
    data = read_json_file(path)
    if not isinstance(data, list):
        raise SourceError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    yield from enumerate(data, start=1)


@register_source("refcoco", options=RefCocoOptions, tasks=("grounding",))
def read_refcoco(opts: RefCocoOptions, ctx: SourceContext) -> Iterator[Draft | Reject]:
    root = ctx.path(opts.images)
    for n, row in rows(ctx.path(opts.path), opts.format, opts.path):
        if isinstance(row, Reject):
            yield row
            continue
        rid = f"row{n}"
        try:
            if not isinstance(row, dict):
                raise BadRecord("malformed_record", f"record is a {type(row).__name__}, not an object")
            rid = record_id(row, opts.id_keys, position=rid)
            image = image_file(root, first(row, opts.image_keys, "image"), ctx=ctx)
            box = coords(first(row, opts.bbox_keys, "bbox"), "bbox")
            exprs = first(row, opts.expression_keys, "expression")
            exprs = exprs if isinstance(exprs, list) else [exprs]
            if not exprs:
                raise BadRecord("malformed_record", "empty expression list")
        except BadRecord as bad:
            yield Reject(reason=bad.reason, detail=bad.detail, id=rid, original_id=rid, file=opts.path)
            continue
        if opts.bbox_format == "xywh":
            box[2], box[3] = box[0] + box[2], box[1] + box[3]
        seen: set[str] = set()
        for k, expr in enumerate(exprs):
            uid = f"{rid}-{k}"
            try:
                if isinstance(expr, dict):  # refer's {"sent": ..., "raw": ..., "tokens": [...]}
                    expr = expr.get("sent", expr.get("raw"))
                expr = " ".join(text(expr, "expression").split())
                if expr in seen:
                    raise BadRecord("duplicate_expression", f"{expr!r} repeated in ref {rid}")
                seen.add(expr)
            except BadRecord as bad:
                yield Reject(reason=bad.reason, detail=bad.detail, id=uid, original_id=rid, file=opts.path)
                continue
            yield Draft(
                id=uid,
                task="grounding",
                prompt=ctx.prompt("grounding", uid, num_images=1, expression=expr),
                answer="",
                ground_truth="",
                images=[image],
                original_id=rid,
                boxes=[DraftBox(expr, *box)],
                box_frame=opts.frame,
                file=opts.path,
            )
