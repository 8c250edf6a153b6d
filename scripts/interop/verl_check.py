"""The verl half of `scripts/interop_check.sh`: verl's own code on triune's verl export.

Run in a venv with verl installed (verl's pinned transformers), with the repository on PYTHONPATH:

    python scripts/interop/verl_check.py --export out/interop/demo-verl

1. verl's `RLHFDataset` loads train.parquet and test.parquet by name, filters by prompt length
   through the processor (so every image is decoded), and returns every row with its index.
2. Per row, verl's own multimodal path (qwen_vl_utils, then the processor): placeholders, image
   tokens and grids agree, and the size the model saw equals what triune's verl reward function
   computes from `extra_info.image_size` (Qwen2.5-VL's box frame), at the released pixel limits
   and at a smaller processor limit.
3. verl's DataLoader with its `collate_fn` batches the rows.
4. verl's reward manager (`load_reward_manager`, `naive`, from a config naming our function by
   `pkg://`) scores a right and a wrong completion per row: right answers (boxes in pixels of the
   measured model input) score 1, results equal triune's own `score`, keys are the same on every
   row (verl stacks them), and verl's validation metrics break the statuses down per data_source.
   Its legacy `batch` manager gives the same scores with `compute_score_batch`. verl's default
   scorer knows none of the data_sources.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tiny_qwen  # noqa: E402

tiny_qwen.torchvision_stand_in()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import verl  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo.metric_utils import process_validation_metrics  # noqa: E402
from verl.trainer.ppo.reward import load_reward_manager  # noqa: E402
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn  # noqa: E402
from verl.utils.tokenizer import build_multimodal_processor_inputs  # noqa: E402

from triune_data.coords import from_canonical  # noqa: E402
from triune_data.verifiers import score  # noqa: E402
from triune_data.verifiers.common.wire import item_from_reward_spec  # noqa: E402
from triune_train.integrations.common import Settings  # noqa: E402

FAILURES: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        FAILURES.append(what)


def dataset(files: list[str], tok, proc, cache: str) -> RLHFDataset:
    config = OmegaConf.create(
        {
            "prompt_key": "prompt",
            "image_key": "images",
            "max_prompt_length": 4096,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "cache_dir": cache,
        }
    )
    return RLHFDataset(data_files=files, tokenizer=tok, config=config, processor=proc)


def model_view(ds: RLHFDataset, row: dict, proc, pad_id: int) -> tuple[list[tuple[int, int]], int, int, int]:
    """verl's rollout path for one row: (sizes the model saw, image tokens, expected, placeholders)."""
    messages = row["raw_prompt"]
    images, _, _ = RLHFDataset._process_multi_modal_info(messages, ds.image_patch_size, ds.config)
    text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = build_multimodal_processor_inputs(proc, text=[text], images=images)
    grid = inputs["image_grid_thw"].tolist()
    patch, merge = proc.image_processor.patch_size, proc.image_processor.merge_size
    sizes = [(w * patch, h * patch) for _, h, w in grid]
    tokens = int((inputs["input_ids"][0] == pad_id).sum())
    expected = sum(t * h * w for t, h, w in grid) // merge**2
    return sizes, tokens, expected, text.count("<|vision_start|>")


def completion(spec: dict, seen: tuple[int, int] | None, right: bool) -> str:
    gt = spec["ground_truth"]
    if isinstance(gt, str):
        answer = gt if right else "987654321"
        return f"<think>\nworking\n</think>\n<answer>\n\\boxed{{{answer}}}\n</answer>"
    shift = 0.0 if right else 0.5
    boxes = [[b["bbox"][0] + shift * spec["image_size"][0], *b["bbox"][1:]] for b in gt]
    pixels = from_canonical(boxes, "pixel", image_size=spec["image_size"], model_input_size=seen)
    items = [
        {"bbox_2d": [round(float(v), 3) for v in p], "label": b["label"]}
        for p, b in zip(pixels, gt, strict=True)
    ]
    return f"<think>\nlooking\n</think>\n<answer>\n{json.dumps(items)}\n</answer>"


def reward_batch(tok, rows: list[dict], completions: list[str]) -> DataProto:
    prompt = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)
    resp = [tok.encode(c, add_special_tokens=False) for c in completions]
    width = max(len(r) for r in resp)
    pad = tok.pad_token_id
    responses = torch.tensor([r + [pad] * (width - len(r)) for r in resp])
    attention = torch.tensor([[1] * len(prompt) + [1] * len(r) + [0] * (width - len(r)) for r in resp])
    return DataProto.from_dict(
        tensors={
            "prompts": torch.tensor([prompt] * len(rows)),
            "responses": responses,
            "attention_mask": attention,
        },
        non_tensors={
            "data_source": np.array([r["data_source"] for r in rows], dtype=object),
            "reward_model": np.array([r["reward_model"] for r in rows], dtype=object),
            "extra_info": np.array([dict(r["extra_info"]) for r in rows], dtype=object),
        },
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--export", required=True, type=Path, help="output of `triune export --format verl`")
    args = parser.parse_args()
    torch.set_num_threads(1)
    files = sorted(str(p) for p in args.export.glob("*.parquet"))
    print(f"verl {verl.__version__}; files: {[Path(f).name for f in files]}")
    tok = tiny_qwen.tokenizer()
    pad_id = tok.convert_tokens_to_ids("<|image_pad|>")
    cache = tempfile.mkdtemp(prefix="verl-cache-")

    print("1. verl RLHFDataset")
    t0 = time.perf_counter()
    proc = tiny_qwen.processor(tok)
    ds = dataset(files, tok, proc, cache)
    rows = [ds[i] for i in range(len(ds))]
    print(f"  loaded and length-filtered {len(ds)} rows in {time.perf_counter() - t0:.1f} s")
    total = sum(1 for _ in rows)
    check(total == 288, f"all {total} rows survive verl's processor-based length filter (288 expected)")
    by_file = defaultdict(list)
    for r in rows:
        by_file[r["extra_info"]["split"]].append(r["index"])
    check(
        all(sorted(v) == list(range(len(v))) for v in by_file.values()),
        f"extra_info.index is each row's position in its file ({ {k: len(v) for k, v in by_file.items()} })",
    )
    try:
        dataset([str(args.export)], tok, proc, cache)
        check(False, "verl reads a directory (it should not: files are named one by one)")
    except ValueError as exc:
        print(f"  (verl refuses a directory, as documented: {exc})")

    print("2. verl's multimodal path per row vs triune's model_input_size (Qwen2.5-VL pixel frame)")
    for limits in (tiny_qwen.RELEASED_PIXELS, (56 * 56, 64 * 28 * 28)):
        proc_l = tiny_qwen.processor(tok, *limits)
        settings = Settings.from_kwargs(
            "verl",
            {
                "model_family": "qwen2_5_vl",
                "processor_min_pixels": limits[0],
                "processor_max_pixels": limits[1],
            },
        )
        agree = tokens_ok = placeholders_ok = 0
        for row in rows:
            sizes, tokens, expected, starts = model_view(ds, row, proc_l, pad_id)
            predicted = [settings.model_input_size(s) for s in row["extra_info"]["image_size"]]
            agree += predicted == [(float(w), float(h)) for w, h in sizes]
            tokens_ok += tokens == expected
            placeholders_ok += starts == len(sizes) == len(row["extra_info"]["image_size"])
            row.setdefault("seen", {})[limits] = sizes[0] if sizes else None
        check(
            agree == total,
            f"max_pixels {limits[1]}: size the model saw == triune's prediction on {agree}/{total} rows",
        )
        check(
            tokens_ok == total,
            f"max_pixels {limits[1]}: image tokens == grid / merge² on {tokens_ok}/{total} rows",
        )
        check(
            placeholders_ok == total,
            f"max_pixels {limits[1]}: one vision block per image on {placeholders_ok}/{total} rows",
        )
    seen = Counter(
        (
            r["extra_info"]["image_size"][0][0],
            r["extra_info"]["image_size"][0][1],
            r["seen"][tiny_qwen.RELEASED_PIXELS],
        )
        for r in rows
    )
    example = seen.most_common(1)[0][0]
    print(f"  e.g. a {example[0]}x{example[1]} image reaches Qwen2.5-VL as {example[2][0]}x{example[2][1]}")

    print("3. verl DataLoader + collate_fn")
    loader = torch.utils.data.DataLoader(ds, batch_size=32, collate_fn=collate_fn, shuffle=False)
    batches = list(loader)
    check(
        sum(len(b["index"]) for b in batches) == total, f"{len(batches)} batches of up to 32 cover every row"
    )

    print("4. verl reward manager with triune's reward function")
    step_file = Path(cache) / "triune.step"
    reward_kwargs = {
        "model_family": "qwen2_5_vl",
        "total_steps": 8,
        "rows_per_step": 64,
        "step_file": str(step_file),
    }
    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {
                    "path": "pkg://triune_train.integrations.verl",
                    "name": "compute_score",
                    "reward_kwargs": reward_kwargs,
                },
                "reward_manager": {
                    "name": "naive",
                    "source": "register",
                    "module": {"path": None, "name": None},
                },
                "sandbox_fusion": None,
            }
        }
    )
    manager = load_reward_manager(config, tok)
    print(f"  manager: {type(manager).__name__}")
    specs = [json.loads(r["extra_info"]["triune_reward"]) for r in rows]
    outputs, expected_scores, sources = [], [], []
    for right in (True, False):
        comps = [
            completion(s, r["seen"][tiny_qwen.RELEASED_PIXELS], right)
            for s, r in zip(specs, rows, strict=True)
        ]
        for i, (row, comp) in enumerate(zip(rows, comps, strict=True)):
            data = reward_batch(tok, [row], [comp])
            out = manager.loop.run_until_complete(manager.run_single(data))
            outputs.append(out)
            sources.append(row["data_source"])
            own = score(
                item_from_reward_spec(
                    specs[i],
                    comp,
                    model_input_size=row["seen"][tiny_qwen.RELEASED_PIXELS],
                    model_frame="pixel",
                )
            )
            expected_scores.append((own.reward, own.status))
    right_scores = [o["reward_score"] for o in outputs[:total]]
    wrong_scores = [o["reward_score"] for o in outputs[total:]]
    accs = [o["reward_extra_info"]["acc"] for o in outputs[:total]]
    check(min(accs) > 0.9999, f"right answers: accuracy 1 on all rows (min {min(accs):.6f})")
    lower = sum(w < r for w, r in zip(wrong_scores, right_scores, strict=True))
    check(lower == total, f"a wrong answer scores below the right one on {lower}/{total} rows")
    same = sum(
        abs(o["reward_score"] - e[0]) < 1e-12 and o["reward_extra_info"]["status_" + e[1]] == 1.0
        for o, e in zip(outputs, expected_scores, strict=True)
    )
    check(same == len(outputs), f"verl's scores == triune's own score() on {same}/{len(outputs)} completions")
    infos = [o["reward_extra_info"] for o in outputs]
    keys = list(infos[0])
    stacked = {k: np.array([info[k] for info in infos]) for k in keys}  # what RewardLoopManager does
    check(all(list(i) == keys for i in infos), f"the same {len(keys)} result keys on every row: {keys}")
    counted = int(step_file.read_text())
    check(
        counted == 2 * sum(s["split"] == "train" for s in specs),
        f"step clock counted {counted} training rows",
    )
    metrics = process_validation_metrics(
        sources, [str(i) for i in range(len(sources))], {k: v.tolist() for k, v in stacked.items()}
    )
    for source in sorted(metrics)[:2]:
        m = metrics[source]
        print(
            f"  val metrics {source}: "
            + ", ".join(f"{k}/mean@1={m[k]['mean@1']:.3f}" for k in ("acc", "status_ok", "status_error"))
        )

    from verl.workers.reward_manager.batch import BatchRewardManager

    from triune_train.integrations.verl import compute_score_batch

    batch_manager = BatchRewardManager(tok, num_examine=0, compute_score=compute_score_batch, **reward_kwargs)
    comps = [
        completion(s, r["seen"][tiny_qwen.RELEASED_PIXELS], True) for s, r in zip(specs, rows, strict=True)
    ]
    result = batch_manager(reward_batch(tok, rows, comps), return_dict=True)
    batch_scores = result["reward_tensor"].sum(-1).tolist()
    check(np.allclose(batch_scores, right_scores), "legacy batch manager + compute_score_batch: same scores")

    from verl.utils.reward_score import default_compute_score

    unknown = []
    for source in sorted(set(sources)):
        try:
            default_compute_score(source, "x", "y")
        except NotImplementedError:
            unknown.append(source)
    print(
        f"  verl's default_compute_score knows {len(set(sources)) - len(unknown)} of {len(set(sources))} data_sources"
    )

    print("verl check: " + ("PASSED" if not FAILURES else f"FAILED ({len(FAILURES)})"))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
