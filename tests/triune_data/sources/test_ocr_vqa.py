import copy
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from triune_data.build import build_dataset
from triune_data.errors import SourceError
from triune_data.sources.base import Draft, ImageFile, PromptPool, Reject, SourceContext, get_source
from triune_data.sources.ocr_vqa import OcrVqaOptions, english, vote
from triune_data.verifiers import verifier_names

POOLS = {"ocr": PromptPool(("{question}",), (("Answer with the text as written.",),))}

# TextVQA v0.5.1 layout (real question/answer style; ten human answers per question).
TEXTVQA = {
    "dataset_type": "val",
    "dataset_name": "textvqa",
    "dataset_version": "0.5.1",
    "data": [
        {
            "question": "what is the brand of this camera?",
            "image_id": "003a8ae2ef43b901",
            "image_classes": ["Cassette deck", "Printer", "Camera"],
            "flickr_original_url": "https://farm2.staticflickr.com/4/5566811_bc00d504a6_o.jpg",
            "flickr_300k_url": "https://farm2.staticflickr.com/4/5566811_bc00d504a6_o.jpg",
            "image_width": 1024,
            "image_height": 664,
            "answers": ["nous les gosses", "dakota", "clos culombu", "dakota digital", "dakota",
                        "dakota", "dakota digital", "dakota digital", "dakota", "dakota"],
            "question_tokens": ["what", "is", "the", "brand", "of", "this", "camera"],
            "question_id": 34602,
            "set_name": "val",
        },
        {
            "question": "what does the small white text spell?",
            "image_id": "00685bc495504d61",
            "answers": ["Copenhagen", "copenhagen ", "COPENHAGEN", "thursday", "copenhagen",
                        "Thursday", "thursday", "thursday", "copenhagen", "thursday"],
            "question_id": 34603,
            "set_name": "val",
        },
        {
            "question": "what kind of beer is this?",
            "image_id": "00685bc495504d61",
            "answers": ["ale", "sublimely self-righteous ale", "stone", "self righteous", "stone ale",
                        "sublimely self-righteous ale", "stone", "ale", "self-righteous", "stone"],
            "question_id": 34604,
            "set_name": "val",
        },
        {"question": "what number is on the player's jersey?", "image_id": "0075b9e3a2ac3d3f",
         "question_id": 34605, "set_name": "test"},
    ],
}  # fmt: skip

# EST-VQA style list: English and Chinese scene-text questions, answer a string or a list.
ESTVQA = [
    {
        "id": 1,
        "image": "train_00001.jpg",
        "question": "What is the shop's name?",
        "answer": "STARBUCKS COFFEE",
    },
    {
        "id": 2,
        "image_name": "train_00002.jpg",
        "question": "这家店叫什么名字？",
        "answer": ["肯德基", "KFC", "肯德基"],
    },
    {"id": 3, "image": "train_00003.jpg", "question": "What is the speed limit?", "answer": 60},
]


pytestmark = pytest.mark.usefixtures("json_reader")  # every test parsed and streamed


def write_textvqa(tmp_path: Path, data=None) -> None:
    (tmp_path / "TextVQA_0.5.1_val.json").write_text(json.dumps(TEXTVQA if data is None else data))
    (tmp_path / "train_images").mkdir(exist_ok=True)
    for entry in (data or TEXTVQA)["data"]:
        Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "train_images" / f"{entry['image_id']}.jpg")


def read(
    tmp_path: Path, path="TextVQA_0.5.1_val.json", images="train_images", **options
) -> list[Draft | Reject]:
    ctx = SourceContext("textvqa", "train", 0, tmp_path, POOLS)
    return list(get_source("ocr_vqa").read(OcrVqaOptions(path=path, images=images, **options), ctx))


def summary(records) -> list[tuple[str, str]]:
    return [
        (r.id or r.original_id, r.reason) if isinstance(r, Reject) else (r.id, r.ground_truth)
        for r in records
    ]


def test_textvqa_majority_answer_and_alternatives(tmp_path):
    write_textvqa(tmp_path)
    recs = read(tmp_path)
    assert summary(recs) == [
        ("34602", "dakota"),
        ("34603", "Copenhagen"),  # 5 votes across spellings, first spelling wins; thursday has 5 too, later
        ("34604", "stone"),
        ("34605", "missing_answer"),
    ]
    d = recs[0]
    assert d.task == "ocr" and d.answer == "dakota" and d.original_id == "34602"
    assert d.verifier is None and d.verifier_params == {
        "alternatives": ["dakota digital", "nous les gosses", "clos culombu"]
    }
    assert (
        d.prompt[0].content == "<image>what is the brand of this camera?\n\nAnswer with the text as written."
    )
    assert d.images == [
        ImageFile(str(tmp_path / "train_images/003a8ae2ef43b901.jpg"), "003a8ae2ef43b901.jpg")
    ]
    assert d.file == "TextVQA_0.5.1_val.json"
    assert recs[1].verifier_params == {"alternatives": ["thursday"]}


@pytest.mark.parametrize(
    "answers, expected",
    [
        (["a"], ("a", 1, [])),
        (["b", "a", "a", "b"], ("b", 2, ["a"])),  # tie: the answer given first wins
        (
            [" Stone  Ale", "stone ale", "ale"],
            ("Stone  Ale", 2, ["ale"]),
        ),  # grouped ignoring case and spacing
        (["x", "y", "z", "y"], ("y", 2, ["x", "z"])),
    ],
)
def test_vote(answers, expected):
    assert vote(answers) == expected


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"min_answer_agreement": 4}, ["dakota", "Copenhagen", "low_answer_agreement", "missing_answer"]),
        (
            {"min_answer_agreement": 6},
            ["low_answer_agreement", "low_answer_agreement", "low_answer_agreement", "missing_answer"],
        ),
        ({"max_answer_chars": 6}, ["dakota", "answer_too_long", "stone", "missing_answer"]),
    ],
)
def test_filters(tmp_path, options, expected):
    write_textvqa(tmp_path)
    assert [s for _, s in summary(read(tmp_path, **options))] == expected


@pytest.mark.parametrize(
    "text, ok",
    [
        ("what is the brand?", True),
        ("STARBUCKS COFFEE 60", True),
        ("这家店叫什么名字？", False),
        ("café", False),
        ("", True),
    ],
)
def test_english_heuristic(text, ok):
    assert english(text) is ok


def test_est_vqa_list_and_english_only(tmp_path):
    (tmp_path / "estvqa.json").write_text(json.dumps(ESTVQA, ensure_ascii=False))
    recs = read(tmp_path, path="estvqa.json", images="imgs")
    assert summary(recs) == [("1", "STARBUCKS COFFEE"), ("2", "肯德基"), ("3", "60")]
    assert recs[1].verifier_params == {"alternatives": ["KFC"]}
    assert recs[1].images[0].name == "train_00002.jpg"
    english_only = read(tmp_path, path="estvqa.json", images="imgs", english_only=True)
    assert summary(english_only) == [("1", "STARBUCKS COFFEE"), ("2", "not_english"), ("3", "60")]


def test_jsonl_rows(tmp_path):
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in ESTVQA[:1]] + [
        b"{oops",
        b'{"image": "a.jpg", "question": "\xff?"}',
    ]
    (tmp_path / "ocr.jsonl").write_bytes(b"\n".join(lines))
    recs = read(tmp_path, path="ocr.jsonl", images="imgs")
    assert summary(recs) == [
        ("1", "STARBUCKS COFFEE"),
        ("line2", "malformed_record"),
        ("line3", "invalid_text_encoding"),
    ]


def _mutate(fn):
    data = copy.deepcopy(TEXTVQA)
    fn(data["data"][0])
    return data


@pytest.mark.parametrize(
    "data, reason",
    [
        (_mutate(lambda e: e.update(answers=[])), "missing_answer"),
        (_mutate(lambda e: e.update(answers=["", "  "])), "missing_answer"),
        (_mutate(lambda e: e.update(answers=None)), "missing_answer"),
        (_mutate(lambda e: e.update(answers=[{"answer": "dakota"}])), "malformed_record"),
        (_mutate(lambda e: e.update(answers=[None, "dakota"])), "malformed_record"),
        (_mutate(lambda e: e.pop("question")), "malformed_record"),
        (_mutate(lambda e: e.update(image_id=None)), "malformed_record"),
        (_mutate(lambda e: e.update(question="caf\udce9?")), "invalid_text_encoding"),
        (_mutate(lambda e: e.update(answers=["caf\udce9"])), "invalid_text_encoding"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(tmp_path, data, reason, json_reader):
    (tmp_path / "TextVQA_0.5.1_val.json").write_text(json.dumps(data))
    if json_reader == "streamed" and reason == "invalid_text_encoding":
        # A lone-surrogate escape: one reject when parsed whole, the file refused when streamed.
        with pytest.raises(SourceError, match=r"TextVQA_0\.5\.1_val\.json: not valid JSON"):
            read(tmp_path)
        return
    rec = read(tmp_path)[0]
    assert isinstance(rec, Reject) and (rec.reason, rec.original_id, rec.file) == (
        reason,
        "34602",
        "TextVQA_0.5.1_val.json",
    )


def test_non_object_records_in_a_list(tmp_path):
    (tmp_path / "rows.json").write_text(json.dumps([["a"], ESTVQA[0]]))
    assert summary(read(tmp_path, path="rows.json")) == [
        ("row1", "malformed_record"),
        ("1", "STARBUCKS COFFEE"),
    ]


@pytest.mark.parametrize(
    "content, fmt, message",
    [
        (b'{"data": [', "auto", r"val\.json: not valid JSON"),
        (b'{"questions": []}', "auto", r"val\.json: expected TextVQA JSON or a list"),
        (b"[]", "textvqa", r"val\.json: expected an object with a `data` list"),
        (b'{"data": []}', "list", r"val\.json: expected a JSON list of rows"),
    ],
)
def test_unreadable_files_raise_source_error_naming_the_file(tmp_path, content, fmt, message):
    (tmp_path / "val.json").write_bytes(content)
    with pytest.raises(SourceError, match=message):
        read(tmp_path, path="val.json", format=fmt)


def test_missing_file(tmp_path):
    with pytest.raises(SourceError, match=r"TextVQA_0\.5\.1_val\.json: file not found"):
        read(tmp_path)


def test_end_to_end_build(tmp_path):
    data = copy.deepcopy(TEXTVQA)
    data["data"].append(
        {
            "question": "what does the sign say?",
            "image_id": "00c359f294f7dcd9",
            "answers": ["stop"] * 10,
            "question_id": 34606,
        }
    )
    write_textvqa(tmp_path, data)
    (tmp_path / "train_images" / "00685bc495504d61.jpg").unlink()
    source = {
        "adapter": "ocr_vqa",
        "data_source": "textvqa",
        "options": {"path": "TextVQA_0.5.1_val.json", "images": "train_images", "min_answer_agreement": 3},
    }
    has_ocr = "ocr" in verifier_names()
    if not has_ocr:  # the ocr verifier lands separately; until then score format only
        source["reward"] = {"verifier": "format"}
    recipe = {"name": "ocr-e2e", "prompts": {"ocr": {"templates": ["{question}"]}}, "sources": [source]}
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    out = tmp_path / "out"
    build_dataset(tmp_path / "recipe.yaml", out)
    manifest = json.loads((out / "manifest.json").read_text())
    src = manifest["sources"]["textvqa"]
    # The format verifier has no `alternatives` param: that row is kept only once `ocr` exists.
    expected = {
        "missing_answer": 1,
        "missing_image_file": 2,
        **({} if has_ocr else {"invalid_verifier_params": 1}),
    }
    assert src["rejected_by_reason"] == expected
    assert (src["read"], src["kept"]) == (5, 2 if has_ocr else 1)
    rows = {r["id"]: r for f in manifest["files"] for r in pq.read_table(out / f["path"]).to_pylist()}
    row = rows["textvqa/34606"]
    assert (row["task"], row["category"], row["ground_truth"], row["answer"]) == (
        "ocr",
        "perception",
        "stop",
        "stop",
    )
    assert (
        row["image_sizes"] == [{"width": 40, "height": 30}]
        and row["images"][0]["path"] == "00c359f294f7dcd9.jpg"
    )
    assert row["provenance"]["original_id"] == "34606" and row["provenance"]["source"] == "ocr_vqa"
    if has_ocr:
        params = json.loads(rows["textvqa/34602"]["reward"]["verifier_params"])
        assert params["alternatives"] == ["dakota digital", "nous les gosses", "clos culombu"]
