import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from triune_data.build import build_dataset
from triune_data.errors import SourceError
from triune_data.sources.base import (
    Draft,
    ImageBytes,
    ImageFile,
    PromptPool,
    Reject,
    SourceContext,
    get_source,
)
from triune_data.sources.vqa import VqaOptions
from triune_data.verifiers import verifier_names

POOLS = {
    "math": PromptPool(("{question}",), (("Put the final answer in \\boxed{}.",),)),
    "chart": PromptPool(("Look at the chart. {question}",)),
    "puzzle": PromptPool(("{question}",)),
    "science": PromptPool(("{question}",)),
    "mcq": PromptPool(("{question}\nOptions:\n{options}",)),
}

# MathVista testmini.json: an object of problems keyed by pid (real rows, shortened metadata).
MATHVISTA = {
    "1": {
        "question": "In Figure, a cumin canister of mass $m=0.40 \\mathrm{~kg}$ slides across a horizontal "
        "frictionless counter with speed $v=0.50 \\mathrm{~m} / \\mathrm{s}$. It then runs into and compresses "
        "a spring of spring constant $k=750 \\mathrm{~N} / \\mathrm{m}$. By what distance $d$ is the spring compressed?",
        "image": "images/1.jpg",
        "choices": None,
        "unit": None,
        "precision": 1,
        "answer": "1.2",
        "question_type": "free_form",
        "answer_type": "float",
        "pid": "1",
        "metadata": {"split": "testmini", "language": "english", "source": "SciBench"},
    },
    "5": {
        "question": "Find $m\\angle H$",
        "image": "images/5.jpg",
        "choices": ["97", "102", "107", "122"],
        "unit": None,
        "precision": None,
        "answer": "97",
        "question_type": "multi_choice",
        "answer_type": "text",
        "pid": "5",
        "metadata": {"split": "testmini", "language": "english", "source": "Geometry3K"},
    },
    "6": {
        "question": "As shown in the figure, if CB = 4.0, DB = 7.0, and D is the midpoint of AC, then the length of AC is ()",
        "image": "images/6.jpg",
        "choices": ["6cm", "7cm", "4cm", "5cm"],
        "answer": "6cm",
        "question_type": "multi_choice",
        "answer_type": "text",
        "pid": "6",
    },
}
MATHVISTA_COLUMNS = {"id": "pid", "options": "choices"}

CHARTQA = [
    {"imgname": "01499440003158.png", "query": "What is the value of Slovenia in the graph?", "label": "1"},
    {"imgname": "two_col_100571.png", "query": "What color does China represent?", "label": "Pink"},
    {"imgname": "two_col_100571.png", "query": "What is colombia data?", "label": ""},
]
CHARTQA_COLUMNS = {"question": "query", "answer": "label", "image": "imgname"}

# PuzzleVQA ships JSON lines named .json; options are numbers, the answer a string.
PUZZLEVQA = [
    {
        "image": "images/circle_size_number/circle_size_number_0000.png",
        "question": "What is the missing number of the part denoted with a question mark?",
        "options": [6, 3, 4, 2],
        "answer": "4",
        "caption": "There are 6 numbered circles with varying sizes arranged in a ring.",
    },
    {
        "image": "images/color_grid/color_grid_0000.png",
        "question": "What is the color of the missing part denoted with a question mark?",
        "options": ["green", "red", "orange", "yellow"],
        "answer": "purple",
    },
]

# Geometry3K (InterGPS data.json): the answer is a letter into `choices`.
GEOMETRY3K = [
    {
        "id": 11,
        "problem_text": "In \\odot X, A B = 30, C D = 30, and m \\widehat C Z = 40. Find m \\widehat A B.",
        "choices": ["30", "40", "60", "80"],
        "answer": "D",
        "image": "11/img_diagram.png",
    },
    {
        "id": 12,
        "problem_text": "Find x.",
        "choices": ["1", "2"],
        "answer": "E",
        "image": "12/img_diagram.png",
    },
]


def image_bytes(size=(32, 24), fmt="JPEG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 60, 30)).save(buf, fmt)
    return buf.getvalue()


def write_images(root: Path, names) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(image_bytes(fmt="PNG" if name.endswith(".png") else "JPEG"))


def read(tmp_path: Path, **options) -> list[Draft | Reject]:
    ctx = SourceContext("vqa_src", "train", 0, tmp_path, POOLS)
    return list(get_source("vqa").read(VqaOptions(**options), ctx))


def summary(records) -> list[tuple[str, str]]:
    return [(r.id or r.original_id, r.reason) if isinstance(r, Reject) else (r.id, r.task) for r in records]


def test_mathvista_object_of_records_with_column_mapping(tmp_path):
    (tmp_path / "testmini.json").write_text(json.dumps(MATHVISTA))
    recs = read(tmp_path, path="testmini.json", task="math", columns=MATHVISTA_COLUMNS)
    assert summary(recs) == [("1", "math"), ("5", "multiple_choice"), ("6", "multiple_choice")]
    d = recs[0]
    assert d.prompt[0].content.startswith("<image>In Figure, a cumin canister")
    assert d.prompt[0].content.endswith("compressed?\n\nPut the final answer in \\boxed{}.")
    assert (d.answer, d.ground_truth, d.original_id, d.verifier) == ("1.2", "1.2", "1", None)
    assert d.images == [ImageFile(file=str(tmp_path / "images/1.jpg"), name="images/1.jpg")]
    assert d.file == "testmini.json"
    assert recs[1].detail == "4 options (mcq: drop)"


@pytest.mark.parametrize(
    "mcq, expected",
    [
        # keep: an `mcq` sample, ground truth the letter, options as lines in the `mcq` pool
        (
            "keep",
            (
                "A",
                "mcq",
                {"options": ["97", "102", "107", "122"]},
                "Find $m\\angle H$\nOptions:\nA. 97\nB. 102",
            ),
        ),
        # as_math: open-ended with the option's text as ground truth, options not shown
        ("as_math", ("97", None, {}, "Find $m\\angle H$\n\nPut the final answer")),
    ],
)
def test_multiple_choice_modes(tmp_path, mcq, expected):
    (tmp_path / "testmini.json").write_text(json.dumps(MATHVISTA))
    recs = read(tmp_path, path="testmini.json", task="math", columns=MATHVISTA_COLUMNS, mcq=mcq)
    truth, verifier, params, prompt_start = expected
    d = recs[1]
    assert (d.ground_truth, d.answer, d.verifier, d.verifier_params) == (truth, truth, verifier, params)
    assert d.prompt[0].content.removeprefix("<image>").startswith(prompt_start)
    assert recs[2].ground_truth == ("A" if mcq == "keep" else "6cm")


def test_chartqa_list_with_image_folder(tmp_path):
    (tmp_path / "test_human.json").write_text(json.dumps(CHARTQA))
    recs = read(tmp_path, path="test_human.json", task="chart", images="png", columns=CHARTQA_COLUMNS)
    assert summary(recs) == [("row1", "chart"), ("row2", "chart"), ("row3", "missing_answer")]
    assert recs[1].prompt[0].content == "<image>Look at the chart. What color does China represent?"
    assert recs[1].ground_truth == "Pink"
    assert recs[1].images == [ImageFile(str(tmp_path / "png/two_col_100571.png"), "two_col_100571.png")]


def test_puzzlevqa_json_lines_under_a_json_name(tmp_path):
    (tmp_path / "circle_size_number.json").write_text("\n".join(json.dumps(r) for r in PUZZLEVQA) + "\n")
    recs = read(tmp_path, path="circle_size_number.json", task="puzzle", mcq="keep")
    assert summary(recs) == [("line1", "puzzle"), ("line2", "answer_not_in_options")]
    d = recs[0]
    assert (d.ground_truth, d.verifier_params) == ("C", {"options": ["6", "3", "4", "2"]})
    assert d.prompt[0].content.endswith("A. 6\nB. 3\nC. 4\nD. 2")
    assert d.images[0].name == "images/circle_size_number/circle_size_number_0000.png"


def test_geometry3k_answer_letters(tmp_path):
    (tmp_path / "geo.json").write_text(json.dumps(GEOMETRY3K))
    cols = {"question": "problem_text", "options": "choices"}
    recs = read(tmp_path, path="geo.json", task="math", columns=cols, answer_letter=True, mcq="keep")
    assert summary(recs) == [("11", "math"), ("12", "answer_not_in_options")]
    assert (recs[0].ground_truth, recs[0].verifier_params["options"][3]) == ("D", "80")
    as_math = read(tmp_path, path="geo.json", task="math", columns=cols, answer_letter=True, mcq="as_math")
    assert as_math[0].ground_truth == "80"


def write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=2)


HF_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
PARQUET_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("images", pa.list_(HF_IMAGE)),
        ("extra", pa.struct([("source", pa.string())])),
    ]
)


def test_parquet_images_as_bytes_lists_and_placeholders_in_the_text(tmp_path):
    a, b = image_bytes((20, 10)), image_bytes((10, 20))
    rows = [
        {"id": "p1", "question": "How many sides?", "answer": "6", "images": [{"bytes": a, "path": "hex.jpg"}]},
        {"id": "p2", "question": "Compare <image> with <image>: which is taller?", "answer": "second",
         "images": [{"bytes": a, "path": "a.jpg"}, {"bytes": b, "path": None}]},
        {"id": "p3", "question": "Path only?", "answer": "7", "images": [{"bytes": None, "path": "pics/x.png"}]},
    ]  # fmt: skip
    (tmp_path / "data").mkdir()
    write_parquet(tmp_path / "data" / "train-00000.parquet", rows, PARQUET_SCHEMA)
    recs = read(tmp_path, path="data/train-00000.parquet", task="science", images="root")
    assert summary(recs) == [("p1", "science"), ("p2", "science"), ("p3", "science")]
    assert recs[0].images == [ImageBytes(a, "hex.jpg")]
    assert recs[1].images == [ImageBytes(a, "a.jpg"), ImageBytes(b, None)]
    # the text's own placeholders stay where they are: no prefix added
    assert recs[1].prompt[0].content == "Compare <image> with <image>: which is taller?"
    assert recs[2].images == [ImageFile(str(tmp_path / "root/pics/x.png"), "pics/x.png")]
    assert recs[0].file == "data/train-00000.parquet"


def test_parquet_directory_and_dotted_columns(tmp_path):
    rows = [{"id": None, "question": "Q?", "answer": "1", "images": [], "extra": {"source": "What is 2+2?"}}]
    (tmp_path / "d").mkdir()
    for name in ("b.parquet", "a.parquet"):
        write_parquet(tmp_path / "d" / name, rows, PARQUET_SCHEMA)
    recs = read(tmp_path, path="d", task="math", columns={"question": "extra.source"})
    assert [(r.id, r.file, r.prompt[0].content) for r in recs] == [
        ("a-row1", "d/a.parquet", "What is 2+2?\n\nPut the final answer in \\boxed{}."),
        ("b-row1", "d/b.parquet", "What is 2+2?\n\nPut the final answer in \\boxed{}."),
    ]


def test_datasets_saved_to_disk(tmp_path):
    import datasets

    feats = datasets.Features(
        {"pid": datasets.Value("string"), "query": datasets.Value("string"), "label": datasets.Value("string"),
         "image": datasets.Image()}
    )  # fmt: skip
    png = image_bytes(fmt="PNG")
    train = datasets.Dataset.from_dict(
        {"pid": ["c1", "c2"], "query": ["Highest bar?", "Lowest bar?"], "label": ["2019", "2015"],
         "image": [{"bytes": png, "path": "c1.png"}, {"bytes": png, "path": "c2.png"}]},
        features=feats,
    )  # fmt: skip
    datasets.DatasetDict({"train": train, "test": train.select([1])}).save_to_disk(str(tmp_path / "hf"))
    cols = {"id": "pid", "question": "query", "answer": "label"}
    recs = read(tmp_path, path="hf", task="chart", hf_split="test", columns=cols)
    assert summary(recs) == [("c2", "chart")]
    assert recs[0].images == [ImageBytes(png, "c2.png")] and recs[0].ground_truth == "2015"
    with pytest.raises(SourceError, match=r"hf: set `hf_split` to one of \['test', 'train'\]"):
        read(tmp_path, path="hf", task="chart", columns=cols)


GOOD = {"id": "q1", "question": "What is 3+4?", "answer": 7, "image": "q1.png"}


@pytest.mark.parametrize(
    "row, reason",
    [
        (GOOD, None),
        ({**GOOD, "answer": 2.5}, None),
        (["not", "an", "object"], "malformed_record"),
        ({**GOOD, "question": ""}, "malformed_record"),
        ({**GOOD, "question": None}, "malformed_record"),
        ({**GOOD, "answer": None}, "missing_answer"),
        ({**GOOD, "answer": "  "}, "missing_answer"),
        ({**GOOD, "answer": True}, "malformed_record"),
        ({**GOOD, "answer": ["7", "seven"]}, "malformed_record"),
        ({**GOOD, "image": 5}, "malformed_record"),
        ({**GOOD, "image": {"bytes": None, "path": None}}, "malformed_record"),
        ({**GOOD, "options": "A. 7 B. 8"}, "malformed_record"),
        ({**GOOD, "options": ["7", None]}, "malformed_record"),
        ({**GOOD, "options": [str(i) for i in range(27)]}, "malformed_record"),
        ({**GOOD, "options": ["6", "8"]}, "answer_not_in_options"),
        ({**GOOD, "question": "caf\udce9?"}, "invalid_text_encoding"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(tmp_path, row, reason):
    (tmp_path / "rows.json").write_text(json.dumps([row]))
    [rec] = read(tmp_path, path="rows.json", task="math", mcq="keep")
    if reason is None:
        assert isinstance(rec, Draft) and rec.ground_truth == str(row["answer"])
    else:
        assert isinstance(rec, Reject) and (rec.reason, rec.file) == (reason, "rows.json") and rec.detail


def test_jsonl_bad_lines_and_ids(tmp_path):
    lines = [
        json.dumps(GOOD).encode(),
        b'{"question": "broken',
        b"\xff\xfe not utf-8",
        json.dumps({**GOOD, "id": None}).encode(),
    ]
    (tmp_path / "rows.jsonl").write_bytes(b"\n".join(lines) + b"\n\n")
    recs = read(tmp_path, path="rows.jsonl", task="math")
    assert summary(recs) == [
        ("q1", "math"),
        ("line2", "malformed_record"),
        ("line3", "invalid_text_encoding"),
        ("line4", "math"),
    ]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("rows.json", b'[{"question": ', r"rows\.json: not valid JSON"),
        ("rows.json", b'"a string"', r"rows\.json: expected a JSON list of records"),
        ("rows.json", b'{"a": 1}', r"rows\.json: expected a JSON list of records"),
        ("rows.txt", b"[]", r"rows\.txt: cannot tell the format"),
        ("rows.parquet", b"PAR1 not really", r"rows\.parquet: not a readable parquet file"),
        ("missing.jsonl", None, r"missing\.jsonl: cannot read"),
        ("missing.json", None, r"missing\.json: file not found"),
        ("empty_dir", "dir", r"empty_dir: a directory with neither parquet files"),
    ],
)
def test_unreadable_sources_raise_source_error_naming_the_file(tmp_path, name, content, message):
    if content == "dir":
        (tmp_path / name).mkdir()
    elif content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(SourceError, match=message):
        read(tmp_path, path=name, task="math")


def test_reading_twice_gives_identical_drafts(tmp_path):
    (tmp_path / "testmini.json").write_text(json.dumps(MATHVISTA))
    opts = dict(path="testmini.json", task="math", columns=MATHVISTA_COLUMNS, mcq="keep")
    assert read(tmp_path, **opts) == read(tmp_path, **opts)


def test_end_to_end_build(tmp_path):
    (tmp_path / "mathvista").mkdir()
    (tmp_path / "mathvista" / "testmini.json").write_text(json.dumps(MATHVISTA))
    write_images(tmp_path / "mathvista", ["images/1.jpg", "images/5.jpg", "images/6.jpg"])
    (tmp_path / "chartqa.json").write_text(json.dumps(CHARTQA))
    write_images(tmp_path / "png", ["01499440003158.png"])  # two_col_100571.png is missing
    # The math verifier lands separately; until then score format only.
    reward = {} if "math" in verifier_names() else {"verifier": "format"}
    recipe = {
        "name": "vqa-e2e",
        "prompts": {k: {"templates": list(p.templates)} for k, p in POOLS.items()},
        "sources": [
            {"adapter": "vqa", "data_source": "mathvista", "reward": reward,
             "options": {"path": "mathvista/testmini.json", "task": "math", "columns": MATHVISTA_COLUMNS}},
            {"adapter": "vqa", "data_source": "chartqa", "reward": reward,
             "options": {"path": "chartqa.json", "task": "chart", "images": "png", "columns": CHARTQA_COLUMNS}},
        ],
    }  # fmt: skip
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    out = tmp_path / "out"
    build_dataset(tmp_path / "recipe.yaml", out)
    manifest = json.loads((out / "manifest.json").read_text())
    mv, cq = manifest["sources"]["mathvista"], manifest["sources"]["chartqa"]
    assert (mv["read"], mv["kept"], mv["rejected"]) == (3, 1, 2)
    assert mv["rejected_by_reason"] == {"multiple_choice": 2}
    assert (cq["read"], cq["kept"], cq["rejected"]) == (3, 1, 2)
    assert cq["rejected_by_reason"] == {"missing_answer": 1, "missing_image_file": 1}
    rows = [r for f in manifest["files"] for r in pq.read_table(out / f["path"]).to_pylist()]
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"mathvista/1", "chartqa/row1"}
    m = by_id["mathvista/1"]
    assert (m["task"], m["category"], m["ground_truth"], m["image_sizes"]) == (
        "math",
        "reasoning",
        "1.2",
        [{"width": 32, "height": 24}],
    )
    assert m["provenance"]["source"] == "vqa" and m["images"][0]["path"] == "images/1.jpg"
    assert (
        by_id["chartqa/row1"]["prompt"][0]["content"]
        == "<image>Look at the chart. What is the value of Slovenia in the graph?"
    )


def test_end_to_end_multiple_choice_kept_for_the_mcq_verifier(tmp_path):
    (tmp_path / "testmini.json").write_text(json.dumps(MATHVISTA))
    write_images(tmp_path, ["images/1.jpg", "images/5.jpg", "images/6.jpg"])
    options = {"path": "testmini.json", "task": "math", "columns": MATHVISTA_COLUMNS, "mcq": "keep"}
    recipe = {
        "name": "vqa-mcq",
        "prompts": {k: {"templates": list(p.templates)} for k, p in POOLS.items()},
        "sources": [{"adapter": "vqa", "data_source": "mathvista", "options": options}],
    }
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))
    build_dataset(tmp_path / "recipe.yaml", tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["sources"]["mathvista"]["kept"] == 3
    rows = {
        r["id"]: r for f in manifest["files"] for r in pq.read_table(tmp_path / "out" / f["path"]).to_pylist()
    }
    assert rows["mathvista/1"]["reward"]["verifier"] == "math"
    mcq = rows["mathvista/6"]
    assert (mcq["ground_truth"], mcq["answer"], mcq["reward"]["verifier"]) == ("A", "A", "mcq")
    assert json.loads(mcq["reward"]["verifier_params"]) == {"options": ["6cm", "7cm", "4cm", "5cm"]}
    assert mcq["prompt"][0]["content"].endswith("Options:\nA. 6cm\nB. 7cm\nC. 4cm\nD. 5cm")
