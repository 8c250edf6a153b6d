"""Hostile records through every adapter: each one kind of bad input, each a reject with a reason
(or, for a one-document file, one error line naming the file), never a crash or a hang.

Built from patterns, not examples: every JSONL adapter gets every kind of hostile line, every
one-document JSON format every kind of hostile document (parsed whole and streamed), every
adapter with a text answer every non-finite number, every table-shaped adapter every column
that can hold bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.triune_data.sources.test_contract import KITS, pools, read
from triune_data.errors import SourceError
from triune_data.sources import base
from triune_data.sources.base import Draft, Reject, SourceContext, get_source

DEEP = 100_000
JSONL_ADAPTERS = ["clevr", "ocr_vqa", "odvg", "refcoco", "vqa"]


def _with_extra(valid: dict, raw_value: str) -> bytes:
    return (json.dumps(valid)[:-1] + ', "extra": ' + raw_value + "}").encode()


def _not_utf8(valid: dict) -> bytes:
    line = json.dumps(valid).encode()
    at = line.index(b'": "') + 4  # inside the first string value
    return line[:at] + b"\xff\xfe" + line[at:]


# kind -> (hostile line from a valid record, expected reason)
HOSTILE_LINES: dict[str, tuple[Callable[[dict], bytes], str]] = {
    "deep-array-line": (lambda v: b"[" * DEEP + b"]" * DEEP, "malformed_record"),
    "deep-object-line": (lambda v: b'{"a":' * DEEP + b"1" + b"}" * DEEP, "malformed_record"),
    "deep-field": (lambda v: _with_extra(v, "[" * DEEP + "]" * DEEP), "malformed_record"),
    "unclosed-deep-field": (lambda v: _with_extra(v, "{" * DEEP), "malformed_record"),
    "integer-5000-digits": (lambda v: _with_extra(v, "1" * 5000), "malformed_record"),
    "float-5000-digits": (lambda v: _with_extra(v, "0." + "5" * 5000), "malformed_record"),
    "not-utf8": (_not_utf8, "invalid_text_encoding"),
    "raw-control-character": (lambda v: _with_extra(v, '"a\x00b"'), "malformed_record"),
    "truncated": (lambda v: json.dumps(v)[:-3].encode(), "malformed_record"),
}


def _jsonl(tmp: Path, lines: list[bytes]) -> None:
    (tmp / "records.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize("adapter", JSONL_ADAPTERS)
@pytest.mark.parametrize("kind", HOSTILE_LINES)
def test_a_hostile_line_is_one_reject(adapter, kind, tmp_path):
    kit = KITS[adapter]
    assert kit is not None
    v0, v1, v2 = kit.valid(0, "a"), kit.valid(1, "b"), kit.valid(2, "c")
    make, reason = HOSTILE_LINES[kind]
    options = kit.write(tmp_path, [v0, v2])
    _jsonl(tmp_path, [json.dumps(v0).encode(), make(v1), json.dumps(v2).encode()])
    ctx = SourceContext(f"{adapter}_src", "train", 0, tmp_path, pools())
    out = list(get_source(adapter).read(options, ctx))
    assert [type(r) for r in out] == [Draft, Reject, Draft], out
    rej = out[1]
    assert isinstance(rej, Reject)
    assert (rej.reason, rej.id, rej.file) == (reason, "line2", "records.jsonl"), rej
    assert len(rej.detail) < 300  # a short detail, never the hostile text itself


@pytest.mark.parametrize("adapter", JSONL_ADAPTERS)
@pytest.mark.parametrize(
    "line",
    [
        lambda v: json.dumps({**v, "pad": "x" * 10_000}).encode(),  # valid JSON, only too long
        lambda v: b"\0" * 50_000,  # a sparse file: one "line" of NUL bytes, no newline anywhere
        lambda v: b"[" * 50_000,
    ],
    ids=["long-json", "nul-bytes", "brackets"],
)
def test_a_line_past_the_line_limit_is_one_reject_and_never_held(adapter, line, tmp_path, monkeypatch):
    monkeypatch.setattr(base, "MAX_LINE_BYTES", 4096)
    kit = KITS[adapter]
    assert kit is not None
    options = kit.write(tmp_path, [kit.valid(0, "a")])
    _jsonl(
        tmp_path,
        [
            json.dumps(kit.valid(0, "a")).encode(),
            line(kit.valid(1, "b")),
            json.dumps(kit.valid(2, "c")).encode(),
        ],
    )
    ctx = SourceContext(f"{adapter}_src", "train", 0, tmp_path, pools())
    out = list(get_source(adapter).read(options, ctx))
    assert [type(r) for r in out] == [Draft, Reject, Draft], out
    assert out[1].reason == "malformed_record" and "longer than 4096 bytes" in out[1].detail  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------------
# Non-finite numbers where text is expected (JSON NaN / Infinity, float columns).

ANSWER_KEYS = {"clevr": "ground_truth", "ocr_vqa": "answer", "vqa": "answer"}


@pytest.mark.parametrize("adapter", sorted(ANSWER_KEYS))
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_a_non_finite_answer_is_a_reject_not_the_text_nan(adapter, value, tmp_path):
    kit = KITS[adapter]
    assert kit is not None
    bad = {**kit.valid(1, "b"), ANSWER_KEYS[adapter]: value}
    out = read(adapter, tmp_path, [kit.valid(0, "a"), bad, kit.valid(2, "c")])
    assert [type(r) for r in out] == [Draft, Reject, Draft], out
    assert out[1].reason == "non_finite_number", out[1]  # type: ignore[union-attr]


def _orsta(tmp: Path, rows: list[dict], schema: pa.Schema | None = None) -> list[Draft | Reject]:
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp / "rows.parquet")
    ctx = SourceContext("orsta_src", "train", 0, tmp, pools())
    opts = get_source("orsta").options.model_validate({"path": "rows.parquet"})
    return list(get_source("orsta").read(opts, ctx))


def _orsta_row(i: int, **reward: Any) -> dict:
    kit = KITS["orsta"]
    assert kit is not None
    row = kit.valid(i, f"r{i}")
    row["reward_model"] = {**row["reward_model"], **reward}
    return row


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("field", ["ground_truth", "answer"])
def test_orsta_non_finite_numbers_in_text_fields_are_rejects(tmp_path, value, field):
    rows = [_orsta_row(i, ground_truth=float(i + 1), answer=float(i + 1)) for i in range(3)]
    rows[1]["reward_model"][field] = value
    out = _orsta(tmp_path, rows)
    assert [type(r) for r in out] == [Draft, Reject, Draft], out
    assert out[1].reason == "non_finite_number"  # type: ignore[union-attr]
    assert out[0].ground_truth == "1.0"  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------------
# Orsta's box ground truth: a Python literal parsed without eval, within the JSON bounds.

BOX = "{'bbox_2d': [1, 2, 30, 40], 'label': 'dog'}"


@pytest.mark.parametrize(
    "gt",
    [
        "<answer>\n" + "[" * 50_000 + "]" * 50_000 + "\n</answer>",
        "[" * 50_000,
        "[" + "{'a': " * 20_000 + "1" + "}" * 20_000 + "]",
        "[{'bbox_2d': [1, 2, 30, " + "4" * 5000 + "], 'label': 'dog'}]",
        "[" + ", ".join([BOX] * 10) + ", (1, 2)]",
    ],
    ids=["deep-50k", "unclosed-deep", "deep-objects", "integer-5000-digits", "tuple"],
)
def test_orsta_hostile_box_ground_truth_is_one_reject(tmp_path, gt):
    rows = [_orsta_row(i, ground_truth=f"[{BOX}]") for i in range(3)]
    rows[1]["reward_model"]["ground_truth"] = gt
    for r in rows:
        r["ability"] = "cv_detection"
    out = _orsta(tmp_path, rows)
    assert [type(r) for r in out] == [Draft, Reject, Draft], out
    assert out[1].reason == "malformed_record" and len(out[1].detail) < 300  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------------
# Parquet string columns holding bytes that are not UTF-8 (Arrow does not validate on read).

BAD = b"caf\xe9 \xff"


def _bad_strings(values: Sequence[bytes | None]) -> pa.Array:
    return pa.array(values, pa.binary()).view(pa.string())


def _orsta_table_with_bad(column: str) -> pa.Table:
    good = pa.Table.from_pylist([_orsta_row(i) for i in range(3)])
    if column in ("data_source", "ability"):
        col = _bad_strings(
            [str(v).encode() if i != 1 else BAD for i, v in enumerate(good[column].to_pylist())]
        )
        return good.set_column(good.schema.get_field_index(column), column, col)
    rows = good.to_pylist()
    # Nested columns: rebuild with a binary leaf, then view the leaf as string.
    if column == "prompt":
        contents = [str(r["prompt"][0]["content"]).encode() for r in rows]
        contents[1] = b"<image>" + BAD
        struct = pa.StructArray.from_arrays(
            [pa.array(["user"] * 3), _bad_strings(contents)], names=["role", "content"]
        )
        col = pa.ListArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()), struct)
    elif column == "ground_truth":
        gts = [r["reward_model"]["ground_truth"].encode() for r in rows]
        gts[1] = BAD
        col = pa.StructArray.from_arrays(
            [_bad_strings(gts), pa.array(["rule"] * 3)], names=["ground_truth", "style"]
        )
        column = "reward_model"
    elif column == "image_path":
        paths = [r["images"][0]["path"].encode() for r in rows]
        paths[1] = BAD + b".png"
        struct = pa.StructArray.from_arrays(
            [pa.array([None] * 3, pa.binary()), _bad_strings(paths)], names=["bytes", "path"]
        )
        col = pa.ListArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()), struct)
        column = "images"
    else:
        raise AssertionError(column)
    return good.set_column(good.schema.get_field_index(column), column, col)


@pytest.mark.parametrize("column", ["ability", "prompt", "ground_truth", "image_path", "data_source"])
def test_orsta_bytes_that_are_not_utf8_reject_one_row(tmp_path, column):
    table = _orsta_table_with_bad(column)
    with pytest.raises(UnicodeDecodeError):
        table.to_pylist()  # what crashed the build before
    pq.write_table(table, tmp_path / "rows.parquet")
    ctx = SourceContext("orsta_src", "train", 0, tmp_path, pools())
    out = list(get_source("orsta").read(get_source("orsta").options(path="rows.parquet"), ctx))
    assert [type(r) for r in out] == [Draft, Reject, Draft], out
    rej = out[1]
    assert isinstance(rej, Reject)
    assert (rej.reason, rej.id, rej.file) == ("invalid_text_encoding", "r1", "rows.parquet")
    top = "reward_model" if column == "ground_truth" else "images" if column == "image_path" else column
    assert top in rej.detail


def test_orsta_a_row_of_unreadable_data_source_is_not_counted_under_a_filter(tmp_path):
    """With `source_filter`, rows of other data_sources are passed over uncounted (they belong to
    other recipe entries); a data_source that is not text belongs to none of them."""
    pq.write_table(_orsta_table_with_bad("data_source"), tmp_path / "rows.parquet")
    ctx = SourceContext("orsta_src", "train", 0, tmp_path, pools())
    opts = get_source("orsta").options(path="rows.parquet", source_filter=["geo"])
    assert [r.id for r in get_source("orsta").read(opts, ctx)] == ["r0", "r2"]


def test_vqa_parquet_question_not_utf8(tmp_path):
    rows = [
        {"id": f"q{i}", "question": f"What is {i}?", "answer": str(i), "image": f"img{i}.png"}
        for i in range(3)
    ]
    table = pa.Table.from_pylist(rows)
    questions = [r["question"].encode() for r in rows]
    questions[1] = BAD
    table = table.set_column(1, "question", _bad_strings(questions))
    pq.write_table(table, tmp_path / "q.parquet")
    ctx = SourceContext("vqa_src", "train", 0, tmp_path, pools())
    out = list(get_source("vqa").read(get_source("vqa").options(path="q.parquet", task="math"), ctx))
    assert [type(r) for r in out] == [Draft, Reject, Draft]
    assert (out[1].reason, out[1].id, out[1].file) == ("invalid_text_encoding", "q1", "q.parquet")  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------------
# One-document JSON files: a hostile document is one error line naming the file, parsed or streamed.


def _coco(extra: str) -> tuple[str, str, dict]:
    doc = '{"images": [], "annotations": [], "categories": [], "x": ' + extra + "}"
    return "instances.json", doc, {"annotations": "instances.json", "images": "i"}


def _clevr(extra: str) -> tuple[str, str, dict]:
    return (
        "q.json",
        '{"questions": [{"question": "q", "answer": ' + extra + "}]}",
        {"path": "q.json", "images": "i"},
    )


def _textvqa(extra: str) -> tuple[str, str, dict]:
    return (
        "t.json",
        '{"data": [{"question": "q", "answers": [' + extra + "]}]}",
        {"path": "t.json", "images": "i"},
    )


def _refcoco(extra: str) -> tuple[str, str, dict]:
    opts = {"path": "r.json", "images": "i", "bbox_format": "xyxy"}
    return "r.json", '[{"image": "a.jpg", "expression": "dog", "bbox": ' + extra + "}]", opts


def _vqa(extra: str) -> tuple[str, str, dict]:
    return "v.json", '[{"question": "q", "answer": ' + extra + "}]", {"path": "v.json", "task": "math"}


DOCUMENTS = {"coco": _coco, "clevr": _clevr, "ocr_vqa": _textvqa, "refcoco": _refcoco, "vqa": _vqa}
HOSTILE_VALUES = {
    "deep": "[" * DEEP + "]" * DEEP,
    "deep-objects": '{"a":' * DEEP + "1" + "}" * DEEP,
    "integer-5000-digits": "1" * 5000,
}


@pytest.mark.parametrize("adapter", sorted(DOCUMENTS))
@pytest.mark.parametrize("value", HOSTILE_VALUES.values(), ids=HOSTILE_VALUES.keys())
def test_a_hostile_json_document_is_one_error_naming_the_file(adapter, value, tmp_path, json_reader):
    name, doc, options = DOCUMENTS[adapter](value)
    (tmp_path / name).write_text(doc)
    ctx = SourceContext(f"{adapter}_src", "train", 0, tmp_path, pools())
    spec = get_source(adapter)
    with pytest.raises(SourceError) as exc:
        list(spec.read(spec.options(**options), ctx))
    message = str(exc.value)
    assert name in message and "\n" not in message and len(message) < 400
    assert "refused" in message or "not valid JSON" in message


# ----------------------------------------------------------------------------------------------
# Source files that are not files: refused at once (a FIFO would block the build forever).


@pytest.mark.parametrize("adapter", JSONL_ADAPTERS)
@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero"])
def test_a_source_file_that_is_not_a_file_is_one_error(adapter, kind, tmp_path):
    import os

    from tests.triune_data.test_files import deadline

    kit = KITS[adapter]
    assert kit is not None
    options = kit.write(tmp_path, [kit.valid(0, "a")])
    target = tmp_path / "records.jsonl"
    target.unlink()
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    else:
        target.symlink_to("/dev/zero")
    ctx = SourceContext(f"{adapter}_src", "train", 0, tmp_path, pools())
    with deadline(20), pytest.raises(SourceError, match=r"records\.jsonl: (cannot read|a directory)"):
        list(get_source(adapter).read(options, ctx))
