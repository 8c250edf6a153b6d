"""triune's verifiers as a TRL reward function (`GRPOTrainer(reward_funcs=[...])`).

TRL trains on a triune dataset as it is stored (``load_dataset(DIR, split="train").map(to_trl)``:
`to_trl` only rewrites the prompt into TRL's multimodal message form). TRL calls every reward
function with ``prompts``, ``completions`` and every other column of the batch as a keyword list,
plus ``trainer_state`` and, since TRL 1.x, ``log_metric`` and ``log_extra``. The function made by
`make_reward_function` routes each row to its own verifier from its `reward` column (with
`ground_truth`, `boxes`, `image_sizes`, `data_source`, `id`) and returns, per row:

- the reward, for a row its verifier scored (`ok`);
- ``None`` where the verifier does not apply: a row outside `verifiers=` (TRL's multi-task
  pattern: one function per task, each None elsewhere) or a `not_applicable` verdict;
- ``None`` for an `error` or `timeout` too: TRL excludes a row every function returned None for
  from its group's baseline and gives it no advantage, which is what triune's own trainer does.
  It is never silent: each status is a metric (`triune/<status>` and `triune/<data_source>/<status>`,
  shares of the batch via `log_metric`), a `triune_status` column in TRL's completions table, and a
  logged warning (or `on_error="raise"`).

The step comes from ``trainer_state`` (step = global_step + 1, total = max_steps), so the dynamic
IoU threshold follows training with no setting.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from triune_data.errors import UnknownVerifierError
from triune_data.types import IMAGE_PLACEHOLDER
from triune_data.verifiers import RewardResult, get_verifier
from triune_data.verifiers.base import STATUSES
from triune_train.integrations.common import Settings, score_rows

RewardFunction = Callable[..., list[float | None]]


def trl_prompt(prompt: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Triune's prompt (messages marking images with ``<image>``) in TRL's multimodal form: content
    parts with an ``{"type": "image"}`` placeholder where each image goes (TRL fills them from the
    row's `images`).

    >>> trl_prompt([{"role": "user", "content": "<image>How many?"}])
    [{'role': 'user', 'content': [{'type': 'image', 'text': None}, {'type': 'text', 'text': 'How many?'}]}]
    """
    out = []
    for message in prompt:
        parts: list[dict[str, Any]] = []
        for i, text in enumerate(str(message["content"]).split(IMAGE_PLACEHOLDER)):
            if i:
                parts.append({"type": "image", "text": None})
            if text:
                parts.append({"type": "text", "text": text})
        out.append({"role": message["role"], "content": parts})
    return out


def to_trl(row: Mapping[str, Any]) -> dict[str, Any]:
    """`datasets.Dataset.map` function: a stored triune row -> the prompt TRL's GRPOTrainer reads."""
    return {"prompt": trl_prompt(row["prompt"])}


def _text(completion: Any) -> str:
    """A completion as text: TRL passes a string, or (conversational) the generated messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], Mapping) else ""
        if isinstance(content, str):
            return content
        return "".join(p.get("text") or "" for p in content if isinstance(p, Mapping))
    return str(completion)


def _spec(
    reward: Mapping[str, Any], ground_truth: Any, boxes: Any, sizes: Any, source: Any, id_: Any
) -> dict:
    """A reward spec (as `reward_spec` writes it) from a stored row's columns."""
    name = reward["verifier"]
    try:
        is_box = get_verifier(name).boxes
    except UnknownVerifierError:
        is_box = False
    params = reward.get("verifier_params") or "{}"
    if isinstance(params, str):
        with contextlib.suppress(json.JSONDecodeError):  # left as text, scoring reports an error
            params = json.loads(params)
    spec = {
        "verifier": name,
        "params": params,
        "accuracy_weight": reward.get("accuracy_weight", 1.0),
        "format_weight": reward.get("format_weight", 0.0),
        "ground_truth": (
            [{"label": b["label"], "bbox": [b["x1"], b["y1"], b["x2"], b["y2"]]} for b in boxes or []]
            if is_box
            else ground_truth
        ),
        "data_source": source,
        "id": id_,
    }
    if sizes:
        spec["image_size"] = [sizes[0]["width"], sizes[0]["height"]]
    return spec


def make_reward_function(
    *, verifiers: Iterable[str] | None = None, name: str = "triune", **settings: Any
) -> RewardFunction:
    """A TRL reward function over triune's verifiers (see the module docstring).

    `verifiers`: score only rows whose verifier (or task) is listed, None for the others.
    `settings`: `integrations.common.Settings` (model_family, processor pixel limits, on_error, ...).
    """
    only = frozenset(verifiers) if verifiers is not None else None
    config = Settings.from_kwargs("trl", settings)

    def reward_function(
        prompts: Sequence[Any],
        completions: Sequence[Any],
        *,
        reward: Sequence[Mapping[str, Any]],
        data_source: Sequence[str],
        ground_truth: Sequence[str] | None = None,
        boxes: Sequence[Any] | None = None,
        image_sizes: Sequence[Any] | None = None,
        id: Sequence[Any] | None = None,  # TRL passes each column by its name
        task: Sequence[str] | None = None,
        trainer_state: Any = None,
        log_metric: Callable[[str, float], None] | None = None,
        log_extra: Callable[[str, list[Any]], None] | None = None,
        **_: Any,
    ) -> list[float | None]:
        n = len(completions)
        column = lambda values: list(values) if values is not None else [None] * n  # noqa: E731
        gts, bxs, sizes, ids, tasks = map(column, (ground_truth, boxes, image_sizes, id, task))
        wanted = [only is None or r["verifier"] in only or tasks[i] in only for i, r in enumerate(reward)]
        rows = [i for i in range(n) if wanted[i]]
        specs = [_spec(reward[i], gts[i], bxs[i], sizes[i], data_source[i], ids[i]) for i in rows]
        step = total = 0
        if trainer_state is not None:
            step, total = int(trainer_state.global_step) + 1, int(trainer_state.max_steps or 0)
        scored = score_rows(
            specs, [_text(completions[i]) for i in rows], config, steps=[step] * len(rows), total_steps=total
        )
        results: list[RewardResult | None] = [None] * n
        for i, result in zip(rows, scored, strict=True):
            results[i] = result
        _log(results, data_source, log_metric, log_extra)
        return [r.reward if r is not None and r.status == "ok" else None for r in results]

    reward_function.__name__ = reward_function.__qualname__ = name
    return reward_function


def _log(
    results: list[RewardResult | None],
    sources: Sequence[str],
    log_metric: Callable[[str, float], None] | None,
    log_extra: Callable[[str, list[Any]], None] | None,
) -> None:
    if log_extra is not None:
        log_extra("triune_status", [r.status if r else "skipped" for r in results])
        log_extra("triune_message", [r.message if r else "" for r in results])
    scored = [(s, r) for s, r in zip(sources, results, strict=True) if r is not None]
    if log_metric is None or not scored:
        return
    overall = Counter(r.status for _, r in scored)
    per_source = Counter((s, r.status) for s, r in scored)
    rows = Counter(s for s, _ in scored)
    for status in STATUSES:
        log_metric(f"triune/{status}", overall[status] / len(scored))
    for source, count in sorted(rows.items()):
        for status in STATUSES:
            log_metric(f"triune/{source}/{status}", per_source[(source, status)] / count)
        rewards = [r.reward for s, r in scored if s == source and r.status == "ok"]
        if rewards:
            log_metric(f"triune/{source}/reward", sum(rewards) / len(rewards))


triune_reward = make_reward_function()
"""The reward function with settings from `TRIUNE_*` environment variables only."""

__all__ = ["make_reward_function", "to_trl", "triune_reward", "trl_prompt"]
