"""`ocr_vqa`: text-reading VQA (TextVQA, EST-VQA style) -> ocr samples.

V-Triune's OCR data is English OCR QA from LLaVA-OneVision and EST-VQA (paper §5.1.1); its
rule filter keeps English only and answers math-verify can check (paper §5.1.1.1). Layouts (`format`):

- `textvqa`: `{"dataset_name", "dataset_version", "data": [{"question_id", "image_id",
  "question", "answers": [10 human answers], ...}]}`; the image is `<images>/<image_id>.jpg`, the id
  `question_id`. Test-split entries carry no answers: `missing_answer`.
- `list`: a JSON list of `{"image" | "image_name" | "image_path", "question", "answer" | "answers"
  (a string or a list)}`, id `question_id` / `id`, else `row<n>`; `jsonl`: the same, one per line
  (else `line<n>`). `auto` picks by suffix and top-level shape.

Several answers are votes: answers are grouped case- and whitespace-insensitively, the biggest group
wins (ties: the group answered first), its first spelling is the ground truth and one spelling of
every other group goes to `verifier_params={"alternatives": [...]}` (most votes first), which the
`ocr` verifier also accepts. Opt-in filters: `min_answer_agreement` (the winner needs that many
votes, else `low_answer_agreement`), `max_answer_chars` (`answer_too_long`) and `english_only`
(`not_english`). The English test is a heuristic: every letter (Unicode `isalpha`) of the question
and the ground truth must be an ASCII letter. It catches Chinese EST-VQA rows and accented
languages, not French or German written without accents.

Prompt: pool `ocr`, field `question`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

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
from triune_data.sources.common.fields import BadRecord, image_file, number, number_text, text
from triune_data.sources.common.ids import record_id


class OcrVqaOptions(SourceOptions):
    path: str = Field(description="TextVQA annotation JSON, a JSON list of rows, or JSONL.")
    images: str = Field(description="Folder the images are in (TextVQA: `<image_id>.jpg`).")
    format: Literal["auto", "textvqa", "list", "jsonl"] = Field(
        "auto", description="auto: .jsonl -> jsonl; an object with `data` -> textvqa; a JSON list -> list."
    )
    min_answer_agreement: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Reject rows whose most common answer has fewer votes."
    )
    english_only: bool = Field(
        False, description="Reject questions/answers with non-ASCII letters (V-Triune: true)."
    )
    max_answer_chars: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Reject longer ground truths."
    )


def _records(path: Path, fmt: str, label: str) -> tuple[str, Iterator[tuple[str, Any]]]:
    """(layout, iterator of (fallback id, record or Reject))."""
    if fmt == "jsonl" or (fmt == "auto" and path.suffix == ".jsonl"):
        return "list", ((f"line{n}", row) for n, row in iter_jsonl(path, label=label))
    want = {"textvqa": "an object with a `data` list", "list": "a JSON list of rows"}.get(
        fmt, "TextVQA JSON or a list"
    )
    kind, rows = json_rows(path, "data", missing=f"{path}: expected {want}")
    if fmt in ("auto", "textvqa") and kind == "data":
        return "textvqa", ((f"row{n}", row) for n, row in enumerate(rows, start=1))  # type: ignore[arg-type]
    if fmt in ("auto", "list") and kind == "list":
        return "list", ((f"row{n}", row) for n, row in enumerate(rows, start=1))  # type: ignore[arg-type]
    raise SourceError(f"{path}: expected {want}")


def vote(answers: list[str]) -> tuple[str, int, list[str]]:
    """(ground truth, its votes, alternatives) from answers in annotator order."""
    groups: dict[str, list] = {}  # normalised -> [votes, first position, first spelling]
    for i, a in enumerate(answers):
        g = groups.setdefault(" ".join(a.split()).casefold(), [0, i, a.strip()])
        g[0] += 1
    ranked = sorted(groups.values(), key=lambda g: (-g[0], g[1]))
    return ranked[0][2], ranked[0][0], [g[2] for g in ranked[1:]]


def _answers(value: Any) -> list[str]:
    """Non-blank answers as text (numbers allowed; blank ones are no vote)."""
    out = []
    for v in value if isinstance(value, list) else [] if value is None else [value]:
        if number(v):
            out.append(number_text(v, "answer"))
        elif not isinstance(v, str):
            raise BadRecord("malformed_record", f"answers are not text: {str(value)[:80]!r}")
        elif v.strip():
            out.append(text(v, "answer"))
    if not out:
        raise BadRecord("missing_answer", "no answer")
    return out


def english(s: str) -> bool:
    return all(c.isascii() for c in s if c.isalpha())


@register_source("ocr_vqa", options=OcrVqaOptions, tasks=("ocr",))
def read_ocr_vqa(opts: OcrVqaOptions, ctx: SourceContext) -> Iterator[Draft | Reject]:
    layout, records = _records(ctx.path(opts.path), opts.format, opts.path)
    root = ctx.path(opts.images)
    for rid, row in records:
        if isinstance(row, Reject):
            yield row
            continue
        rid = record_id(row, ("question_id", "id"), position=rid)
        try:
            yield _draft(rid, row, layout, opts, ctx, root)
        except BadRecord as bad:
            yield Reject(reason=bad.reason, detail=bad.detail, id=rid, original_id=rid, file=opts.path)


def _draft(rid: str, row: Any, layout: str, opts: OcrVqaOptions, ctx: SourceContext, root: Path) -> Draft:
    if not isinstance(row, dict):
        raise BadRecord("malformed_record", f"record is a {type(row).__name__}, not an object")
    question = text(row.get("question"), "question")
    if layout == "textvqa":
        iid = row.get("image_id")
        if not isinstance(iid, str) or not iid.strip():
            raise BadRecord("malformed_record", f"image_id is missing or not text: {str(iid)[:40]!r}")
        image = image_file(root, f"{iid}.jpg", ctx=ctx)
        answers = row.get("answers")
    else:
        names = (row[k] for k in ("image", "image_name", "image_path") if k in row)
        image = image_file(root, next(names, None), ctx=ctx)
        answers = row["answers"] if "answers" in row else row.get("answer")
    truth, votes, alternatives = vote(_answers(answers))
    if opts.min_answer_agreement and votes < opts.min_answer_agreement:
        raise BadRecord(
            "low_answer_agreement",
            f"top answer {truth[:40]!r} has {votes} < {opts.min_answer_agreement} votes",
        )
    if opts.max_answer_chars and len(truth) > opts.max_answer_chars:
        raise BadRecord(
            "answer_too_long", f"answer of {len(truth)} > {opts.max_answer_chars} characters: {truth[:40]!r}"
        )
    if opts.english_only and not (english(question) and english(truth)):
        raise BadRecord("not_english", f"non-ASCII letters in {question[:30]!r} / {truth[:30]!r}")
    prompt = ctx.prompt("ocr", rid, num_images=1, question=question)
    params = {"alternatives": alternatives} if alternatives else {}
    return Draft(rid, "ocr", prompt, truth, truth, [image], rid, verifier_params=params, file=opts.path)
