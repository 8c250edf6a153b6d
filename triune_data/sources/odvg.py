"""`odvg`: Open-GroundingDino ODVG JSONL -> detection (od rows) and grounding (vg rows).

Each line is one image: `{"filename", "height", "width", "detection": {"instances": [{"bbox":
[x1, y1, x2, y2], "label": int, "category": str}]}}` or `{..., "grounding": {"caption",
"regions": [{"bbox", "phrase"}]}}`, boxes in pixels of the image. When an instance has no
`category`, its `label` is looked up in `label_map` (`{"0": "person", ...}`).

- od row -> one detection sample (V-Triune's multi-box prompt, pool `detection`), id
  `<filename>`, categories listed in order of first appearance;
- vg row -> one grounding sample per distinct phrase (pool `grounding`), id `<filename>-<k>`,
  holding every region of that phrase: GRIT-style rows can give one phrase several boxes, and
  asking for it with one box would mark the others wrong. The caption is not put in the prompt:
  V-Triune's grounding prompts carry the phrase alone (paper Fig. 10), and a caption naming
  other objects makes the request less clear, not more.

A row that is not an object, has no usable filename or a malformed instance/region is one reject
(`malformed_record`, `invalid_text_encoding`); a row with nothing to ask is `no_annotations`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

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
from triune_data.sources.common.fields import BadRecord, coords, image_file, text


class OdvgOptions(SourceOptions):
    path: str = Field(description="ODVG JSONL file (one image per line).")
    images: str = Field(description="Folder the `filename`s are relative to.")
    label_map: str | None = Field(
        None, description='JSON {"label id": "name"} for instances without `category`.'
    )


def _label_map(path: Path) -> dict[str, str]:
    data = read_json_file(path)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise SourceError(f"{path}: a label map is a JSON object of label id -> name")
    return data


@register_source("odvg", options=OdvgOptions, tasks=("detection", "grounding"))
def read_odvg(opts: OdvgOptions, ctx: SourceContext) -> Iterator[Draft | Reject]:
    labels = _label_map(ctx.path(opts.label_map)) if opts.label_map else {}
    root = ctx.path(opts.images)
    for lineno, row in iter_jsonl(ctx.path(opts.path), label=opts.path):
        if isinstance(row, Reject):
            yield row
            continue
        oid = f"line{lineno}"
        try:
            if not isinstance(row, dict):
                raise BadRecord("malformed_record", f"line {lineno} is a {type(row).__name__}, not an object")
            image = image_file(root, row.get("filename"), ctx=ctx)
            oid = image.name
            if isinstance(row.get("detection"), dict):
                units = [_detection(oid, row["detection"], labels)]
            elif isinstance(row.get("grounding"), dict):
                units = list(_grounding(oid, row["grounding"]))
            else:
                raise BadRecord("malformed_record", "row has neither `detection` nor `grounding`")
        except BadRecord as bad:
            yield Reject(reason=bad.reason, detail=bad.detail, id=oid, original_id=oid, file=opts.path)
            continue
        for uid, task, boxes, fields in units:
            prompt = ctx.prompt(task, uid, num_images=1, **fields)  # pools `detection`, `grounding`
            yield Draft(uid, task, prompt, "", "", [image], oid, boxes=boxes, file=opts.path)


Unit = tuple[str, str, list[DraftBox], dict[str, str]]  # id, task, boxes, prompt fields


def _items(block: dict, key: str) -> list:
    items = block.get(key)
    if not isinstance(items, list):
        raise BadRecord("malformed_record", f"`{key}` is not a list")
    if not items:
        raise BadRecord("no_annotations", f"`{key}` is empty")
    if not all(isinstance(it, dict) for it in items):
        raise BadRecord("malformed_record", f"`{key}` holds a non-object")
    return items


def _detection(oid: str, block: dict, labels: dict[str, str]) -> Unit:
    boxes: list[DraftBox] = []
    order: dict[str, int] = {}  # category names in first-seen order
    for i, inst in enumerate(_items(block, "instances")):
        name = inst.get("category")
        if name is None:
            label = inst.get("label")
            name = labels.get(str(label)) if type(label) in (int, str) else None  # not JSON true/false
            if name is None:
                raise BadRecord(
                    "malformed_record", f"instance {i}: no category and label {label!r} not in the label map"
                )
        name = " ".join(text(name, f"instance {i} category").split())
        boxes.append(DraftBox(name, *coords(inst.get("bbox"), f"instance {i} bbox")))
        order.setdefault(name, len(order))
    return oid, "detection", boxes, {"categories": "\n".join(f"- {n}" for n in order)}


def _grounding(oid: str, block: dict) -> Iterator[Unit]:
    by_phrase: dict[str, list[DraftBox]] = {}  # insertion order = first appearance
    for i, region in enumerate(_items(block, "regions")):
        phrase = " ".join(text(region.get("phrase"), f"region {i} phrase").split())
        by_phrase.setdefault(phrase, []).append(
            DraftBox(phrase, *coords(region.get("bbox"), f"region {i} bbox"))
        )
    for k, (phrase, boxes) in enumerate(by_phrase.items()):
        yield f"{oid}-{k}", "grounding", boxes, {"expression": phrase}
