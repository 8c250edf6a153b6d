"""triune's verifiers as verl's reward function (verl 0.9, `reward.custom_reward_function`).

verl calls ``compute_score(data_source=, solution_str=, ground_truth=, extra_info=, **reward_kwargs)``
once per rollout (its `naive`, `dapo` and reward-loop managers), or `compute_score_batch` with lists
(its `batch` manager). Rows come from `triune export --format verl`: the reward spec is read from
`extra_info.triune_reward` (verl's `ground_truth` argument holds the Orsta string, kept for V-Triune
and ROLL), the image size from the spec. Settings (`integrations.common.Settings`) come from
`custom_reward_function.reward_kwargs` or `TRIUNE_*` environment variables of verl's workers.

The result is a dict with the same keys on every row, as verl requires (it stacks each key over
the batch): `score` (the reward), `acc`, `format`, `status_ok`, `status_not_applicable`,
`status_error`, `status_timeout` (0/1) and `triune_message`. verl reports each numeric key per
data_source in validation (`val-aux/<data_source>/status_error/mean@N`) and keeps them with the
rollouts it dumps. verl cannot mask a row: an error scores 0 and is counted and logged.

>>> import json
>>> spec = {"verifier": "counting", "ground_truth": "3", "data_source": "count", "id": "c/1", "split": "test"}
>>> result = compute_score("count", "<answer>3</answer>", "\\\\boxed{3}", {"triune_reward": json.dumps(spec)})
>>> result["score"], result["acc"], result["status_ok"], result["status_error"]
(1.0, 1.0, 1.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from triune_data.verifiers import RewardResult
from triune_train.integrations.common import Settings, parse_spec, score_rows, status_flags

# Passed by verl's managers to every reward function when a reward-model router is configured.
VERL_KWARGS = ("reward_router_address", "reward_model_tokenizer")


def result_dict(result: RewardResult) -> dict[str, Any]:
    return {
        "score": result.reward,
        "acc": result.accuracy,
        "format": result.format,
        **status_flags(result),
        "triune_message": result.message,
    }


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[dict[str, Any] | None],
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Score a batch (verl's `batch` reward manager); one result dict per row."""
    settings = Settings.from_kwargs("verl", {k: v for k, v in kwargs.items() if k not in VERL_KWARGS})
    specs = [parse_spec((info or {}).get("triune_reward")) for info in extra_infos]
    return [result_dict(r) for r in score_rows(specs, list(solution_strs), settings)]


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score one rollout (verl's `naive` / `dapo` managers and the reward loop)."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info], **kwargs)[0]
