import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from triune_data.build import build_dataset
from triune_data.errors import SourceError
from triune_data.sources.base import Draft, PromptPool, Reject, SourceContext, get_source
from triune_data.sources.odvg import OdvgOptions

POOLS = {
    "detection": PromptPool(
        ("Locate all objects of the designated class present in the image:\n{categories}",)
    ),
    "grounding": PromptPool(("Find the region described by: {expression}",)),
}

# Rows in the shapes of Open-GroundingDino's README (COCO od rows, GRIT vg rows).
OD = {
    "filename": "000000391895.jpg",
    "height": 360,
    "width": 640,
    "detection": {
        "instances": [
            {"bbox": [359.17, 146.17, 471.62, 359.74], "label": 3, "category": "motorcycle"},
            {"bbox": [339.88, 22.16, 493.76, 322.89], "label": 0, "category": "person"},
            {"bbox": [471.64, 172.82, 507.56, 220.92], "label": 0, "category": "person"},
            {"bbox": [486.01, 183.31, 516.64, 218.29], "label": 1, "category": "bicycle"},
        ]
    },
}
VG = {
    "filename": "012378809.jpg",
    "height": 252,
    "width": 450,
    "grounding": {
        "caption": "naive : Heart graphics in a notebook background",
        "regions": [
            {"bbox": [93.8, 47.59, 126.19, 77.01], "phrase": "Heart graphics"},
            {"bbox": [2.49, 1.44, 448.74, 251.1], "phrase": "a notebook background"},
            {"bbox": [130.0, 40.0, 160.0, 70.0], "phrase": "Heart  graphics"},
        ],
    },
}
LABEL_MAP = {"0": "person", "1": "bicycle", "3": "motorcycle"}


def write(tmp_path: Path, rows: list, name: str = "train.jsonl") -> str:
    (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return name


def read(tmp_path: Path, rows: list, **options) -> list[Draft | Reject]:
    ctx = SourceContext("odvg", "train", 0, tmp_path, POOLS)
    opts = OdvgOptions(path=write(tmp_path, rows), images="imgs", **options)
    return list(get_source("odvg").read(opts, ctx))


def outcome(r: Draft | Reject) -> str:
    return r.reason if isinstance(r, Reject) else f"{r.id}:{r.task}"


def test_od_row_is_one_multi_category_detection_sample(tmp_path):
    (d,) = read(tmp_path, [OD])
    assert d.id == "000000391895.jpg" and d.task == "detection" and d.box_frame == "pixel"
    assert d.prompt[0].content.endswith("image:\n- motorcycle\n- person\n- bicycle")  # first appearance
    assert [(b.label, b.x1, b.y2) for b in d.boxes] == [
        ("motorcycle", 359.17, 359.74),
        ("person", 339.88, 322.89),
        ("person", 471.64, 220.92),
        ("bicycle", 486.01, 218.29),
    ]
    assert d.images[0].file == str(tmp_path / "imgs" / "000000391895.jpg")


def test_label_map_names_instances_without_category(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps(LABEL_MAP))
    row = json.loads(json.dumps(OD))
    for inst in row["detection"]["instances"]:
        del inst["category"]
    (d,) = read(tmp_path, [row], label_map="labels.json")
    assert [b.label for b in d.boxes] == ["motorcycle", "person", "person", "bicycle"]


def test_vg_row_gives_one_grounding_sample_per_phrase(tmp_path):
    recs = read(tmp_path, [VG])
    assert [r.id for r in recs] == ["012378809.jpg-0", "012378809.jpg-1"]
    heart, background = recs
    assert heart.prompt[0].content == "<image>Find the region described by: Heart graphics"
    assert [(b.label, b.x1) for b in heart.boxes] == [("Heart graphics", 93.8), ("Heart graphics", 130.0)]
    assert [b.label for b in background.boxes] == ["a notebook background"]
    assert "caption" not in heart.prompt[0].content and heart.task == "grounding"


def _od(**instance):
    return {"filename": "x.jpg", "detection": {"instances": [{"bbox": [1, 2, 3, 4], "label": 0, **instance}]}}


def _vg(**region):
    return {"filename": "y.jpg", "grounding": {"caption": "c", "regions": [{"bbox": [1, 2, 3, 4], **region}]}}


@pytest.mark.parametrize(
    "row, reason",
    [
        (_od(category="dog"), "x.jpg:detection"),
        (_od(), "malformed_record"),  # no category and no label map
        (_od(category="dog", bbox=[1, 2, 3]), "malformed_record"),
        (_od(category="dog", bbox=None), "malformed_record"),
        (_od(category="d\udcf6g"), "invalid_text_encoding"),
        (_od(category=""), "malformed_record"),
        ({"filename": "x.jpg", "detection": {"instances": []}}, "no_annotations"),
        ({"filename": "x.jpg", "detection": {"instances": "person"}}, "malformed_record"),
        ({"filename": "x.jpg", "detection": {"instances": [[1, 2, 3, 4]]}}, "malformed_record"),
        (_vg(phrase="a dog"), "y.jpg-0:grounding"),
        (_vg(), "malformed_record"),  # no phrase
        (_vg(phrase="a dog", bbox="1 2 3 4"), "malformed_record"),
        (_vg(phrase="caf\udce9"), "invalid_text_encoding"),
        ({"filename": "y.jpg", "grounding": {"caption": "c", "regions": []}}, "no_annotations"),
        ({"filename": "y.jpg", "height": 10, "width": 10}, "malformed_record"),  # neither od nor vg
        (
            {"detection": {"instances": [{"bbox": [1, 2, 3, 4], "category": "a"}]}},
            "malformed_record",
        ),  # no file
        ({"filename": "caf\udce9.jpg", "grounding": {"regions": []}}, "invalid_text_encoding"),
        ([1, 2, 3], "malformed_record"),
    ],
)
def test_bad_rows_are_rejected(tmp_path, row, reason):
    recs = read(tmp_path, [OD, row, OD])
    assert [outcome(r) for r in recs] == ["000000391895.jpg:detection", reason, "000000391895.jpg:detection"]
    assert isinstance(recs[1], Draft) or (recs[1].detail and recs[1].file == "train.jsonl")


def test_label_missing_from_the_map_is_a_reject(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps(LABEL_MAP))
    (r,) = read(tmp_path, [_od(label=77)], label_map="labels.json")
    assert r.reason == "malformed_record" and "77" in r.detail


@pytest.mark.parametrize(
    "content, message",
    [
        (b"[1, 2]", r"labels\.json: a label map is a JSON object"),
        (b"{", r"labels\.json: not valid JSON"),
        (None, "not found"),
    ],
)
def test_bad_label_map_raises_source_error(tmp_path, content, message):
    if content is not None:
        (tmp_path / "labels.json").write_bytes(content)
    with pytest.raises(SourceError, match=message):
        read(tmp_path, [OD], label_map="labels.json")


def test_missing_jsonl_raises_source_error(tmp_path):
    ctx = SourceContext("odvg", "train", 0, tmp_path, POOLS)
    with pytest.raises(SourceError, match=r"nope\.jsonl: cannot read"):
        list(get_source("odvg").read(OdvgOptions(path="nope.jsonl", images="imgs"), ctx))


def test_end_to_end_build_mixes_detection_and_grounding(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (640, 360), (30, 30, 30)).save(tmp_path / "imgs" / "000000391895.jpg", "JPEG")
    Image.new("RGB", (450, 252), (200, 30, 30)).save(tmp_path / "imgs" / "012378809.jpg", "JPEG")
    small = dict(OD, filename="small.jpg")  # its boxes overshoot a 100x100 image
    Image.new("RGB", (100, 100), (0, 0, 0)).save(tmp_path / "imgs" / "small.jpg", "JPEG")
    write(tmp_path, [OD, VG, small, dict(VG, filename="gone.jpg")])
    recipe = {
        "name": "odvg-e2e",
        "prompts": {k: {"templates": list(p.templates)} for k, p in POOLS.items()},
        "sources": [
            {
                "adapter": "odvg",
                "data_source": "grit_odvg",
                "options": {"path": "train.jsonl", "images": "imgs"},
            }
        ],
    }
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    out = tmp_path / "out"
    build_dataset(tmp_path / "recipe.yaml", out)
    manifest = json.loads((out / "manifest.json").read_text())
    src = manifest["sources"]["grit_odvg"]
    assert (src["read"], src["kept"], src["rejected"]) == (6, 3, 3)
    assert src["rejected_by_reason"] == {"box_outside_image": 1, "missing_image_file": 2}
    rows = [r for f in manifest["files"] for r in pq.read_table(out / f["path"]).to_pylist()]
    assert [(r["id"], r["task"], r["reward"]["verifier"]) for r in rows] == [
        ("grit_odvg/000000391895.jpg", "detection", "detection"),
        ("grit_odvg/012378809.jpg-0", "grounding", "grounding"),
        ("grit_odvg/012378809.jpg-1", "grounding", "grounding"),
    ]
    assert len(json.loads(rows[1]["ground_truth"])) == 2


@pytest.mark.parametrize(
    "broken",
    [
        lambda row: row["detection"]["instances"][2].update(bbox=[1, 2, 3]),
        lambda row: row["detection"]["instances"][3].update(category=None),
    ],
)
def test_a_row_with_one_bad_instance_is_rejected_whole_never_kept_with_the_rest(tmp_path, broken):
    row = json.loads(json.dumps(OD))
    broken(row)
    (r,) = read(tmp_path, [row])
    assert isinstance(r, Reject) and r.reason == "malformed_record"


def test_a_vg_row_with_one_bad_region_gives_no_sample(tmp_path):
    row = json.loads(json.dumps(VG))
    row["grounding"]["regions"][2]["bbox"] = "93 47 126 77"  # the second box of "Heart graphics"
    (r,) = read(tmp_path, [row])
    assert isinstance(r, Reject) and r.reason == "malformed_record"
