import copy
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from triune_data.build import build_dataset
from triune_data.errors import RecipeError, SourceError
from triune_data.sources.base import Draft, PromptPool, Reject, SourceContext, get_source
from triune_data.sources.coco import CocoOptions

pytestmark = pytest.mark.usefixtures("json_reader")  # every test parsed and streamed

POOLS = {
    "detection": PromptPool(
        ("Locate every object of these categories:\n{categories}",), (("Answer in JSON.",),)
    ),
    "detection_single": PromptPool(("Find every {category} in the picture.",)),
    "counting_object": PromptPool(("How many {category} are in the image?",)),
}

# Two real-looking COCO val2017 images (ids, sizes and boxes in COCO's own style) plus a third
# whose only person annotation is a crowd region.
COCO = {
    "info": {"description": "COCO 2017 Dataset subset"},
    "images": [
        {"id": 397133, "file_name": "000000397133.jpg", "width": 64, "height": 48},
        {"id": 37777, "file_name": "000000037777.jpg", "width": 64, "height": 48},
        {"id": 448263, "file_name": "000000448263.jpg", "width": 64, "height": 48},
    ],
    "annotations": [
        {
            "id": 1,
            "image_id": 397133,
            "category_id": 44,
            "bbox": [21.7, 24.0, 3.9, 5.8],
            "area": 22.6,
            "iscrowd": 0,
        },
        {
            "id": 2,
            "image_id": 397133,
            "category_id": 1,
            "bbox": [38.8, 6.6, 10.4, 34.5],
            "area": 358.8,
            "iscrowd": 0,
        },
        {
            "id": 3,
            "image_id": 397133,
            "category_id": 1,
            "bbox": [0.0, 26.2, 4.3, 11.0],
            "area": 47.3,
            "iscrowd": 0,
        },
        {
            "id": 4,
            "image_id": 37777,
            "category_id": 62,
            "bbox": [10.0, 20.0, 8.0, 12.0],
            "area": 96.0,
            "iscrowd": 0,
        },
        {
            "id": 5,
            "image_id": 448263,
            "category_id": 1,
            "bbox": [0.0, 10.0, 60.0, 30.0],
            "area": 1800,
            "iscrowd": 1,
        },
        {
            "id": 6,
            "image_id": 448263,
            "category_id": 1,
            "bbox": [2.0, 3.0, 4.0, 5.0],
            "area": 20.0,
            "iscrowd": 0,
        },
    ],
    "categories": [
        {"supercategory": "person", "id": 1, "name": "person"},
        {"supercategory": "kitchen", "id": 44, "name": "bottle"},
        {"supercategory": "furniture", "id": 62, "name": "chair"},
    ],
}


def write_coco(tmp_path: Path, data: dict | None = None, *, images: bool = True) -> Path:
    path = tmp_path / "annotations" / "instances.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = COCO if data is None else data
    path.write_text(json.dumps(data))
    for im in data["images"] if images else ():
        if isinstance(im, dict) and isinstance(im.get("file_name"), str) and im["file_name"].isascii():
            (tmp_path / "images").mkdir(exist_ok=True)
            Image.new("RGB", (im.get("width", 64), im.get("height", 48)), (90, 120, 40)).save(
                tmp_path / "images" / im["file_name"], "JPEG"
            )
    return path


def read(tmp_path: Path, **options) -> list[Draft | Reject]:
    ctx = SourceContext("coco_det", "train", 0, tmp_path, POOLS)
    opts = CocoOptions(annotations="annotations/instances.json", images="images", **options)
    return list(get_source("coco").read(opts, ctx))


def summary(records) -> list[tuple[str, str]]:
    """(id, task) per draft; (unit id or original id, reason) per reject."""
    return [(r.id or r.original_id, r.reason) if isinstance(r, Reject) else (r.id, r.task) for r in records]


def test_multi_lists_categories_in_file_order_with_xyxy_pixel_boxes(tmp_path):
    write_coco(tmp_path)
    recs = read(tmp_path)
    assert summary(recs) == [("397133", "detection"), ("37777", "detection"), ("448263", "crowd_region")]
    d = recs[0]
    assert d.prompt[0].content == (
        "<image>Locate every object of these categories:\n- person\n- bottle\n\nAnswer in JSON."
    )
    assert [b.label for b in d.boxes] == ["person", "person", "bottle"]
    assert [(b.x1, b.y1, b.x2, b.y2) for b in d.boxes] == [
        pytest.approx((38.8, 6.6, 49.2, 41.1)),
        pytest.approx((0.0, 26.2, 4.3, 37.2)),
        pytest.approx((21.7, 24.0, 25.6, 29.8)),
    ]
    assert d.box_frame == "pixel" and d.ground_truth == "" and d.original_id == "397133"
    assert d.images[0].name == "000000397133.jpg"
    assert d.images[0].file == str(tmp_path / "images" / "000000397133.jpg")
    assert d.file == "annotations/instances.json" and d.verifier is None
    assert recs[2].original_id == "448263" and recs[2].id == "448263"


def test_single_keeps_every_box_of_its_one_category(tmp_path):
    write_coco(tmp_path)
    recs = read(tmp_path, prompt="single")
    assert summary(recs) == [
        ("397133-1", "detection"),
        ("397133-44", "detection"),
        ("37777-62", "detection"),
        ("448263-1", "crowd_region"),
    ]
    assert [b.label for b in recs[0].boxes] == ["person", "person"]
    assert recs[0].prompt[0].content == "<image>Find every person in the picture."


def test_both_gives_multi_then_single_units_per_image(tmp_path):
    write_coco(tmp_path)
    ids = [r.id for r in read(tmp_path, prompt="both")]
    assert ids == ["397133", "397133-1", "397133-44", "37777", "37777-62", "448263", "448263-1"]


def test_crowd_ignore_drops_crowd_boxes_and_keeps_the_rest(tmp_path):
    write_coco(tmp_path)
    d = read(tmp_path, crowd="ignore")[2]
    assert d.id == "448263" and [(b.x1, b.x2) for b in d.boxes] == [(2.0, 6.0)]
    counts = {r.id: r.answer for r in read(tmp_path, mode="counting", crowd="ignore")}
    assert counts["448263-1-count"] == "1"


def test_counting_one_sample_per_image_and_category(tmp_path):
    write_coco(tmp_path)
    recs = read(tmp_path, mode="counting")
    assert [(r.id, r.reason if isinstance(r, Reject) else r.answer) for r in recs] == [
        ("397133-1-count", "2"),
        ("397133-44-count", "1"),
        ("37777-62-count", "1"),
        ("448263-1-count", "crowd_region"),
    ]
    assert recs[0].task == "counting" and recs[0].ground_truth == "2" and recs[0].boxes == []
    assert recs[0].prompt[0].content == "<image>How many person are in the image?"


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"min_count": 2}, ["397133-1-count", "count_out_of_range", "count_out_of_range", "crowd_region"]),
        ({"max_count": 1}, ["count_out_of_range", "397133-44-count", "37777-62-count", "crowd_region"]),
    ],
)
def test_count_range_filters(tmp_path, options, expected):
    write_coco(tmp_path)
    recs = read(tmp_path, mode="counting", **options)
    assert [r.reason if isinstance(r, Reject) else r.id for r in recs] == expected


def test_category_filter(tmp_path):
    write_coco(tmp_path)
    recs = read(tmp_path, categories=["bottle", "chair"])
    assert summary(recs) == [("397133", "detection"), ("37777", "detection"), ("448263", "no_annotations")]
    assert [b.label for b in recs[0].boxes] == ["bottle"]
    assert recs[0].prompt[0].content.count("\n- ") == 1
    with pytest.raises(SourceError, match=r"instances\.json: no categories named \['giraffe'\]"):
        read(tmp_path, categories=["giraffe"])


@pytest.mark.parametrize(
    "options, reasons",
    [
        ({"max_boxes_per_category": 1}, ["too_many_boxes", "detection", "crowd_region"]),  # 2 persons
        ({"max_boxes_per_category": 2}, ["detection", "detection", "crowd_region"]),
        # person 38.8..49.2 x 6.6..41.1 is 359 px² = 11.7% of 64x48
        ({"max_box_area_fraction": 0.1}, ["box_too_large", "detection", "crowd_region"]),
        ({"max_box_area_fraction": 0.5}, ["detection", "detection", "crowd_region"]),
    ],
)
def test_v_triune_rule_filters(tmp_path, options, reasons):
    write_coco(tmp_path)
    assert [s for _, s in summary(read(tmp_path, **options))] == reasons


def test_area_filter_needs_the_json_size(tmp_path):
    data = copy.deepcopy(COCO)
    del data["images"][1]["width"]
    write_coco(tmp_path, data)
    recs = read(tmp_path, max_box_area_fraction=0.5)
    assert recs[1].reason == "malformed_record" and "width/height" in recs[1].detail


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "counting", "max_boxes_per_category": 10},
        {"mode": "counting", "max_box_area_fraction": 0.5},
        {"mode": "counting", "prompt": "single"},
        {"min_count": 1},
        {"max_count": 5},
    ],
)
def test_options_for_the_other_mode_are_errors(tmp_path, options):
    write_coco(tmp_path)
    with pytest.raises(RecipeError):
        read(tmp_path, **options)


GOOD = [("397133", "detection"), ("37777", "detection"), ("448263", "crowd_region")]
BAD = ("37777", "malformed_record")


def _refused_by_the_tokenizer(data) -> bool:
    """What yajl (streaming) refuses and Python's json reads: lone surrogates, integers past 64 bits."""
    text = json.dumps(data)
    return "\\udc" in text or "0" * 30 in text


def _mutate(fn):
    data = copy.deepcopy(COCO)
    fn(data)
    return data


@pytest.mark.parametrize(
    "data, expected",
    [
        # an annotation of an image that is not listed: its own reject, after the images
        (
            _mutate(
                lambda d: d["annotations"].append(
                    {"id": 99, "image_id": 5, "category_id": 1, "bbox": [1, 1, 2, 2]}
                )
            ),
            [*GOOD, ("annotation 99", "malformed_record")],
        ),
        (_mutate(lambda d: d["annotations"][3].update(category_id=999)), [GOOD[0], BAD, GOOD[2]]),
        (
            _mutate(lambda d: d["images"].append(dict(d["images"][0], file_name="copy.jpg"))),
            [*GOOD, ("397133", "duplicate_id")],
        ),
        (
            _mutate(lambda d: d["images"][1].update(file_name="caf\udce9.jpg")),
            [GOOD[0], ("37777", "invalid_text_encoding"), GOOD[2]],
        ),
        (
            _mutate(lambda d: d["categories"][2].update(name="ch\udcc3ir")),
            [GOOD[0], ("37777", "invalid_text_encoding"), GOOD[2]],
        ),
        (_mutate(lambda d: d["annotations"][3].update(bbox=[10, 20, "8", 12])), [GOOD[0], BAD, GOOD[2]]),
        (_mutate(lambda d: d["annotations"][3].update(bbox=[10, 20, 8])), [GOOD[0], BAD, GOOD[2]]),
        (_mutate(lambda d: d["annotations"][3].update(bbox=None)), [GOOD[0], BAD, GOOD[2]]),
        (_mutate(lambda d: d["annotations"][3].update(bbox=[10, 20, 8, 10**400])), [GOOD[0], BAD, GOOD[2]]),
        (_mutate(lambda d: d["images"][1].pop("file_name")), [GOOD[0], BAD, GOOD[2]]),
        (
            _mutate(lambda d: d["images"][1].update(id=True)),  # JSON true is not an id
            [GOOD[0], ("images[1]", "malformed_record"), GOOD[2], ("annotation 4", "malformed_record")],
        ),
        (
            _mutate(lambda d: d["images"].append({"id": 5, "file_name": "5.jpg", "width": 9, "height": 9})),
            [*GOOD, ("5", "no_annotations")],
        ),
        # an image id spelled two ways: the image is rejected, never kept with part of its boxes
        (
            _mutate(lambda d: d["annotations"][1].update(image_id="397133")),
            [("397133", "partial_annotations"), *GOOD[1:], ("annotation 2", "malformed_record")],
        ),
        (
            _mutate(lambda d: d["annotations"][2].update(image_id=397133.0)),
            [("397133", "partial_annotations"), *GOOD[1:], ("annotation 3", "malformed_record")],
        ),
        (
            _mutate(lambda d: d["images"][1].update(id="37777")),  # its one annotation says 37777
            [GOOD[0], ("37777", "partial_annotations"), GOOD[2], ("annotation 4", "malformed_record")],
        ),
    ],
    ids=[
        "unknown-image-id",
        "unknown-category-id",
        "duplicate-image-id",
        "non-utf8-file-name",
        "non-utf8-category",
        "bbox-string",
        "bbox-three-numbers",
        "bbox-null",
        "bbox-huge-integer",
        "no-file-name",
        "bool-image-id",
        "image-without-annotations",
        "image-id-int-and-string",
        "image-id-int-and-float",
        "image-id-string-annotations-int",
    ],
)
def test_bad_records_are_rejected_with_a_reason(tmp_path, data, expected, json_reader):
    write_coco(tmp_path, data)
    if json_reader == "streamed" and _refused_by_the_tokenizer(data):
        # One reject when parsed whole; the streaming tokenizer refuses the file, naming it.
        with pytest.raises(SourceError, match=r"instances\.json: not valid JSON"):
            read(tmp_path)
        return
    recs = read(tmp_path)
    assert summary(recs) == expected
    assert all(r.detail and r.file == "annotations/instances.json" for r in recs if isinstance(r, Reject))


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"images": [', r"instances\.json: not valid JSON"),
        (b'{"images": [], "annotations": []}', r"instances\.json: not a COCO instances file"),
        (b'[{"id": 1}]', r"instances\.json: not a COCO instances file"),
        (
            b'{"images": [], "annotations": [], "categories": [{"id": 1, "name": "a"}, {"id": 1}]}',
            r"categories\[1\] has a missing or repeated id",
        ),
        (
            '{"images": [], "annotations": [], "categories": [{"id": 1, "name": "café"}]}'.encode("latin-1"),
            r"instances\.json: not valid JSON",
        ),
    ],
)
def test_unreadable_files_raise_source_error_naming_the_file(tmp_path, content, message):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances.json").write_bytes(content)
    with pytest.raises(SourceError, match=message):
        read(tmp_path)


def test_streaming_refuses_nan_with_a_one_line_error(tmp_path, json_reader):
    data = _mutate(lambda d: d["annotations"][0].update(bbox=[float("nan"), 1, 2, 3]))
    write_coco(tmp_path, data)
    if json_reader == "parsed":  # the pipeline rejects the box later (`invalid_box`)
        assert summary(read(tmp_path)) == GOOD
        return
    with pytest.raises(SourceError, match=r"^\S+instances\.json: not valid JSON \([^\n]+\)$"):
        read(tmp_path)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(SourceError, match=r"instances\.json: file not found"):
        read(tmp_path)


def test_annotations_the_index_cannot_pack_keep_their_order(tmp_path):
    # Image 397133's three annotations; the second has a string id and a boolean iscrowd, so the
    # image's index entry falls back from packed bytes to tuples: boxes must stay in file order.
    write_coco(tmp_path)
    before = read(tmp_path, prompt="both")
    write_coco(tmp_path, _mutate(lambda d: d["annotations"][1].update(id="two", iscrowd=False)))
    assert read(tmp_path, prompt="both") == before


def test_reading_twice_gives_identical_drafts(tmp_path):
    write_coco(tmp_path)
    assert read(tmp_path, prompt="both") == read(tmp_path, prompt="both")


def test_end_to_end_build_with_pipeline_rejects(tmp_path, json_reader):
    # NaN is not JSON: Python's parser takes it, the streaming tokenizer refuses the whole file.
    nan_box = [float("nan"), 1, 5, 5] if json_reader == "parsed" else [1, 1, 5, -5]
    data = copy.deepcopy(COCO)
    data["images"] += [
        {"id": 7, "file_name": "missing.jpg", "width": 64, "height": 48},
        {"id": 8, "file_name": "nan.jpg", "width": 64, "height": 48},
        {"id": 9, "file_name": "negative.jpg", "width": 64, "height": 48},
        {"id": 10, "file_name": "outside.jpg", "width": 64, "height": 48},
    ]
    data["annotations"] += [
        {"id": 70, "image_id": 7, "category_id": 62, "bbox": [1, 1, 5, 5], "iscrowd": 0},
        {"id": 80, "image_id": 8, "category_id": 62, "bbox": nan_box, "iscrowd": 0},
        {"id": 90, "image_id": 9, "category_id": 62, "bbox": [10, 1, -5, 5], "iscrowd": 0},
        {"id": 100, "image_id": 10, "category_id": 62, "bbox": [40, 10, 50, 20], "iscrowd": 0},
    ]
    write_coco(tmp_path, data)
    (tmp_path / "images" / "missing.jpg").unlink()
    recipe = {
        "name": "coco-e2e",
        "prompts": {k: {"templates": list(p.templates)} for k, p in POOLS.items()},
        "sources": [
            {
                "adapter": "coco",
                "data_source": "coco_det",
                "options": {
                    "annotations": "annotations/instances.json",
                    "images": "images",
                    "prompt": "both",
                },
            }
        ],
    }
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))  # JSON is YAML
    out = tmp_path / "out"
    build_dataset(tmp_path / "recipe.yaml", out)

    manifest = json.loads((out / "manifest.json").read_text())
    src = manifest["sources"]["coco_det"]
    assert src["rejected_by_reason"] == {
        "box_outside_image": 2,
        "crowd_region": 2,
        "invalid_box": 4,
        "missing_image_file": 2,
    }
    assert (src["read"], src["kept"], src["rejected"]) == (15, 5, 10)
    rows = [r for f in manifest["files"] for r in pq.read_table(out / f["path"]).to_pylist()]
    assert [r["id"] for r in rows] == [
        "coco_det/397133",
        "coco_det/397133-1",
        "coco_det/397133-44",
        "coco_det/37777",
        "coco_det/37777-62",
    ]
    first = next(r for r in rows if r["id"] == "coco_det/397133")
    assert json.loads(first["ground_truth"])[2] == {"bbox_2d": [21.7, 24, 25.6, 29.8], "label": "bottle"}
    assert first["image_sizes"] == [{"width": 64, "height": 48}]
    assert first["reward"]["verifier"] == "detection" and first["reward"]["format_weight"] == 0.1
    assert first["provenance"]["original_id"] == "397133" and first["provenance"]["source"] == "coco"
    assert first["images"][0]["path"] == "000000397133.jpg"
