"""`orsta`: Orsta-Data-47k (V-Triune) and plain verl parquet rows -> triune samples.

Row format (paper §3.1, Fig. 3, and the Orsta-Data-47k card; docs/vtriune.md §1): `data_source`, `prompt` (chat messages with `<image>`
placeholders), `images` (`{bytes, path}`), `ability`, `reward_model` (V-Triune: `answer`,
`ground_truth`, `accuracy_ratio`, `format_ratio`, `verifier`, `verifier_parm`; plain verl: `style`,
`ground_truth`) and `extra_info` (`id`, `image_path` / `index`, `answer`, `question`, `split`).

- `path`: a parquet file, or a directory whose `*.parquet` files are read in name order (not
  recursive: point at Orsta's `train/` or `test/`). With several files, ids get the file stem.
- The recipe entry names ONE data_source, Orsta rows carry their own: `source_filter` reads only
  rows of the listed Orsta data_sources and passes over the rest without counting them (they
  belong to other entries: one entry per Orsta source keeps V-Triune's per-source metrics).
- Task: `task_map` (keyed by data_source, then ability) wins; else the one task name among the
  ability's words (`math`, `cv_detection`, `vl_chart`...); else `detection` for rows with the
  `detection` verifier; else `unknown_task`. V-Triune scored D³ grounding with the detection
  verifier, so grounding needs `task_map: {<d3 source>: grounding}`.
- Reward: `mathverify` and verl's `style: rule` rows get the task's default verifier, with the
  ground truth's `\\boxed{...}` stripped ("\\boxed{4}" -> "4", LaTeX inside kept); `accuracy_ratio`
  / `format_ratio` become the weights (null: task default; float32 read at 7 significant digits
  so 0.1 stays 0.1). `style: model` rows need an LLM judge: `not_rule_verifiable`. A verifier that
  contradicts the task: `verifier_mismatch`.
- Detection/grounding ground truth is V-Triune's `<answer>\\n[{'bbox_2d': [x1, y1, x2, y2], 'label':
  ...}]\\n</answer>` in 0-1000 coordinates of the image: parsed without eval (Python string literals
  become JSON strings, True/False/None JSON words, then `json.loads`; other Python syntax, such as
  tuples or trailing commas, is `malformed_record`) into `norm1000` boxes that the pipeline turns
  into pixels. `verifier_parm` maps onto the box verifiers' params: `det_verifier_normalized: true`
  (Qwen2.5-VL answers in model-input pixels) -> `coords: pixel`, false -> `norm1000`;
  `det_reward_ratio` -> `weights` (`iou_max_label_first` -> `iou`, `iou_max_iou_first` -> `iou_first`,
  `map`, `map50`, `map75`; absent keys 0) and `iou_completeness` -> `completeness`.
- The prompt is kept verbatim (it already holds `<image>` and its instructions). Images: bytes
  passed through (`ImageBytes`, named by their path); path-only images resolve against the file's
  folder. Id: `extra_info.id`, else `extra_info.index`, else `row<n>`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import Field

from triune_data import safe_json
from triune_data.sources.base import (
    Draft,
    DraftBox,
    Reject,
    SourceContext,
    SourceOptions,
    register_source,
)
from triune_data.sources.common.fields import BadRecord, coords, number, number_text, text
from triune_data.sources.common.ids import record_id
from triune_data.sources.common.tabular import image_sources, iter_rows, not_utf8, parquet_files
from triune_data.types import BOX_TASKS, TASKS, Message, Task

COLUMNS = ("data_source", "prompt", "images", "ability", "reward_model", "extra_info")
_WEIGHTS = {
    "iou_max_label_first": "iou",
    "iou_max_iou_first": "iou_first",
    "map": "map",
    "map50": "map50",
    "map75": "map75",
}
_PY_TOKEN = re.compile(
    r"""'([^'\\]*(?:\\.[^'\\]*)*)'|"([^"\\]*(?:\\.[^"\\]*)*)"|\b(True|False|None)\b""", re.S
)
_PY_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\n": ""}
MAX_GROUND_TRUTH_CHARS = 1_048_576


class OrstaOptions(SourceOptions):
    path: str = Field(description="A parquet file or a directory of them (read in name order).")
    source_filter: list[str] | None = Field(None, description="Read only rows of these Orsta data_sources.")
    task_map: dict[str, Task] = Field(default_factory=dict, description="data_source or ability -> task.")


def python_literal(s: str) -> Any:
    """A Python-repr'd value of strings, numbers, lists, dicts, True/False/None, without eval."""

    def unescape(m: re.Match) -> str:
        e = m[1]
        return chr(int(e[1:], 16)) if e[0] in "xuU" and len(e) > 1 else _SIMPLE_ESCAPES.get(e, e)

    def token(m: re.Match) -> str:
        if m[3]:
            return {"True": "true", "False": "false", "None": "null"}[m[3]]
        return json.dumps(_PY_ESCAPE.sub(unescape, m[1] if m[1] is not None else m[2]), ensure_ascii=False)

    return safe_json.loads(_PY_TOKEN.sub(token, s))  # bounded: a 50,000-deep list is refused


def parse_boxes(gt: str) -> list[DraftBox]:
    """V-Triune's box ground truth (optionally inside <answer> tags) as boxes, in its own frame."""
    body = gt.strip().removeprefix("<answer>").removesuffix("</answer>")
    why = ""
    try:
        items = python_literal(body) if len(body) <= MAX_GROUND_TRUTH_CHARS else None
    except safe_json.JsonLimitError as exc:
        items, why = None, f" ({exc})"
    except ValueError:
        items = None
    if not isinstance(items, list):
        raise BadRecord("malformed_record", f"box ground truth is not a list of boxes{why}: {gt[:80]!r}")
    boxes = []
    for item in items:
        box, label = (item.get("bbox_2d"), item.get("label")) if isinstance(item, dict) else (None, None)
        if not (isinstance(box, list) and len(box) == 4 and all(map(number, box)) and isinstance(label, str)):
            raise BadRecord(
                "malformed_record", f"not a {{bbox_2d: [4 numbers], label}} box: {str(item)[:80]}"
            )
        boxes.append(DraftBox(label, *coords(box, "bbox_2d")))
    return boxes


def unbox(s: str) -> str:
    """The content of the first `\\boxed{...}` in `s` (balanced braces), else `s` stripped."""
    at = s.find("\\boxed{")
    if at < 0:
        return s.strip()
    depth, start = 0, at + len("\\boxed{")
    for j in range(start, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            if depth == 0:
                return s[start:j].strip()
            depth -= 1
    return s.strip()  # unbalanced: leave it to the verifier to judge


def _ratio(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if not number(value):
        raise BadRecord("malformed_record", f"{what} is not a number: {value!r}")
    return float(f"{float(value):.7g}")  # float32 0.1 -> 0.1


def _box_params(parm: Any) -> dict[str, Any]:
    parm = parm if isinstance(parm, dict) else {}
    out: dict[str, Any] = {}
    if parm.get("det_verifier_normalized") is not None:
        out["coords"] = "pixel" if parm["det_verifier_normalized"] else "norm1000"
    ratio = parm.get("det_reward_ratio") if isinstance(parm.get("det_reward_ratio"), dict) else {}
    weights = {ours: _ratio(ratio.get(theirs), theirs) for theirs, ours in _WEIGHTS.items()}
    if any(w is not None for w in weights.values()):
        out["weights"] = {k: w or 0.0 for k, w in weights.items()}
    if ratio.get("iou_completeness") is not None:
        out["completeness"] = _ratio(ratio["iou_completeness"], "iou_completeness")
    return out


def _messages(value: Any) -> list[Message]:
    ok = isinstance(value, list) and value and all(isinstance(m, dict) for m in value)
    msgs = [(m.get("role"), m.get("content")) for m in value] if ok else []
    if not msgs or not all(r in ("system", "user", "assistant") and isinstance(c, str) for r, c in msgs):
        raise BadRecord("malformed_record", f"prompt is not a list of chat messages: {str(value)[:80]!r}")
    return [Message(role=r, content=c) for r, c in msgs]


def _task(rec: dict, verifier: Any, task_map: Mapping[str, str]) -> str:
    source, ability = rec.get("data_source"), rec.get("ability")
    for key in (source, ability):
        if isinstance(key, str) and key in task_map:
            return task_map[key]
    words = set(re.split(r"[^a-z]+", ability.lower())) & set(TASKS) if isinstance(ability, str) else set()
    if len(words) == 1:
        return words.pop()
    if verifier == "detection":
        return "detection"
    raise BadRecord("unknown_task", f"ability {ability!r} of data_source {source!r}: map it with `task_map`")


def _draft(rec: Any, did: str, oid: str, root: Path, opts: OrstaOptions, ctx: SourceContext) -> Draft:
    if not isinstance(rec, dict) or not isinstance(rec.get("reward_model"), dict):
        raise BadRecord("malformed_record", "no `reward_model` struct")
    rm = rec["reward_model"]
    if rm.get("style") not in (None, "rule"):
        raise BadRecord("not_rule_verifiable", f"reward style {rm['style']!r} needs a model judge")
    task = _task(rec, rm.get("verifier"), opts.task_map)
    box = task in BOX_TASKS
    if rm.get("verifier") not in (None, "detection" if box else "mathverify"):
        raise BadRecord("verifier_mismatch", f"verifier {rm['verifier']!r} for task {task!r}")
    prompt = _messages(rec.get("prompt"))
    images = image_sources(rec.get("images"), root, ctx=ctx)
    gt = rm.get("ground_truth")
    gt = number_text(gt, "ground_truth") if number(gt) else gt
    if gt is None or (isinstance(gt, str) and not gt.strip()):
        raise BadRecord("missing_answer", "no ground_truth")
    gt = text(gt, "ground_truth")
    acc = _ratio(rm.get("accuracy_ratio"), "accuracy_ratio")
    fmt = _ratio(rm.get("format_ratio"), "format_ratio")
    if box:  # answer "": the pipeline writes it from the boxes, in the canonical frame
        params = _box_params(rm.get("verifier_parm"))
        return Draft(
            did, task, prompt, "", "", images, oid, boxes=parse_boxes(gt), box_frame="norm1000",
            verifier_params=params, accuracy_weight=acc, format_weight=fmt,
        )  # fmt: skip
    truth = unbox(gt)
    extra_info = rec.get("extra_info")
    extra: dict[str, Any] = extra_info if isinstance(extra_info, dict) else {}
    raw = [
        a for a in (rm.get("answer"), extra.get("answer")) if number(a) or (isinstance(a, str) and a.strip())
    ]
    first = raw[0] if raw else None
    answer = truth if first is None else first if isinstance(first, str) else number_text(first, "answer")
    return Draft(did, task, prompt, answer, truth, images, oid, accuracy_weight=acc, format_weight=fmt)


@register_source("orsta", options=OrstaOptions, tasks=tuple(TASKS))
def read_orsta(opts: OrstaOptions, ctx: SourceContext) -> Iterator[Draft | Reject]:
    files = parquet_files(ctx.path(opts.path))
    wanted = None if opts.source_filter is None else set(opts.source_filter)
    for file in files:
        prefix = f"{file.stem}-" if len(files) > 1 else ""
        label = opts.path if len(files) == 1 else f"{opts.path.rstrip('/')}/{file.name}"
        for row in iter_rows(file, "parquet", columns=COLUMNS):
            rec = row.value
            if wanted is not None and (not isinstance(rec, dict) or rec.get("data_source") not in wanted):
                continue
            oid = record_id(
                rec.get("extra_info") if isinstance(rec, dict) else None, ("id", "index"), position=row.key
            )
            if row.not_utf8:
                yield replace(not_utf8(row, label), id=prefix + oid, original_id=oid)
                continue
            try:
                draft = _draft(rec, prefix + oid, oid, file.parent, opts, ctx)
            except BadRecord as bad:
                yield Reject(
                    reason=bad.reason, detail=bad.detail, id=prefix + oid, original_id=oid, file=label
                )
                continue
            draft.file = label
            yield draft
