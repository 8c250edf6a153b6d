import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from triune_data.build import build_dataset
from triune_data.errors import SourceError
from triune_data.sources.base import Draft, DraftBox, ImageBytes, Reject, SourceContext, get_source
from triune_data.sources.common.fields import BadRecord
from triune_data.sources.orsta import OrstaOptions, parse_boxes, python_literal, unbox
from triune_data.verifiers import verifier_names


def image_bytes(size, fmt="JPEG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (120, 90, 60)).save(buf, fmt)
    return buf.getvalue()


PNG = image_bytes((64, 48), "PNG")
JPEG_799x533 = image_bytes((799, 533))

# The Orsta-Data-47k features (dataset card; docs/vtriune.md §1).
RATIO = pa.struct(
    [
        (k, pa.float32())
        for k in ("iou_max_label_first", "iou_max_iou_first", "iou_completeness", "map", "map50", "map75")
    ]
)
ORSTA_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("images", pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
        ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
        ("ability", pa.string()),
        (
            "reward_model",
            pa.struct(
                [
                    ("answer", pa.string()),
                    ("ground_truth", pa.string()),
                    ("accuracy_ratio", pa.float32()),
                    ("format_ratio", pa.float32()),
                    ("verifier", pa.string()),
                    (
                        "verifier_parm",
                        pa.struct([("det_verifier_normalized", pa.bool_()), ("det_reward_ratio", RATIO)]),
                    ),
                ]
            ),
        ),
        ("extra_info", pa.struct([("id", pa.string()), ("image_path", pa.string())])),
    ]
)

# The two real rows of docs/vtriune.md §1.
MATH_ROW = {
    "data_source": "mm_math",
    "images": [{"bytes": PNG, "path": "images/51284809.png"}],
    "prompt": [
        {
            "content": "<image>As shown in the figure, point D is the midpoint of line segment AC, "
            "$BC = \\frac{1}{2}AB$, and $BD = 1$cm. What is the length of AB?",
            "role": "user",
        }
    ],
    "ability": "math",
    "reward_model": {
        "answer": "4",
        "ground_truth": "\\boxed{4}",
        "accuracy_ratio": 1.0,
        "format_ratio": 0.0,
        "verifier": "mathverify",
        "verifier_parm": {"det_verifier_normalized": None, "det_reward_ratio": None},
    },
    "extra_info": {"id": None, "image_path": "images/51284809.png"},
}
DET_PROMPT = (
    "<image>\nLocate all objects of the designated class present in the image:\n- dog collar\n- shiba dog\n\n"
    "Begin by clearly explaining your thought process enclosed within <think> and </think> tags. Afterward, "
    "present your final detection results enclosed within <answer> and </answer> tags.\nFor example:\n<think>\n"
    "Your detailed reasoning process here.\n</think>\n<answer>\n[{'bbox_2d': [x1,y1,x2,y2],'label': label_name}]\n</answer>"
)
DET_BOXES = (
    "[{'bbox_2d': [484, 227, 818, 998], 'label': 'shiba dog'}, {'bbox_2d': [106, 142, 473, 998], 'label': 'shiba dog'}, "
    "{'bbox_2d': [274, 468, 427, 652], 'label': 'dog collar'}, {'bbox_2d': [490, 522, 609, 611], 'label': 'dog collar'}]"
)
DET_ROW = {
    "data_source": "v3det_train",
    "images": [{"bytes": JPEG_799x533, "path": "images/a00004438/18_1069_21403958025_8b8e8e3b4f_c.jpg"}],
    "prompt": [{"content": DET_PROMPT, "role": "user"}],
    "ability": "cv_detection",
    "reward_model": {
        "answer": DET_BOXES,
        "ground_truth": f"<answer>\n{DET_BOXES}\n</answer>",
        "accuracy_ratio": 1.0,
        "format_ratio": 0.1,
        "verifier": "detection",
        "verifier_parm": {
            "det_verifier_normalized": True,
            "det_reward_ratio": {
                "iou_max_label_first": 1.0,
                "iou_max_iou_first": 0.0,
                "iou_completeness": 0.3,
                "map": 0.0,
                "map50": 0.0,
                "map75": 0.0,
            },
        },
    },
    "extra_info": {
        "id": "v3det-18_1069",
        "image_path": "images/a00004438/18_1069_21403958025_8b8e8e3b4f_c.jpg",
    },
}
DET_PARAMS = {
    "coords": "pixel",
    "weights": {"iou": 1.0, "iou_first": 0.0, "map": 0.0, "map50": 0.0, "map75": 0.0},
    "completeness": 0.3,
}
# A plain verl row as examples/data_preprocess/geo3k.py writes it.
GEO3K_PROBLEM = "<image>Chords $\\overline{A C}$ and $\\overline{D F}$ are equidistant from the center. If the radius of $\\odot G$ is 26 find $A C$."
GEO3K_ROW = {
    "data_source": "hiyouga/geometry3k",
    "prompt": [
        {
            "content": GEO3K_PROBLEM
            + " You FIRST think about the reasoning process as an internal monologue and then "
            "provide the final answer. The reasoning process MUST BE enclosed within <think> </think> tags. "
            "The final answer MUST BE put in \\boxed{}.",
            "role": "user",
        }
    ],
    "images": [{"bytes": PNG, "path": None}],
    "ability": "math",
    "reward_model": {"style": "rule", "ground_truth": "48"},
    "extra_info": {"split": "train", "index": 0, "answer": "48", "question": GEO3K_PROBLEM},
}


def write(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def write_fixture(tmp_path: Path) -> None:
    write(tmp_path / "orsta" / "train_mixed_2.parquet", [MATH_ROW, DET_ROW], ORSTA_SCHEMA)
    write(tmp_path / "orsta" / "geo3k_train.parquet", [GEO3K_ROW])


def read(tmp_path: Path, path="orsta", **options) -> list[Draft | Reject]:
    ctx = SourceContext("orsta", "train", 0, tmp_path, {})
    return list(get_source("orsta").read(OrstaOptions(path=path, **options), ctx))


def summary(records) -> list[tuple[str, str]]:
    return [(r.id or r.original_id, r.reason) if isinstance(r, Reject) else (r.id, r.task) for r in records]


def test_real_rows_from_a_directory(tmp_path):
    write_fixture(tmp_path)
    recs = read(tmp_path)
    # files in name order; ids carry the file stem when a directory holds several files
    assert summary(recs) == [
        ("geo3k_train-0", "math"),
        ("train_mixed_2-row1", "math"),
        ("train_mixed_2-v3det-18_1069", "detection"),
    ]
    geo, math, det = recs
    assert (geo.ground_truth, geo.answer, geo.original_id, geo.verifier) == ("48", "48", "0", None)
    assert (geo.accuracy_weight, geo.format_weight) == (None, None)
    assert (
        geo.prompt[0].content == GEO3K_ROW["prompt"][0]["content"] and geo.file == "orsta/geo3k_train.parquet"
    )
    assert geo.images == [ImageBytes(PNG, None)]

    assert (math.ground_truth, math.answer, math.original_id) == ("4", "4", "row1")
    assert (math.verifier, math.verifier_params, math.accuracy_weight, math.format_weight) == (
        None,
        {},
        1.0,
        0.0,
    )
    assert [(m.role, m.content) for m in math.prompt] == [("user", MATH_ROW["prompt"][0]["content"])]
    assert math.images == [ImageBytes(PNG, "images/51284809.png")]

    assert (det.ground_truth, det.answer, det.box_frame, det.verifier) == ("", "", "norm1000", None)
    assert det.boxes == [
        DraftBox("shiba dog", 484, 227, 818, 998),
        DraftBox("shiba dog", 106, 142, 473, 998),
        DraftBox("dog collar", 274, 468, 427, 652),
        DraftBox("dog collar", 490, 522, 609, 611),
    ]
    assert det.verifier_params == DET_PARAMS
    assert (det.accuracy_weight, det.format_weight) == (1.0, 0.1)  # float32 0.1 read back as 0.1
    assert det.prompt[0].content == DET_PROMPT and det.file == "orsta/train_mixed_2.parquet"
    assert det.images == [ImageBytes(JPEG_799x533, DET_ROW["images"][0]["path"])]


def test_single_file_ids_and_source_filter(tmp_path):
    write_fixture(tmp_path)
    path = "orsta/train_mixed_2.parquet"
    assert summary(read(tmp_path, path=path)) == [("row1", "math"), ("v3det-18_1069", "detection")]
    # rows of other Orsta sources are passed over, not rejected: they belong to other recipe entries
    assert summary(read(tmp_path, source_filter=["v3det_train"])) == [
        ("train_mixed_2-v3det-18_1069", "detection")
    ]
    assert summary(read(tmp_path, source_filter=["nope"])) == []


@pytest.mark.parametrize(
    "task_map, expected",
    [
        ({"v3det_train": "grounding"}, ["math", "math", "grounding"]),  # by data_source (D³ style)
        (
            {"math": "science", "mm_math": "chart"},
            ["science", "chart", "detection"],
        ),  # data_source before ability
    ],
)
def test_task_map(tmp_path, task_map, expected):
    write_fixture(tmp_path)
    recs = read(tmp_path, task_map=task_map)
    assert [r.task for r in recs] == expected
    assert recs[2].verifier_params == DET_PARAMS  # grounding shares the box params


def _row(base: dict, **changes) -> dict:
    row = json.loads(json.dumps({k: v for k, v in base.items() if k != "images"}))
    row["images"] = [{"bytes": PNG, "path": "x.png"}]
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            row[outer] = {**row[outer], inner: value}
        else:
            row[key] = value
    return row


@pytest.mark.parametrize(
    "row, expected",
    [
        (_row(GEO3K_ROW), "math"),
        (_row(GEO3K_ROW, ability="vl_chart"), "chart"),
        (_row(GEO3K_ROW, ability="puzzle_reasoning"), "puzzle"),
        (_row(GEO3K_ROW, ability="cv_grounding"), "grounding_needs_boxes"),
        (_row(GEO3K_ROW, ability="vqa"), "unknown_task"),
        (_row(GEO3K_ROW, ability=None), "unknown_task"),
        (_row(GEO3K_ROW, ability="math_chart"), "unknown_task"),  # two task words: ambiguous
        (_row(GEO3K_ROW, **{"reward_model.style": "model"}), "not_rule_verifiable"),
        (_row(MATH_ROW, **{"reward_model.verifier": "detection"}), "verifier_mismatch"),
        (_row(MATH_ROW, **{"reward_model.verifier": "llm_judge"}), "verifier_mismatch"),
        (_row(DET_ROW, ability=None), "detection"),  # the detection verifier decides
        (_row(DET_ROW, **{"reward_model.verifier": "mathverify"}), "verifier_mismatch"),
        (_row(GEO3K_ROW, reward_model=None), "malformed_record"),
        (_row(GEO3K_ROW, **{"reward_model.ground_truth": None}), "missing_answer"),
        (_row(GEO3K_ROW, **{"reward_model.ground_truth": "  "}), "missing_answer"),
        (_row(GEO3K_ROW, **{"reward_model.ground_truth": 48}), "math"),
        (_row(GEO3K_ROW, **{"reward_model.accuracy_ratio": "high"}), "malformed_record"),
        (_row(GEO3K_ROW, prompt=[]), "malformed_record"),
        (_row(GEO3K_ROW, prompt="<image>Find x."), "malformed_record"),
        (_row(GEO3K_ROW, prompt=[{"role": "tool", "content": "x"}]), "malformed_record"),
        (_row(GEO3K_ROW, images=[{"bytes": None, "path": None}]), "malformed_record"),
        (
            _row(
                DET_ROW,
                **{
                    "reward_model.ground_truth": "<answer>\n[{'bbox_2d': [1, 2, 3], 'label': 'a'}]\n</answer>"
                },
            ),
            "malformed_record",
        ),
        (
            _row(
                DET_ROW, **{"reward_model.ground_truth": "<answer>\n__import__('os').system('x')\n</answer>"}
            ),
            "malformed_record",
        ),
    ],
)
def test_rows_map_to_a_task_or_a_reject(tmp_path, row, expected):
    write(tmp_path / "rows.parquet", [row])
    [rec] = read(tmp_path, path="rows.parquet")
    if expected == "grounding_needs_boxes":  # a grounding row with a math ground truth is not a box list
        assert isinstance(rec, Reject) and rec.reason == "malformed_record"
    elif isinstance(rec, Reject):
        assert (rec.reason, rec.file) == (expected, "rows.parquet") and rec.detail
    else:
        assert rec.task == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<answer>\n[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}]\n</answer>", [DraftBox("dog", 1, 2, 3, 4)]),
        ("[{'bbox_2d': [1.5, 2, 3, 4], 'label': \"men's shoe\"}]", [DraftBox("men's shoe", 1.5, 2, 3, 4)]),
        (
            "[{'label': 'men\\'s \\u00e9t\\xe9', 'bbox_2d': [0, 0, 9, 9], 'score': None}]",
            [DraftBox("men's été", 0, 0, 9, 9)],
        ),
        (
            '[{"bbox_2d": [10, 10, 5, 5], "label": "Car"}]',
            [DraftBox("Car", 10, 10, 5, 5)],
        ),  # inverted: the pipeline rejects it
        ("<answer>\n[]\n</answer>", []),
    ],
)
def test_parse_boxes(text, expected):
    assert parse_boxes(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "[{'bbox_2d': (1, 2, 3, 4), 'label': 'dog'}]",  # tuples are not parsed
        "[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'},]",  # neither are trailing commas
        "[{'bbox_2d': [1, 2, 3, True], 'label': 'dog'}]",
        "[{'bbox_2d': [1, 2, 3, 4]}]",
        "[{'bbox_2d': [1, 2, 3, 4], 'label': 'dog}]",
        "{'bbox_2d': [1, 2, 3, 4], 'label': 'dog'}",
        "[[1, 2, 3, 4]]",
        "[{'bbox_2d': [1, 2, 3, 1" + "0" * 400 + "], 'label': 'dog'}]",  # beyond float range
        "",
    ],
)
def test_parse_boxes_rejects_what_it_cannot_read(text):
    with pytest.raises(BadRecord, match="box"):
        parse_boxes(text)


def test_python_literal_keeps_quotes_and_keywords_apart():
    assert python_literal("{'a': \"it's\", 'b': [True, None, 'None'], 'c': 'say \"hi\"'}") == {
        "a": "it's",
        "b": [True, None, "None"],
        "c": 'say "hi"',
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\\boxed{4}", "4"),
        ("  \\boxed{\\frac{1}{2}} ", "\\frac{1}{2}"),
        ("The answer is \\boxed{x^{2}+1}.", "x^{2}+1"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("48", "48"),
        ("\\boxed{4", "\\boxed{4"),  # unbalanced: kept as is
    ],
)
def test_unbox(text, expected):
    assert unbox(text) == expected


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, r"orsta: file not found"),
        (lambda p: p.mkdir(), r"orsta: no \*\.parquet files in the directory"),
        (
            lambda p: (p.mkdir(), (p / "a.parquet").write_bytes(b"not parquet")),
            r"a\.parquet: not a readable parquet file",
        ),
    ],
)
def test_unreadable_sources_raise_source_error(tmp_path, setup, message):
    setup(tmp_path / "orsta")
    with pytest.raises(SourceError, match=message):
        read(tmp_path)


def test_reading_twice_gives_identical_drafts(tmp_path):
    write_fixture(tmp_path)
    assert read(tmp_path) == read(tmp_path)


def test_end_to_end_build_converts_norm1000_boxes_to_pixels(tmp_path):
    write_fixture(tmp_path)
    reasoning = {"adapter": "orsta", "data_source": "orsta_reasoning",
                 "options": {"path": "orsta", "source_filter": ["mm_math", "hiyouga/geometry3k"]}}  # fmt: skip
    if "math" not in verifier_names():  # the math verifier lands separately; until then score format only
        reasoning["reward"] = {"verifier": "format"}
    recipe = {
        "name": "orsta-e2e",
        "sources": [
            {
                "adapter": "orsta",
                "data_source": "v3det_train",
                "options": {"path": "orsta", "source_filter": ["v3det_train"]},
            },
            reasoning,
        ],
    }
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    out = tmp_path / "out"
    build_dataset(tmp_path / "recipe.yaml", out)
    manifest = json.loads((out / "manifest.json").read_text())
    det_src, reason_src = manifest["sources"]["v3det_train"], manifest["sources"]["orsta_reasoning"]
    assert (det_src["read"], det_src["kept"], det_src["rejected"]) == (1, 1, 0)
    assert (reason_src["read"], reason_src["kept"], reason_src["rejected"]) == (2, 2, 0)
    rows = {r["id"]: r for f in manifest["files"] for r in pq.read_table(out / f["path"]).to_pylist()}
    det = rows["v3det_train/train_mixed_2-v3det-18_1069"]
    assert det["image_sizes"] == [{"width": 799, "height": 533}]
    first = det["boxes"][0]
    # 0-1000 -> pixels of the 799x533 image: x * 799 / 1000, y * 533 / 1000
    assert (first["label"], first["x1"], first["y1"], first["x2"], first["y2"]) == pytest.approx(
        ("shiba dog", 484 * 0.799, 227 * 0.533, 818 * 0.799, 998 * 0.533)
    )
    assert json.loads(det["ground_truth"])[3] == {
        "bbox_2d": [391.51, 278.23, 486.59, 325.66],
        "label": "dog collar",
    }
    assert det["reward"]["verifier"] == "detection"
    assert json.loads(det["reward"]["verifier_params"]) == DET_PARAMS
    assert (det["reward"]["accuracy_weight"], det["reward"]["format_weight"]) == (1.0, 0.1)
    assert det["images"][0] == {"bytes": JPEG_799x533, "path": DET_ROW["images"][0]["path"]}
    assert det["prompt"] == [{"role": "user", "content": DET_PROMPT}]
    math = rows["orsta_reasoning/train_mixed_2-row1"]
    assert (math["task"], math["ground_truth"], math["answer"]) == ("math", "4", "4")
    assert (math["reward"]["accuracy_weight"], math["reward"]["format_weight"]) == (1.0, 0.0)
    assert rows["orsta_reasoning/geo3k_train-0"]["reward"]["format_weight"] == 0.0  # task default
    assert math["provenance"] == {
        "source": "orsta",
        "original_id": "row1",
        "license": None,
        "revision": None,
        "file": "orsta/train_mixed_2.parquet",
    }
