"""`clevr`: CLEVR-style counting questions -> counting samples.

V-Triune's counting data is CLEVR in its Reason-RFT version (paper §5.1.1). Two layouts:

- `clevr`: `CLEVR_<split>_questions.json`, `{"info": {...}, "questions": [{"image_index",
  "image_filename", "question", "answer", "question_index", "program", ...}]}`. CLEVR also asks
  yes/no, colour, shape, size and material questions; only counting questions (the answer is a
  whole number) are kept, the others are rejected as `not_counting` so the split shows in the
  manifest. Test-split questions carry no answer: `missing_answer`. Id: `question_index`.
- `jsonl`: one question per line (or a JSON list of them), Reason-RFT / R1-V SuperCLEVR style
  `{"image_path": "./images/superCLEVR_new_025000.png", "question": ..., "ground_truth": 4}`;
  `image` / `problem` / `answer` / `solution` are accepted too, and R1-V's `"<answer> 3
  </answer>"` solutions are unwrapped. Id: `id` / `question_id`, else `line<n>` (`row<n>` in a list).

The question goes to pool `counting` (field `question`); answer and ground truth are the count as
a decimal integer string ("03" -> "3").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from triune_data.errors import SourceError
from triune_data.sources.base import (
    Draft,
    Reject,
    SourceContext,
    SourceOptions,
    iter_jsonl,
    json_rows,
    register_source,
)
from triune_data.sources.common.fields import BadRecord, first, image_file, number_text, text
from triune_data.sources.common.ids import record_id

_COUNT = re.compile(r"\s*(?:<answer>\s*(\d{1,9})\s*</answer>|(\d{1,9}))\s*")  # linear: no nested repeats
_KEYS = {  # layout -> (image, question, answer, id) keys, first present wins
    "clevr": (["image_filename"], ["question"], ["answer"], ["question_index"]),
    "jsonl": (
        ["image_path", "image", "image_filename"],
        ["question", "problem"],
        ["ground_truth", "answer", "solution"],
        ["id", "question_id"],
    ),
}


class ClevrOptions(SourceOptions):
    path: str = Field(description="CLEVR questions JSON, or JSONL / a JSON list of question rows.")
    images: str = Field(description="Folder the image file names are relative to.")
    format: Literal["auto", "clevr", "jsonl"] = Field(
        "auto",
        description="Row layout; auto: an object with `questions` is clevr, .jsonl or a JSON list is jsonl.",
    )


def _records(path: Path, fmt: str, label: str) -> tuple[str, Iterator[tuple[str, Any]]]:
    """(layout, iterator of (fallback id, row or Reject)); `.jsonl` files are read line by line."""
    if path.suffix == ".jsonl" or (fmt == "jsonl" and path.suffix != ".json"):
        if fmt == "clevr":
            raise SourceError(f"{path}: CLEVR questions come as one JSON object, not JSONL")
        return "jsonl", ((f"line{n}", row) for n, row in iter_jsonl(path, label=label))
    want = {"clevr": "an object with a `questions` list", "jsonl": "a list of question rows"}
    expected = f"{path}: expected {want.get(fmt, ' or '.join(want.values()))}, got a JSON"
    kind, rows = json_rows(path, "questions", missing=f"{expected} dict")
    if fmt != "jsonl" and kind == "questions":
        return "clevr", ((f"q{n}", row) for n, row in enumerate(rows))  # type: ignore[arg-type]
    if fmt != "clevr" and kind == "list":
        return "jsonl", ((f"row{n}", row) for n, row in enumerate(rows, start=1))  # type: ignore[arg-type]
    raise SourceError(f"{expected} {'dict' if kind == 'questions' else kind}")


def count(value: Any) -> str:
    """The answer as a decimal count, or BadRecord (`missing_answer`, `not_counting`)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRecord("missing_answer", "no answer")
    if isinstance(value, float):
        number_text(value, "answer")  # NaN and infinity are no count
        value = int(value) if value.is_integer() else value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    m = _COUNT.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise BadRecord("not_counting", f"answer {str(value)[:40]!r} is not a count")
    return str(int(m.group(1) or m.group(2)))


@register_source("clevr", options=ClevrOptions, tasks=("counting",))
def read_clevr(opts: ClevrOptions, ctx: SourceContext) -> Iterator[Draft | Reject]:
    layout, records = _records(ctx.path(opts.path), opts.format, opts.path)
    image_keys, question_keys, answer_keys, id_keys = _KEYS[layout]
    root = ctx.path(opts.images)
    for rid, row in records:
        if isinstance(row, Reject):
            yield row
            continue
        try:
            if not isinstance(row, dict):
                raise BadRecord("malformed_record", f"record is a {type(row).__name__}, not an object")
            rid = record_id(row, id_keys, position=rid)
            answer = count(next((row[k] for k in answer_keys if k in row), None))
            question = text(first(row, question_keys, "question"), "question")
            image = image_file(root, first(row, image_keys, "image"), ctx=ctx)
        except BadRecord as bad:
            yield Reject(reason=bad.reason, detail=bad.detail, id=rid, original_id=rid, file=opts.path)
            continue
        prompt = ctx.prompt("counting", rid, num_images=1, question=question)
        yield Draft(rid, "counting", prompt, answer, answer, [image], rid, file=opts.path)
