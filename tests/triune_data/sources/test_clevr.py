import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from triune_data.build import build_dataset
from triune_data.errors import SourceError
from triune_data.sources.base import Draft, PromptPool, Reject, SourceContext, get_source
from triune_data.sources.clevr import ClevrOptions, count
from triune_data.sources.common.fields import BadRecord
from triune_data.verifiers import verifier_names

POOLS = {"counting": PromptPool(("{question}",), (("Answer with a number.",),))}


pytestmark = pytest.mark.usefixtures("json_reader")  # every test parsed and streamed


def question(index: int, text: str, answer: str | None, image: int = 0) -> dict:
    q = {
        "image_index": image,
        "split": "val",
        "image_filename": f"CLEVR_val_{image:06d}.png",
        "question": text,
        "question_family_index": 39,
        "question_index": index,
        "program": [{"inputs": [], "function": "scene", "value_inputs": []}],
    }
    if answer is not None:
        q["answer"] = answer
    return q


# CLEVR's questions file: counting questions among yes/no, colour, size and integer comparisons.
CLEVR = {
    "info": {"split": "val", "version": "1.0", "date": "2/14/2017", "license": "CC BY 4.0"},
    "questions": [
        question(0, "How many large things are either cyan metallic cylinders or yellow blocks?", "1"),
        question(1, "Are there any other things that are the same shape as the big metallic object?", "no"),
        question(2, "What color is the small rubber sphere?", "cyan", image=1),
        question(3, "How many other things are the same material as the tiny purple cube?", "3", image=1),
        question(4, "Is the number of brown objects greater than the number of red spheres?", "yes", image=1),
        question(5, "What number of small blue things are there?", "0", image=2),
    ],
}

# R1-V / Reason-RFT SuperCLEVR rows.
JSONL = [
    {
        "image_path": "./images/superCLEVR_new_025000.png",
        "question": "How many different items are there?",
        "ground_truth": 4,
    },
    {
        "image_path": "./images/superCLEVR_new_025001.png",
        "question": "How many bicycles are there?",
        "ground_truth": 9,
    },
]


def read(tmp_path: Path, name: str, content, **options) -> list[Draft | Reject]:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in content))
    else:
        path.write_text(json.dumps(content))
    ctx = SourceContext("clevr_count", "train", 0, tmp_path, POOLS)
    return list(get_source("clevr").read(ClevrOptions(path=name, images="images", **options), ctx))


def outcome(r: Draft | Reject) -> tuple[str, str]:
    return (r.original_id, r.reason) if isinstance(r, Reject) else (r.id, r.answer)


def test_clevr_questions_keep_counting_and_reject_the_rest(tmp_path):
    recs = read(tmp_path, "CLEVR_val_questions.json", CLEVR)
    assert [outcome(r) for r in recs] == [
        ("0", "1"),
        ("1", "not_counting"),
        ("2", "not_counting"),
        ("3", "3"),
        ("4", "not_counting"),  # compare_integer questions answer yes/no
        ("5", "0"),
    ]
    d = recs[3]
    assert d.task == "counting" and d.ground_truth == "3" and d.boxes == []
    assert d.prompt[0].content == (
        "<image>How many other things are the same material as the tiny purple cube?\n\nAnswer with a number."
    )
    assert d.images[0].name == "CLEVR_val_000001.png"
    assert d.images[0].file == str(tmp_path / "images" / "CLEVR_val_000001.png")
    assert d.file == "CLEVR_val_questions.json" and d.verifier is None


def test_test_split_questions_without_answers(tmp_path):
    data = {"info": {"split": "test"}, "questions": [question(0, "How many cubes?", None)]}
    (r,) = read(tmp_path, "CLEVR_test_questions.json", data)
    assert r.reason == "missing_answer"


def test_superclevr_jsonl(tmp_path):
    recs = read(tmp_path, "superclevr.jsonl", JSONL)
    assert [outcome(r) for r in recs] == [("line1", "4"), ("line2", "9")]
    assert recs[0].images[0].name == "images/superCLEVR_new_025000.png"  # "./" dropped
    assert recs[0].images[0].file == str(tmp_path / "images" / "images" / "superCLEVR_new_025000.png")


def test_explicit_jsonl_format_reads_lines_of_any_suffix_but_json(tmp_path):
    recs = read(
        tmp_path, "superclevr.txt", "".join(json.dumps(r) + "\n" for r in JSONL).encode(), format="jsonl"
    )
    assert [outcome(r) for r in recs] == [("line1", "4"), ("line2", "9")]
    recs = read(tmp_path, "superclevr.json", JSONL, format="jsonl")
    assert [outcome(r) for r in recs] == [("row1", "4"), ("row2", "9")]


def test_json_list_of_rows_and_r1v_solutions(tmp_path):
    rows = [
        {
            "id": "clevr_cogen_17",
            "image": "a.png",
            "problem": "How many spheres?",
            "solution": "<answer> 3 </answer>",
        },
        {
            "id": "clevr_cogen_18",
            "image": "b.png",
            "problem": "How many cubes?",
            "solution": "<answer>two</answer>",
        },
    ]
    recs = read(tmp_path, "rows.json", rows)
    assert [outcome(r) for r in recs] == [("clevr_cogen_17", "3"), ("clevr_cogen_18", "not_counting")]


@pytest.mark.parametrize(
    "value, expected",
    [
        (4, "4"),
        ("4", "4"),
        ("03", "3"),
        (" 10 ", "10"),
        (7.0, "7"),
        ("<answer>12</answer>", "12"),
        (0, "0"),
        ("yes", "not_counting"),
        ("cyan", "not_counting"),
        ("3.5", "not_counting"),
        (3.5, "not_counting"),
        (-1, "not_counting"),
        ("-1", "not_counting"),
        (True, "not_counting"),
        ([3], "not_counting"),
        ("<answer>3", "not_counting"),
        ("9" * 20, "not_counting"),  # not a plausible count
        (None, "missing_answer"),
        ("  ", "missing_answer"),
    ],
)
def test_count_parsing(value, expected):
    try:
        got = count(value)
    except BadRecord as bad:
        got = bad.reason
    assert got == expected


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"image_path": "a.png", "ground_truth": 3}, "malformed_record"),  # no question
        ({"question": "How many?", "ground_truth": 3}, "malformed_record"),  # no image
        ({"image_path": "a.png", "question": "How many?"}, "missing_answer"),
        ({"image_path": "a.png", "question": "How many?", "ground_truth": "many"}, "not_counting"),
        ({"image_path": "a.png", "question": "How m\udcc3ny?", "ground_truth": 3}, "invalid_text_encoding"),
        ({"image_path": 7, "question": "How many?", "ground_truth": 3}, "malformed_record"),
        ("How many?", "malformed_record"),
    ],
)
def test_bad_rows_are_rejected(tmp_path, row, reason):
    recs = read(tmp_path, "q.jsonl", [JSONL[0], row, JSONL[1]])
    assert [outcome(r)[1] for r in recs] == ["4", reason, "9"]
    assert recs[1].detail and recs[1].file == "q.jsonl" and recs[1].original_id == "line2"


def test_broken_jsonl_lines_are_rejects(tmp_path):
    content = json.dumps(JSONL[0]).encode() + b"\n{not json\n" + b'{"question": "\xff"}\n'
    recs = read(tmp_path, "q.jsonl", content)
    assert [outcome(r)[1] for r in recs] == ["4", "malformed_record", "invalid_text_encoding"]


@pytest.mark.parametrize(
    "name, content, options, message",
    [
        ("q.json", b'{"info": {}}', {}, r"q\.json: expected an object with a `questions` list or a list of"),
        ("q.json", b'"questions"', {}, r"q\.json: expected an object .* got a JSON str"),
        ("q.json", b"[]", {"format": "clevr"}, r"q\.json: expected an object with a `questions` list, got"),
        ("q.json", b'{"questions": []}', {"format": "jsonl"}, r"q\.json: expected a list of question rows"),
        ("q.jsonl", b"{}", {"format": "clevr"}, r"q\.jsonl: CLEVR questions come as one JSON object"),
        ("q.json", b'{"questions": [', {}, r"q\.json: not valid JSON"),
        ("q.json", b"\xff\xfe{}", {}, r"q\.json: not valid JSON"),
    ],
)
def test_unreadable_files_raise_source_error(tmp_path, name, content, options, message):
    with pytest.raises(SourceError, match=message):
        read(tmp_path, name, content, **options)


def test_end_to_end_build(tmp_path):
    (tmp_path / "images").mkdir()
    for i in (0, 1):
        Image.new("RGB", (48, 32), (128, 128, 128)).save(tmp_path / "images" / f"CLEVR_val_{i:06d}.png")
    (tmp_path / "CLEVR_val_questions.json").write_text(json.dumps(CLEVR))  # image 2 is missing
    source = {
        "adapter": "clevr",
        "data_source": "clevr_count",
        "options": {"path": "CLEVR_val_questions.json", "images": "images"},
    }
    if (
        "counting" not in verifier_names()
    ):  # the counting verifier lands separately; until then score format only
        source["reward"] = {"verifier": "format"}
    recipe = {
        "name": "clevr-e2e",
        "prompts": {"counting": {"templates": ["{question}"]}},
        "sources": [source],
    }
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    out = tmp_path / "out"
    build_dataset(tmp_path / "recipe.yaml", out)
    manifest = json.loads((out / "manifest.json").read_text())
    src = manifest["sources"]["clevr_count"]
    assert (src["read"], src["kept"], src["rejected"]) == (6, 2, 4)
    assert src["rejected_by_reason"] == {"missing_image_file": 1, "not_counting": 3}
    rows = [r for f in manifest["files"] for r in pq.read_table(out / f["path"]).to_pylist()]
    assert [(r["id"], r["answer"], r["ground_truth"], r["task"]) for r in rows] == [
        ("clevr_count/0", "1", "1", "counting"),
        ("clevr_count/3", "3", "3", "counting"),
    ]
    assert rows[0]["prompt"] == [
        {
            "role": "user",
            "content": "<image>How many large things are either cyan metallic cylinders or yellow blocks?",
        }
    ]
    assert rows[0]["image_sizes"] == [{"width": 48, "height": 32}]
