import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image
from pydantic import ValidationError

from triune_data.build import build_dataset
from triune_data.errors import SourceError
from triune_data.sources.base import Draft, PromptPool, Reject, SourceContext, get_source
from triune_data.sources.refcoco import RefCocoOptions

POOLS = {"grounding": PromptPool(("Output the bounding box of: {expression}",), (("Think first.",),))}

# VLM-R1's REC JSON (RefCOCO val rows: image, expression, pixel xyxy box, original size).
VLMR1 = [
    {
        "image": "train2014/COCO_train2014_000000185229.jpg",
        "problem": "man standing far left in orange",
        "normal_caption": "man standing far left in orange",
        "solution": [14.67, 133.56, 121.84, 469.68],
        "normalized_solution": [22, 278, 190, 978],
        "width": 640,
        "height": 480,
    },
    {
        "image": "train2014/COCO_train2014_000000018290.jpg",
        "problem": "umpcatcher",
        "normal_caption": "umpcatcher",
        "solution": [0.52, 210.56, 142.39, 379.0],
        "width": 640,
        "height": 480,
    },
]

# refer-style refs as JSONL: several sentences per ref, COCO xywh boxes.
REFS = [
    {
        "ref_id": 5001,
        "file_name": "COCO_train2014_000000581857.jpg",
        "bbox": [103.93, 299.99, 134.22, 177.42],
        "sentences": [
            {"sent": "lady with back to us", "raw": "Lady with back to us", "sent_id": 1},
            {"sent": "woman  in  blue", "raw": "woman in blue", "sent_id": 2},
            {"sent": "lady with back to us", "raw": "lady with back to us.", "sent_id": 3},
        ],
    },
    {
        "ref_id": 5002,
        "file_name": "COCO_train2014_000000581857.jpg",
        "bbox": [0, 0, 10, 10],
        "sentence": "left cup",
    },
]


def write(tmp_path: Path, name: str, rows: list, *, jsonl: bool) -> str:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n" if jsonl else json.dumps(rows))
    return name


def read(tmp_path: Path, path: str, **options) -> list[Draft | Reject]:
    ctx = SourceContext("refcoco_val", "train", 0, tmp_path, POOLS)
    return list(get_source("refcoco").read(RefCocoOptions(path=path, images="coco", **options), ctx))


def test_vlmr1_rec_json(tmp_path):
    recs = read(tmp_path, write(tmp_path, "rec.json", VLMR1, jsonl=False), bbox_format="xyxy")
    assert [r.id for r in recs] == ["row1-0", "row2-0"]
    d = recs[0]
    assert d.task == "grounding" and d.box_frame == "pixel" and d.original_id == "row1"
    assert (
        d.prompt[0].content
        == "<image>Output the bounding box of: man standing far left in orange\n\nThink first."
    )
    assert [(b.label, b.x1, b.y1, b.x2, b.y2) for b in d.boxes] == [
        ("man standing far left in orange", 14.67, 133.56, 121.84, 469.68)
    ]
    assert d.images[0].name == "train2014/COCO_train2014_000000185229.jpg"
    assert d.images[0].file == str(tmp_path / "coco" / "train2014" / "COCO_train2014_000000185229.jpg")
    assert d.file == "rec.json" and d.verifier is None


def test_normalized_solution_declares_the_norm1000_frame(tmp_path):
    path = write(tmp_path, "rec.json", VLMR1[:1], jsonl=False)
    d = read(tmp_path, path, bbox_format="xyxy", bbox_keys=["normalized_solution"], frame="norm1000")[0]
    assert d.box_frame == "norm1000" and (d.boxes[0].x1, d.boxes[0].y2) == (22.0, 978.0)


def test_refs_with_several_sentences_give_one_sample_each(tmp_path):
    recs = read(tmp_path, write(tmp_path, "refs.jsonl", REFS, jsonl=True), bbox_format="xywh")
    got = [(r.id, r.reason if isinstance(r, Reject) else r.boxes[0].label) for r in recs]
    assert got == [
        ("5001-0", "lady with back to us"),
        ("5001-1", "woman in blue"),  # whitespace collapsed
        ("5001-2", "duplicate_expression"),
        ("5002-0", "left cup"),
    ]
    b = recs[0].boxes[0]
    assert (b.x1, b.y1, b.x2, b.y2) == pytest.approx((103.93, 299.99, 238.15, 477.41))
    assert recs[0].original_id == "5001" and recs[2].original_id == "5001"


def test_custom_keys_for_screenspot_rows(tmp_path):
    row = {"img_filename": "pc_ede36f9b.png", "bbox": [910, 78, 44, 34], "instruction": "close this window"}
    recs = read(tmp_path, write(tmp_path, "ss.json", [row], jsonl=False), bbox_format="xywh", id_keys=["uid"])
    b = recs[0].boxes[0]
    assert (b.label, b.x1, b.y1, b.x2, b.y2) == ("close this window", 910, 78, 954, 112)


def test_bbox_format_must_be_given():
    with pytest.raises(ValidationError, match="bbox_format"):
        RefCocoOptions(path="x.jsonl", images="i")


GOOD = {"image": "a.jpg", "expression": "the red car", "bbox": [1, 2, 30, 40]}


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"expression": "the red car", "bbox": [1, 2, 30, 40]}, "malformed_record"),  # no image
        ({"image": "a.jpg", "bbox": [1, 2, 30, 40]}, "malformed_record"),  # no expression
        ({"image": "a.jpg", "expression": "the red car"}, "malformed_record"),  # no box
        (dict(GOOD, bbox=[1, 2, 30]), "malformed_record"),
        (dict(GOOD, bbox="1,2,30,40"), "malformed_record"),
        (dict(GOOD, bbox=[1, 2, True, 40]), "malformed_record"),
        (dict(GOOD, expression=[]), "malformed_record"),
        (dict(GOOD, expression="   "), "malformed_record"),
        (dict(GOOD, expression=42), "malformed_record"),
        (dict(GOOD, expression="caf\udce9 sign"), "invalid_text_encoding"),
        (dict(GOOD, image="caf\udce9.jpg"), "invalid_text_encoding"),
        (dict(GOOD, image=["a.jpg"]), "malformed_record"),
        (["a.jpg", "the red car"], "malformed_record"),
    ],
)
def test_bad_rows_are_rejected(tmp_path, row, reason):
    recs = read(tmp_path, write(tmp_path, "refs.jsonl", [GOOD, row, GOOD], jsonl=True), bbox_format="xyxy")
    assert [r.reason if isinstance(r, Reject) else r.id for r in recs] == ["row1-0", reason, "row3-0"]
    assert recs[1].detail and recs[1].file == "refs.jsonl"


def test_an_id_with_a_lone_surrogate_still_gets_its_prompt(tmp_path):
    # The prompt is picked by hashing the id; the pipeline rejects the text afterwards
    # (`invalid_text_encoding`), so the adapter must not fail on it first.
    recs = read(
        tmp_path, write(tmp_path, "refs.jsonl", [dict(GOOD, id="caf\udce9")], jsonl=True), bbox_format="xyxy"
    )
    assert [r.id for r in recs] == ["caf\udce9-0"] and recs[0].prompt


def test_broken_jsonl_lines_are_rejects(tmp_path):
    (tmp_path / "refs.jsonl").write_bytes(
        json.dumps(GOOD).encode() + b'\n{"image": "b.jpg", \n\n' + b'{"image": "caf\xe9.jpg"}\n'
    )
    recs = read(tmp_path, "refs.jsonl", bbox_format="xyxy")
    assert [r.reason if isinstance(r, Reject) else r.id for r in recs] == [
        "row1-0",
        "malformed_record",
        "invalid_text_encoding",
    ]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("rec.json", b'{"images": []}', r"rec\.json: expected a JSON list"),
        ("rec.json", b"[{", r"rec\.json: not valid JSON"),
        ("rec.json", None, r"rec\.json: file not found"),
        ("rec.jsonl", None, r"rec\.jsonl: cannot read"),
    ],
)
def test_unreadable_files_raise_source_error(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(SourceError, match=message):
        read(tmp_path, name, bbox_format="xyxy")


def test_end_to_end_build(tmp_path):
    (tmp_path / "coco").mkdir()
    Image.new("RGB", (200, 100), (10, 80, 160)).save(tmp_path / "coco" / "a.jpg", "JPEG")
    rows = [
        {
            "ref_id": 1,
            "image": "a.jpg",
            "sentences": ["dog on the left", "brown dog"],
            "bbox": [10, 20, 50, 60],
        },
        {"ref_id": 2, "image": "missing.jpg", "sentence": "tree", "bbox": [1, 1, 5, 5]},
        {"ref_id": 3, "image": "a.jpg", "sentence": "sky", "bbox": [150, 0, 100, 50]},  # x2 = 250 > 200
        {"ref_id": 4, "image": "a.jpg", "sentence": "cat", "bbox": [10, 10, -5, 5]},
    ]
    write(tmp_path, "refs.jsonl", rows, jsonl=True)
    recipe = {
        "name": "refcoco-e2e",
        "prompts": {"grounding": {"templates": list(POOLS["grounding"].templates)}},
        "sources": [
            {
                "adapter": "refcoco",
                "data_source": "refcoco_val",
                "options": {"path": "refs.jsonl", "images": "coco", "bbox_format": "xywh"},
            }
        ],
    }
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    out = tmp_path / "out"
    build_dataset(tmp_path / "recipe.yaml", out)
    manifest = json.loads((out / "manifest.json").read_text())
    src = manifest["sources"]["refcoco_val"]
    assert (src["read"], src["kept"], src["rejected"]) == (5, 2, 3)
    assert src["rejected_by_reason"] == {"box_outside_image": 1, "invalid_box": 1, "missing_image_file": 1}
    table = [r for f in manifest["files"] for r in pq.read_table(out / f["path"]).to_pylist()]
    assert [r["id"] for r in table] == ["refcoco_val/1-0", "refcoco_val/1-1"]
    assert json.loads(table[1]["ground_truth"]) == [{"bbox_2d": [10, 20, 60, 80], "label": "brown dog"}]
    assert table[0]["reward"]["verifier"] == "grounding" and table[0]["task"] == "grounding"
    assert table[0]["image_sizes"] == [{"width": 200, "height": 100}]
