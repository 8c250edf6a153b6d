"""`coco`: COCO instances JSON + an image folder -> detection or counting samples.

V-Triune's detection data has two prompt shapes (paper §5.1.1.1, Fig. 10): *multi-box* samples keep
the original annotations and list every category of the image; *single-box* samples ask for one
category. "Keep one box per category" is read as one *category* per sample with all its boxes:
keeping one instance while the prompt asks for all of them would punish correct detections.

Units, each ending as one Draft or one Reject: detection `prompt: multi` -> one per image (id
`<image_id>`); `single` -> one per (image, category present) (id `<image_id>-<category_id>`);
`both` -> both; counting -> one per (image, category present) (id `<image_id>-<category_id>-count`,
answer = number of instances, pool `counting_object`). An unusable image (duplicate id, malformed
entry or annotation, non-UTF-8 text, nothing left to ask) is one reject; so is each annotation
whose image id is not in `images`. COCO joins annotations to images by id, exactly: an annotation
whose `image_id` spells an image's id another way (``"2299"``, ``2299.0`` for the image ``2299``)
joins nothing and is rejected, and so is that image (`partial_annotations`), which would
otherwise be kept with only part of its boxes.

Crowd regions (`iscrowd: 1`) hide unannotated instances, so their category's ground truth is
incomplete (COCO's evaluation ignores detections inside them; box verifiers cannot): `crowd:
reject` (default) rejects units prompting such a category (`crowd_region`), `ignore` drops the
crowd boxes. V-Triune's rule filters (>10 boxes per category, a box >50% of the image) are opt-in
options, so the adapter stays a faithful converter; the area check uses the JSON's width/height,
every other box check runs in the pipeline against the stored image's header.
"""

from __future__ import annotations

import math
import re
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from triune_data.errors import RecipeError, SourceError
from triune_data.sources.base import (
    Draft,
    DraftBox,
    Reject,
    SourceContext,
    SourceOptions,
    nonempty,
    read_json_file,
    register_source,
    stream_json_items,
    streams,
)
from triune_data.sources.common.fields import BadRecord, coords, image_file, number, text
from triune_data.sources.common.ids import is_own_id


def _key(value: Any) -> int | str | None:
    """An id as COCO joins on it (its own type kept), or None when it is no id (`own_id`'s rule)."""
    return value if is_own_id(value) else None


_INTEGER = re.compile(r"\s*[-+]?\d+\s*")


def _spelling(value: Any) -> str | None:
    """The integer or text an id reads as: 2299, "2299", " 2299 " and 2299.0 all read "2299"."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is str and _INTEGER.fullmatch(value):
        value = int(value)
    if type(value) is int:
        return str(value)
    if type(value) is str and value.strip():
        return value.strip()
    return None


def _other_spellings(iid: int | str) -> list[int | str]:
    """The index keys other than `iid` that read as `iid` (`_spelling`)."""
    text = _spelling(iid)
    keys: list[int | str] = [] if text is None else [text]
    if text is not None and _INTEGER.fullmatch(text):
        keys.append(int(text))
    if isinstance(iid, str) and iid.strip() != iid:
        keys.append(iid.strip())
    return [k for k in dict.fromkeys(keys) if not (k == iid and type(k) is type(iid))]


class CocoOptions(SourceOptions):
    annotations: str = Field(description="COCO instances JSON (images, annotations, categories).")
    images: str = Field(description="Folder the images' `file_name`s are relative to.")
    mode: Literal["detection", "counting"] = Field("detection", description="Task to build.")
    prompt: Literal["multi", "single", "both"] = Field(
        "multi",
        description="Detection: multi = all categories of an image per sample; single = one category; both.",
    )
    crowd: Literal["reject", "ignore"] = Field(
        "reject",
        description="reject: units prompting a category with a crowd region; ignore: drop crowd boxes.",
    )
    categories: list[str] | None = Field(None, description="Keep only these category names (default: all).")
    max_boxes_per_category: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Detection: reject units with more boxes of one category (V-Triune: 10)."
    )
    max_box_area_fraction: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None,
        description="Detection: reject units with a box over this fraction of the image (V-Triune: 0.5).",
    )
    min_count: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Counting: reject smaller counts."
    )
    max_count: Annotated[int, Field(ge=0)] | None = Field(None, description="Counting: reject larger counts.")


@register_source("coco", options=CocoOptions, tasks=("detection", "counting"))
def read_coco(opts: CocoOptions, ctx: SourceContext) -> Iterator[Draft | Reject]:
    counting = opts.mode == "counting"
    if counting and {"prompt", "max_boxes_per_category", "max_box_area_fraction"} & opts.model_fields_set:
        raise RecipeError(
            f"{ctx.data_source}: prompt, max_boxes_per_category, max_box_area_fraction: detection only"
        )
    if not counting and (opts.min_count is not None or opts.max_count is not None):
        raise RecipeError(f"{ctx.data_source}: min_count, max_count: mode counting only")
    path = ctx.path(opts.annotations)
    categories, annotations, images = _open(path)
    names = _category_names(categories, path)
    wanted = set(names)
    if opts.categories is not None:
        missing = set(opts.categories) - set(names.values())
        if missing:
            raise SourceError(f"{path}: no categories named {sorted(missing)}")
        wanted = {cid for cid, n in names.items() if n in set(opts.categories)}
    coco = _Coco(opts, ctx, names, wanted)

    # Index annotations by image once: O(images + annotations); it lives for the whole build.
    index = _AnnotationIndex()
    unkeyed: list[tuple[int, Any]] = []  # (annotation index, annotation) without a usable image id
    for i, ann in enumerate(annotations):
        iid = _key(ann.get("image_id")) if isinstance(ann, dict) else None
        if iid is None:
            unkeyed.append((i, ann))
        else:
            index.add(iid, (ann.get("id"), ann.get("category_id"), ann.get("bbox"), ann.get("iscrowd"), i))
    del annotations
    # Annotations whose image id only another spelling of it matches (a float 2299.0): see `partial`.
    unkeyed_spellings = Counter(_spelling(ann.get("image_id")) for _, ann in unkeyed if isinstance(ann, dict))

    def partial(iid: int | str) -> BadRecord | None:
        if type(iid) is int and not index.text_keys and not unkeyed_spellings:
            return None  # the other spellings of an integer id are text: the index holds none
        strays = {repr(k): len(index.get(k)) for k in _other_spellings(iid) if index.get(k)}
        if unkeyed_spellings[_spelling(iid)]:
            strays["a float"] = unkeyed_spellings[_spelling(iid)]
        if not strays:
            return None
        spelled = ", ".join(f"{n} as {k}" for k, n in strays.items())
        return BadRecord(
            "partial_annotations",
            f"image {iid!r}: annotations give its id another way ({spelled}) and were rejected; "
            "the rest would be an incomplete ground truth",
        )

    seen: set[int | str] = set()
    for i, im in enumerate(images):
        iid = _key(im.get("id")) if isinstance(im, dict) else None
        oid = f"images[{i}]" if iid is None else str(iid)
        try:
            if iid is None:
                raise BadRecord("malformed_record", f"images[{i}] has no usable id")
            if iid in seen:
                raise BadRecord("duplicate_id", f"image id {iid!r} listed twice in `images`")
            seen.add(iid)
            problem = partial(iid)
            if problem is not None:
                raise problem
            units = coco.units(iid, im, index.get(iid))
        except BadRecord as bad:
            yield Reject(reason=bad.reason, detail=bad.detail, id=oid, original_id=oid, file=coco.file)
            continue
        yield from units
    # Annotations of images not listed, in file order: one reject each.
    orphans = [(a[4], {"id": a[0], "image_id": iid}) for iid in index.ids() - seen for a in index.get(iid)]
    for i, ann in sorted([*unkeyed, *orphans], key=lambda t: t[0]):
        ann = ann if isinstance(ann, dict) else {}
        aid = ann.get("id", i)
        detail = f"annotation {aid}: image_id {ann.get('image_id')!r} is not in `images`"
        oid = f"annotation {aid}"
        yield Reject(reason="malformed_record", detail=detail, id=oid, original_id=oid, file=coco.file)


def _open(path: Path) -> tuple[list, Iterable[Any], Iterable[Any]]:
    """(categories, annotations, images) of a COCO instances file.

    Small files are parsed whole (orjson: fastest). Large ones (`streams`; COCO train2017's is
    448 MB) are read in passes of `stream_json_items`, so a worker holds the annotation index, not
    the document: memory stays flat as the source grows.
    """
    if not streams(path):
        data = read_json_file(path)
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in _TABLES):
            raise SourceError(
                f"{path}: not a COCO instances file (lists `images`, `annotations`, `categories`)"
            )
        return data["categories"], data["annotations"], data["images"]
    # The categories pass reads the whole file, so a syntax error surfaces before any record.
    categories = next(stream_json_items(path, "categories"), None)
    if not isinstance(categories, list):
        raise SourceError(f"{path}: not a COCO instances file (no `categories` list)")
    images = stream_json_items(path, "images.item")
    no_images = f"{path}: not a COCO instances file (no `images` list)"
    return categories, stream_json_items(path, "annotations.item"), nonempty(images, no_images)


_TABLES = ("images", "annotations", "categories")
_Ann = tuple[Any, Any, Any, Any, int]  # (id, category_id, bbox, iscrowd, index) of one annotation
_PACKED = struct.Struct("<qqdddd?q")  # the same, for integer ids, four numbers and iscrowd 0/1/absent
_INT64 = range(-(2**63), 2**63)
_FLOATABLE = frozenset({int, float})  # exact types, as `coords` reads them (a bool is no number)


class _AnnotationIndex:
    """Annotations by image id, in file order, at ~60 bytes each instead of ~300.

    COCO train2017 has 860k annotations and every build producer keeps the index: a usual
    annotation is packed into its image's bytearray; an image with any other (a malformed one,
    which must reach `units` as it was, to be reported) keeps plain tuples.
    """

    def __init__(self) -> None:
        self._by_image: dict[int | str, bytearray | list[_Ann]] = {}
        self.text_keys = False  # does any image id come as text?

    def add(self, iid: int | str, ann: _Ann) -> None:
        entry = self._by_image.get(iid)
        if entry is None and type(iid) is not int:
            self.text_keys = True
        packed = _pack(ann) if entry is None or type(entry) is bytearray else None
        if packed is not None:
            if entry is None:
                entry = self._by_image[iid] = bytearray()
            entry += packed  # type: ignore[operator]
        else:
            anns = self.get(iid)
            anns.append(ann)
            self._by_image[iid] = anns

    def get(self, iid: int | str) -> list[_Ann]:
        entry = self._by_image.get(iid)
        if entry is None:
            return []
        if isinstance(entry, list):
            return entry
        return [(a, c, [x, y, w, h], crowd, i) for a, c, x, y, w, h, crowd, i in _PACKED.iter_unpack(entry)]

    def ids(self) -> set[int | str]:
        return set(self._by_image)


def _pack(ann: _Ann) -> bytes | None:
    """The packed annotation, or None when packing would change what `units` sees."""
    aid, cid, bbox, crowd, i = ann
    if not (type(aid) is int and type(cid) is int and aid in _INT64 and cid in _INT64):
        return None
    if type(bbox) is not list or len(bbox) != 4 or not _FLOATABLE.issuperset(map(type, bbox)):
        return None
    if not (crowd is None or (type(crowd) is int and crowd in (0, 1))):
        return None
    try:  # `units` reads the box through `coords`, which takes float() of each number too
        return _PACKED.pack(aid, cid, *bbox, bool(crowd), i)
    except (OverflowError, struct.error):
        return None


def _category_names(categories: list, path: Path) -> dict[int | str, str | BadRecord]:
    """Category id -> name in file order (a BadRecord where the name is unusable)."""
    names: dict[int | str, str | BadRecord] = {}
    for i, c in enumerate(categories):
        cid = _key(c.get("id")) if isinstance(c, dict) else None
        if cid is None or cid in names:
            raise SourceError(f"{path}: categories[{i}] has a missing or repeated id")
        try:
            names[cid] = text(c.get("name"), f"category {cid} name")
        except BadRecord as bad:
            names[cid] = bad
    return names


class _Coco:
    """Turns one image entry and its annotations into units (see the module docstring)."""

    def __init__(
        self, opts: CocoOptions, ctx: SourceContext, names: dict[int | str, str | BadRecord], wanted: set
    ):
        self.opts, self.ctx, self.names, self.wanted = opts, ctx, names, wanted
        self.order = {cid: i for i, cid in enumerate(names)}  # prompts list categories in file order
        self.root, self.file = ctx.path(opts.images), opts.annotations

    def units(self, iid: int | str, im: dict, anns: list[_Ann]) -> list[Draft | Reject]:
        opts, names = self.opts, self.names
        image = image_file(self.root, im.get("file_name"), ctx=self.ctx)
        boxes: dict[int | str, list[DraftBox]] = {}  # prompted category id -> its boxes
        crowded: set[int | str] = set()
        for aid, category_id, bbox, iscrowd, _ in anns:
            cid = _key(category_id)
            if cid not in names:
                raise BadRecord(
                    "malformed_record",
                    f"annotation {aid}: unknown category_id {category_id!r}",
                )
            x, y, w, h = coords(bbox, f"annotation {aid} bbox")
            name = names[cid]
            if cid not in self.wanted:
                continue
            if isinstance(name, BadRecord):
                raise name
            if iscrowd:
                if opts.crowd == "reject":
                    crowded.add(cid)
                    boxes.setdefault(cid, [])
                continue
            boxes.setdefault(cid, []).append(DraftBox(name, x, y, x + w, y + h))
        cats = sorted(boxes, key=self.order.__getitem__)
        if not cats:
            raise BadRecord("no_annotations", f"image {iid!r} has no annotation of a prompted category")
        area = _image_area(im) if opts.max_box_area_fraction else 0.0

        def unit(uid: str, cs: list[int | str], pool: str, **fields: Any) -> Draft | Reject:
            problem = self.problem(cs, boxes, crowded, area)
            if problem:
                return Reject(
                    reason=problem.reason, detail=problem.detail, id=uid, original_id=str(iid), file=self.file
                )
            prompt = self.ctx.prompt(pool, uid, num_images=1, **fields)
            if opts.mode == "counting":
                n = str(len(boxes[cs[0]]))
                return Draft(uid, "counting", prompt, n, n, [image], str(iid), file=self.file)
            found = [b for c in cs for b in boxes[c]]
            return Draft(uid, "detection", prompt, "", "", [image], str(iid), boxes=found, file=self.file)

        if opts.mode == "counting":
            return [unit(f"{iid}-{c}-count", [c], "counting_object", category=names[c]) for c in cats]
        out = []
        if opts.prompt in ("multi", "both"):
            out.append(unit(f"{iid}", cats, "detection", categories="\n".join(f"- {names[c]}" for c in cats)))
        if opts.prompt in ("single", "both"):
            out += [unit(f"{iid}-{c}", [c], "detection_single", category=names[c]) for c in cats]
        return out

    def problem(self, cats: list, boxes: dict, crowded: set, area: float) -> BadRecord | None:
        """Why the unit over `cats` is rejected, or None."""
        opts = self.opts
        lo, hi = opts.min_count or 0, math.inf if opts.max_count is None else opts.max_count
        for c in cats:
            n, name = len(boxes[c]), self.names[c]
            if c in crowded:
                return BadRecord("crowd_region", f"{name!r} has a crowd region")
            if opts.max_boxes_per_category and n > opts.max_boxes_per_category:
                return BadRecord("too_many_boxes", f"{n} boxes of {name!r} > {opts.max_boxes_per_category}")
            if not lo <= n <= hi:
                return BadRecord("count_out_of_range", f"{n} {name!r} outside [{lo}, {hi}]")
            for b in boxes[c] if opts.max_box_area_fraction else ():
                frac = (b.x2 - b.x1) * (b.y2 - b.y1) / area
                # Inverted and NaN boxes are left to the pipeline's `invalid_box`.
                if b.x2 > b.x1 and b.y2 > b.y1 and math.isfinite(frac) and frac > opts.max_box_area_fraction:
                    return BadRecord("box_too_large", f"a {name!r} box covers {frac:.0%} of the image")
        return None


def _image_area(im: dict) -> float:
    w, h = im.get("width"), im.get("height")
    if not (number(w) and number(h) and 0 < w < 1e300 and 0 < h < 1e300):
        raise BadRecord(
            "malformed_record", f"image {im.get('id')!r}: no usable width/height for the box-area check"
        )
    return float(w) * float(h)
