"""The adapter contract, checked for every registered adapter.

Every record read ends as exactly one Draft or one Reject, a malformed record is a Reject with a
named reason, and every reject names its record (a non-empty id). A new adapter needs an entry in
`KITS` (how to write records in its format), or the first test fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from triune_data.sources.base import (
    Draft,
    PromptPool,
    Reject,
    SourceContext,
    SourceOptions,
    get_source,
    source_names,
)

PROMPTS = Path(__file__).resolve().parents[3] / "recipes" / "prompts" / "vtriune.yaml"


def pools() -> dict[str, PromptPool]:
    raw = yaml.safe_load(PROMPTS.read_text())
    return {
        task: PromptPool(
            tuple(p["templates"]),
            tuple(tuple(s) for s in p.get("suffixes", [])),
            p.get("joiner", "\n\n"),
            p.get("image_prefix", "<image>"),
        )
        for task, p in raw.items()
    }


def write_jsonl(path: Path, records: list[Any]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@dataclass(frozen=True)
class Kit:
    """How to feed records to one adapter: `valid(i, id)` makes record i with its own id, `write`
    puts records in a file of the adapter's format and returns the adapter's options."""

    valid: Callable[[int, Any], Any]
    write: Callable[[Path, list[Any]], SourceOptions]
    malformed: tuple[Any, ...]


def jsonl_kit(
    options: Callable[[str], SourceOptions], valid: Callable[[int, Any], Any], *malformed: Any
) -> Kit:
    def write(tmp: Path, records: list[Any]) -> SourceOptions:
        write_jsonl(tmp / "records.jsonl", records)
        return options("records.jsonl")

    return Kit(valid, write, (42, "a string", [1, 2], *malformed))


def _coco_write(tmp: Path, images: list[Any]) -> SourceOptions:
    annotations = [
        {"id": n, "image_id": im["id"], "category_id": 1, "bbox": [10, 10, 20, 20], "iscrowd": 0}
        for n, im in enumerate(images)
        if isinstance(im, dict) and "id" in im
    ]
    doc = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "dog"}]}
    (tmp / "instances.json").write_text(json.dumps(doc))
    return get_source("coco").options(annotations="instances.json", images="images")


def _orsta_row(i: int, rid: Any) -> dict:
    return {
        "data_source": "geo",
        "prompt": [{"role": "user", "content": f"<image>What is {i} + 1?"}],
        "images": [{"bytes": None, "path": f"img{i}.png"}],
        "ability": "math",
        "reward_model": {"ground_truth": f"\\boxed{{{i + 1}}}", "style": "rule"},
        "extra_info": {"id": rid},
    }


def _orsta_write(tmp: Path, rows: list[Any]) -> SourceOptions:
    pq.write_table(pa.Table.from_pylist(rows), tmp / "rows.parquet")
    return get_source("orsta").options(path="rows.parquet")


def _options(adapter: str, **fixed: Any) -> Callable[[str], SourceOptions]:
    return lambda path: get_source(adapter).options(path=path, **fixed)


KITS: dict[str, Kit | None] = {
    "clevr": jsonl_kit(
        _options("clevr", images="images"),
        lambda i, rid: {
            "id": rid,
            "image_path": f"img{i}.png",
            "question": f"How many {i}?",
            "ground_truth": i,
        },
        {"id": "x", "question": "no image", "ground_truth": 2},
    ),
    "coco": Kit(
        lambda i, rid: {"id": rid, "file_name": f"img{i}.jpg", "width": 100, "height": 100},
        _coco_write,
        (42, {"file_name": "no_id.jpg"}),
    ),
    "ocr_vqa": jsonl_kit(
        _options("ocr_vqa", images="images", format="jsonl"),
        lambda i, rid: {
            "question_id": rid,
            "image": f"img{i}.jpg",
            "question": f"What is written {i}?",
            "answer": "STOP",
        },
        {"question_id": "x", "image": "a.jpg", "question": "no answer"},
    ),
    "odvg": jsonl_kit(
        _options("odvg", images="images"),
        lambda i, rid: {
            "filename": f"img{i}.jpg",
            "detection": {"instances": [{"bbox": [1, 2, 30, 40], "category": "dog"}]},
        },
        {"filename": "a.jpg", "detection": {"instances": [{"bbox": [1, 2], "category": "dog"}]}},
    ),
    "orsta": Kit(_orsta_row, _orsta_write, ({**_orsta_row(9, "bad"), "reward_model": None},)),
    "refcoco": jsonl_kit(
        _options("refcoco", images="images", bbox_format="xyxy"),
        lambda i, rid: {
            "ref_id": rid,
            "image": f"img{i}.jpg",
            "expression": f"dog {i}",
            "bbox": [1, 2, 30, 40],
        },
        {"ref_id": "x", "image": "a.jpg", "expression": "no box"},
    ),
    "synthetic": None,  # generates its records: nothing to malform
    "vqa": jsonl_kit(
        _options("vqa", task="math"),
        lambda i, rid: {
            "id": rid,
            "question": f"What is {i} + 1?",
            "answer": str(i + 1),
            "image": f"img{i}.png",
        },
        {"id": "x", "question": "no answer", "image": "a.png"},
    ),
}


def read(adapter: str, tmp: Path, records: list[Any]) -> list[Draft | Reject]:
    kit = KITS[adapter]
    assert kit is not None
    options = kit.write(tmp, records)
    ctx = SourceContext(f"{adapter}_src", "train", 0, tmp, pools())
    return list(get_source(adapter).read(options, ctx))


WITH_RECORDS = [name for name, kit in KITS.items() if kit is not None]


def test_every_adapter_has_a_kit():
    assert sorted(KITS) == source_names()


@pytest.mark.parametrize("adapter", WITH_RECORDS)
def test_a_malformed_record_is_a_reject_with_a_reason(adapter, tmp_path):
    kit = KITS[adapter]
    assert kit is not None
    for bad in kit.malformed:
        out = read(adapter, tmp_path, [kit.valid(0, "a"), bad, kit.valid(1, "b")])
        assert len(out) == 3, (bad, out)  # one record, one outcome
        assert isinstance(out[0], Draft) and isinstance(out[2], Draft), (bad, out)
        rej = out[1]
        assert isinstance(rej, Reject), (bad, rej)
        assert rej.reason.isidentifier() and rej.reason.islower() and rej.detail, rej
        assert rej.id, f"{adapter}: the reject of {bad!r} names no record"


# How each adapter names a record without an id of its own (its place in the file), or why it does not.
POSITIONS: dict[str, str | None] = {
    "clevr": "line{}",
    "ocr_vqa": "line{}",
    "refcoco": "row{}",
    "orsta": "row{}",
    "vqa": "line{}",
    "coco": None,  # image ids join the annotations: an image without one is rejected
    "odvg": None,  # named by the image file, not by an id field
    "synthetic": None,  # generates its ids
}
NO_IDS = ["", " ", "", "\t\n", None, True]  # all "no id", each record's content different
TYPED = {"orsta"}  # parquet: a column has one type, so no booleans among the string ids


def test_every_adapter_has_an_id_rule():
    assert sorted(POSITIONS) == source_names()


@pytest.mark.parametrize("adapter", [a for a, p in POSITIONS.items() if p is not None])
def test_records_without_an_id_are_named_by_their_place(adapter, tmp_path):
    """One rule (`sources.common.ids`): a missing, blank or whitespace id falls back to the
    record's position, so two such records never collide as duplicates."""
    kit = KITS[adapter]
    assert kit is not None
    no_ids = [i for i in NO_IDS if not isinstance(i, bool)] if adapter in TYPED else NO_IDS
    out = read(adapter, tmp_path, [kit.valid(i, rid) for i, rid in enumerate(no_ids)])
    assert all(isinstance(d, Draft) for d in out), out
    expected = [POSITIONS[adapter].format(n) for n in range(1, len(no_ids) + 1)]  # type: ignore[union-attr]
    assert [d.original_id for d in out] == expected
    assert len({d.id for d in out}) == len(out)
    own = read(adapter, tmp_path, [kit.valid(0, " x "), kit.valid(1, "0")])
    assert [d.original_id for d in own] == [" x ", "0"]  # an id of its own is kept as written


def test_coco_images_without_an_id_are_rejected_each_by_name(tmp_path):
    kit = KITS["coco"]
    assert kit is not None
    out = read("coco", tmp_path, [kit.valid(i, rid) for i, rid in enumerate(NO_IDS)])
    n = len(NO_IDS)  # each image had one annotation, which now belongs to no image: a reject too
    assert [(r.reason, r.id) for r in out] == [  # type: ignore[union-attr]
        *(("malformed_record", f"images[{i}]") for i in range(n)),
        *(("malformed_record", f"annotation {i}") for i in range(n)),
    ]


def test_no_annotations_rejects_name_their_record(tmp_path):
    """An image with nothing to ask about is a reject like any other: with the record's id."""
    doc = {
        "images": [{"id": 5, "file_name": "a.jpg", "width": 10, "height": 10}],
        "annotations": [],
        "categories": [{"id": 1, "name": "dog"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    ctx = SourceContext("coco_det", "train", 0, tmp_path, pools())
    coco = list(
        get_source("coco").read(get_source("coco").options(annotations="instances.json", images="i"), ctx)
    )
    write_jsonl(tmp_path / "odvg.jsonl", [{"filename": "b.jpg", "detection": {"instances": []}}])
    odvg = list(get_source("odvg").read(get_source("odvg").options(path="odvg.jsonl", images="i"), ctx))
    assert [(r.reason, r.id) for r in coco + odvg] == [("no_annotations", "5"), ("no_annotations", "b.jpg")]  # type: ignore[union-attr]
