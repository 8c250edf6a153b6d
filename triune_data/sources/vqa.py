"""`vqa`: generic visual question answering tables -> math, puzzle, science or chart samples.

Reads JSONL, JSON (a list of records, `{"data": [...]}`, or an object of records keyed by id as
MathVista's `testmini.json`), parquet (a file or a directory of them) or a `datasets` dataset saved
to disk (`hf_split` picks the split of a DatasetDict). A recipe maps the source's column names onto
ours, e.g. MathVista `{id: pid, options: choices}`, ChartQA `{question: query, answer: label, image:
imgname}`, PuzzleVQA as is. Images may be a path (relative to `images`, default the data file's
folder), a list of paths, HF `{"bytes", "path"}` dicts or raw bytes. The id is the `id` column,
else the row's position (`row<n>`, `line<n>`) or the JSON object's key.

A row is multiple-choice when its `options` value is a non-empty list. V-Triune drops those
(paper §5.1.1.1: easy to hack by guessing), so `mcq: drop` is the default (reject
`multiple_choice`). `keep` makes an `mcq` sample: pool `mcq` (fields `question`, `options` as
"A. x" lines), ground truth the correct letter, `verifier_params={"options": [...]}`. `as_math`
asks the question open-ended (options not shown) with the correct option's text as ground truth;
questions that refer to their choices ("Which of the following...") become ill-posed that way.
The correct option is `answer` itself, or with `answer_letter` the option that letter names.

Prompts: pool `<task>` with field `question`. A question that already holds `<image>`
placeholders (interleaved multi-image data) keeps them where they are: the pool adds no prefix
then, and the pipeline rejects a count that does not match the images.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from triune_data.sources.base import (
    Draft,
    Reject,
    SourceContext,
    SourceOptions,
    register_source,
)
from triune_data.sources.common.fields import BadRecord, number, number_text, text
from triune_data.sources.common.ids import own_id
from triune_data.sources.common.tabular import Row, TableFormat, image_sources, iter_rows, lookup, not_utf8
from triune_data.types import IMAGE_PLACEHOLDER

_LETTER = re.compile(r"\s*\(?([A-Za-z])\)?[.:]?\s*")


class VqaColumns(BaseModel):
    """Which column holds what (dotted names reach into nested records: `extra_info.answer`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field("id", description="Original id; rows without one get their position.")
    question: str = Field("question", description="Question text.")
    answer: str = Field("answer", description="Answer text, number, or the option letter (`answer_letter`).")
    image: str | None = Field(
        None, description="Image column (path, list, {bytes, path}, bytes); default: image, else images."
    )
    options: str = Field(
        "options", description="Choices of a multiple-choice row; empty or absent: free-form."
    )
    image_root: str | None = Field(
        None, description="Optional column with a per-row folder (under `images`) for the image paths."
    )


class VqaOptions(SourceOptions):
    path: str = Field(
        description="JSONL / JSON / parquet file, a directory of parquet files, or a save_to_disk directory."
    )
    task: Literal["math", "puzzle", "science", "chart"] = Field(
        description="Task (and prompt pool) of every row."
    )
    format: TableFormat = Field("auto", description="auto: from the suffix; a directory: parquet or hf_disk.")
    columns: VqaColumns = Field(default_factory=VqaColumns, description="Column mapping.")
    images: str | None = Field(
        None, description="Folder relative image paths resolve against (default: the data's folder)."
    )
    hf_split: str | None = Field(None, description="Split of a DatasetDict saved to disk.")
    answer_letter: bool = Field(False, description="The answer is a letter (A, B, ...) into `options`.")
    mcq: Literal["keep", "drop", "as_math"] = Field(
        "drop", description="Multiple-choice rows (V-Triune: drop)."
    )


def _scalar(value: Any, what: str) -> str:
    """A string or number as text; "missing_answer" when absent or blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRecord("missing_answer", f"no {what}")
    if number(value):
        return number_text(value, what)
    return text(value, what).strip()


class _Vqa:
    def __init__(self, opts: VqaOptions, ctx: SourceContext):
        self.opts, self.ctx, self.c = opts, ctx, opts.columns
        path = ctx.path(opts.path)
        self.root = ctx.path(opts.images) if opts.images else (path if path.is_dir() else path.parent)

    def draft(self, row: Row) -> Draft:
        rec, c, opts = row.value, self.c, self.opts
        if not isinstance(rec, dict):
            raise BadRecord("malformed_record", f"record is a {type(rec).__name__}, not an object")
        question = text(lookup(rec, c.question), "question")
        image = lookup(rec, c.image) if c.image else rec.get("image", rec.get("images"))
        root = self.root
        if c.image_root:
            root = root / text(lookup(rec, c.image_root), "image root")
        images = image_sources(image, root, ctx=self.ctx)
        answer = _scalar(lookup(rec, c.answer), "answer")
        options = self.options(lookup(rec, c.options))
        did = row.key
        verifier: str | None = None
        params: dict[str, Any] = {}
        pool: str = opts.task  # the prompt pool: the task's, or "mcq"
        fields = {"question": question}
        if options:
            if opts.mcq == "drop":
                raise BadRecord("multiple_choice", f"{len(options)} options (mcq: drop)")
            i = self.correct(answer, options)
            answer = options[i]  # as_math: open-ended, the option's text is the answer
            if opts.mcq == "keep":
                answer, verifier, params, pool = string.ascii_uppercase[i], "mcq", {"options": options}, "mcq"
                fields["options"] = "\n".join(
                    f"{string.ascii_uppercase[k]}. {o}" for k, o in enumerate(options)
                )
        # A question carrying its own placeholders keeps them where they are (no prefix added).
        n = 0 if IMAGE_PLACEHOLDER in question else len(images)
        prompt = self.ctx.prompt(pool, did, num_images=n, **fields)
        return Draft(
            did, opts.task, prompt, answer, answer, images, did, verifier=verifier, verifier_params=params,
            file=self.file(row.file),
        )  # fmt: skip

    def options(self, value: Any) -> list[str]:
        if value is None or value == []:
            return []
        ok = isinstance(value, list) and len(value) <= len(string.ascii_uppercase)
        if not ok or not all(number(v) or (isinstance(v, str) and v.strip()) for v in value):
            raise BadRecord(
                "malformed_record", f"options are not up to 26 texts or numbers: {str(value)[:80]!r}"
            )
        return [_scalar(v, "option") for v in value]

    def correct(self, answer: str, options: list[str]) -> int:
        """Index of the correct option: the letter's (`answer_letter`), else the one equal to the answer."""
        if self.opts.answer_letter:
            m = _LETTER.fullmatch(answer)
            i = string.ascii_uppercase.index(m[1].upper()) if m else -1
            if not 0 <= i < len(options):
                raise BadRecord(
                    "answer_not_in_options",
                    f"answer {answer[:20]!r} is not a letter among {len(options)} options",
                )
            return i
        if answer not in options:
            raise BadRecord("answer_not_in_options", f"answer {answer[:40]!r} is none of {str(options)[:80]}")
        return options.index(answer)

    def file(self, file: Path) -> str:
        """The data file as the recipe names it (a file inside a parquet directory: `<dir>/<name>`)."""
        if file == self.ctx.path(self.opts.path):
            return self.opts.path
        return f"{self.opts.path.rstrip('/')}/{file.name}"


@register_source("vqa", options=VqaOptions, tasks=("math", "puzzle", "science", "chart"))
def read_vqa(opts: VqaOptions, ctx: SourceContext) -> Iterator[Draft | Reject]:
    vqa = _Vqa(opts, ctx)
    c = opts.columns
    names = [c.id, c.question, c.answer, c.options, c.image or "image", "images", c.image_root or c.id]
    wanted = names + [n.split(".")[0] for n in names]  # a dotted name needs its top-level column
    for row in iter_rows(ctx.path(opts.path), opts.format, columns=wanted, hf_split=opts.hf_split):
        if isinstance(row.value, Reject):
            yield replace(row.value, file=vqa.file(row.file))
            continue
        own = own_id(lookup(row.value, c.id)) if isinstance(row.value, dict) else None
        if own is not None:
            row = Row(own, row.value, row.file, row.not_utf8)
        if row.not_utf8:
            yield not_utf8(row, vqa.file(row.file))
            continue
        try:
            yield vqa.draft(row)
        except BadRecord as bad:
            yield Reject(
                reason=bad.reason, detail=bad.detail, id=row.key, original_id=row.key, file=vqa.file(row.file)
            )
