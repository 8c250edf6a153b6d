"""The gold answer must pass its own verifier (V-Triune §5.1.1.1's "verifiable answer" rule, for
every task).

Run before difficulty filtering: a sample whose gold answer its verifier cannot match would score 0
for every rollout and look like a hard item. The filter writes the completion a model that knows the
gold answer would write, in the form the sample's verifier reads, and scores it in process with
`triune_data.verifiers.score` (the same function the reward service and `triune score` use):

- box verifiers (`detection`, `grounding`): the sample's boxes as a JSON list of
  ``{"bbox_2d": [x1, y1, x2, y2], "label": ...}`` in the frame its params name (`coords`), from the
  canonical pixels of image 0, inside ``<answer>`` tags;
- `math`: the answer in ``\\boxed{}`` (as it is when it already holds one);
- every other verifier: the answer as it is, inside ``<answer>`` tags.

The answer is the `answer` column (what the model should say), or `ground_truth` when that is
empty; the verifier compares it with `ground_truth`, so a sample whose two disagree is dropped too.
A row is dropped when the result's status is not `ok` (unknown verifier, broken params or ground
truth) or its accuracy is below `min_accuracy`; the detail is the verifier's message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, ClassVar

import polars as pl
from pydantic import Field

from triune_data.filters.base import Context, Filter, Verdict, register_filter

_THINK = "<think>\nI know the answer.\n</think>\n"
_CHUNK = 256  # items per task sent to a worker process


def _box_completion(boxes: Sequence[dict[str, Any]], frame: str, size: tuple[float, float] | None) -> str:
    from triune_data.coords import box_from_canonical

    out = []
    for b in boxes:
        xyxy: Sequence[float] = (b["x1"], b["y1"], b["x2"], b["y2"])
        if frame != "pixel":
            if size is None:
                raise ValueError("no image size to write the boxes in the verifier's frame")
            xyxy = box_from_canonical(xyxy, frame, image_size=size)  # type: ignore[arg-type]
        out.append({"bbox_2d": [float(v) for v in xyxy], "label": b["label"]})
    return _THINK + "<answer>\n" + json.dumps(out, ensure_ascii=False) + "\n</answer>"


def gold_completion(row: dict[str, Any]) -> str:
    """The completion that states `row`'s gold answer the way its verifier reads it.

    Raises ValueError (with a one-line reason) when no such completion can be written, and
    `VerifierError` for an unknown verifier or params it refuses.
    """
    from triune_data.verifiers import get_verifier, parse_params

    reward = row["reward"] or {}
    spec = get_verifier(reward.get("verifier") or "")
    if spec.boxes:
        params = parse_params(spec.name, reward.get("verifier_params"))
        sizes = row.get("image_sizes") or []
        first = sizes[0] if sizes else None
        size = (float(first["width"]), float(first["height"])) if first and first["width"] else None
        return _box_completion(row.get("boxes") or [], str(getattr(params, "coords", "pixel")), size)
    text = (row.get("answer") or "").strip() or (row.get("ground_truth") or "").strip()
    if not text:
        raise ValueError("no answer and no ground truth to state")
    if spec.name == "math" and "\\boxed" not in text:
        text = "\\boxed{" + text + "}"
    return _THINK + "<answer>\n" + text + "\n</answer>"


def _item(row: dict[str, Any]) -> Any:
    """The ScoreItem of `row`'s gold completion, or a one-line reason why there is none."""
    from triune_data.errors import VerifierError
    from triune_data.verifiers import ScoreItem, get_verifier

    try:
        completion = gold_completion(row)
        boxes = get_verifier(row["reward"]["verifier"]).boxes
    except (ValueError, VerifierError) as exc:
        return str(exc)
    reward = row["reward"]
    sizes = row.get("image_sizes") or []
    size = sizes[0] if sizes else None
    ground_truth: Any = (
        [{"label": b["label"], "bbox": [b["x1"], b["y1"], b["x2"], b["y2"]]} for b in row.get("boxes") or []]
        if boxes
        else row.get("ground_truth") or ""
    )
    return ScoreItem(
        verifier=reward["verifier"],
        completion=completion,
        ground_truth=ground_truth,
        params=reward.get("verifier_params") or "{}",
        accuracy_weight=reward.get("accuracy_weight") or 0.0,
        format_weight=reward.get("format_weight") or 0.0,
        image_size=None if not size or not size["width"] else (float(size["width"]), float(size["height"])),
        data_source=row.get("data_source"),
        id=row.get("id"),
    )


def _judge(items: Sequence[Any], min_accuracy: float) -> list[str | None]:
    """For each item (or reason it has none): None when its gold verifies, else why not.

    Text golds repeat (numeric answers, yes/no, option letters) and math-verify costs milliseconds
    an item, so their verdicts are memoised by (verifier, params, ground truth, completion): nothing
    else in an item changes a text verifier's accuracy, status or message.
    """
    from triune_data.verifiers import score

    out: list[str | None] = []
    seen: dict[tuple[str, str, str, str], str | None] = {}
    for item in items:
        if isinstance(item, str):
            out.append(item[:300])
            continue
        key = None
        if isinstance(item.ground_truth, str) and isinstance(item.params, str):
            key = (item.verifier, item.params, item.ground_truth, item.completion)
            if key in seen:
                out.append(seen[key])
                continue
        result = score(item)
        if result.status != "ok":
            reason: str | None = f"{result.status}: {result.message}"[:300]
        elif result.accuracy < min_accuracy:
            read = "" if result.prediction is None else f" (read {str(result.prediction)[:60]!r})"
            why = f": {result.message}" if result.message else ""
            reason = f"accuracy {result.accuracy:g}{read}{why}"[:300]
        else:
            reason = None
        if key is not None:
            seen[key] = reason
        out.append(reason)
    return out


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


@register_filter
class GoldVerifies(Filter):
    """Gold answer its own verifier does not accept (scores below `min_accuracy`, or an error)."""

    name: ClassVar[str] = "gold_verifies"
    columns: ClassVar[tuple[str, ...]] = (
        "id",
        "data_source",
        "answer",
        "ground_truth",
        "boxes",
        "reward",
        "image_sizes",
    )
    min_accuracy: float = Field(
        default=1.0, ge=0, le=1, description="Least accuracy the gold completion must score."
    )
    workers: int = Field(default=0, ge=0, description="Verifier processes (0: score in this process).")

    def apply(self, rows: pl.DataFrame, ctx: Context) -> Verdict:
        items = [_item(row) for row in rows.select(self.columns).iter_rows(named=True)]
        if self.workers and len(items) > _CHUNK:
            with ProcessPoolExecutor(self.workers) as pool:
                parts = pool.map(_judge, _chunks(items), [self.min_accuracy] * len(items))
                reasons = [r for part in parts for r in part]
        else:
            reasons = _judge(items, self.min_accuracy)
        detail = pl.Series("detail", reasons, dtype=pl.Utf8)
        return Verdict(detail.is_not_null(), detail=detail)
