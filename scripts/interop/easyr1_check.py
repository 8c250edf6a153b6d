"""The EasyR1 half of `scripts/interop_check.sh`: EasyR1's own code on triune's easyr1 export.

EasyR1 is not on PyPI; run in a venv with its requirements (transformers < 5), with the repository
on PYTHONPATH and a checkout of EasyR1 given by path:

    python scripts/interop/easyr1_check.py --easyr1 /path/to/EasyR1 --export out/interop/demo-easyr1

1. EasyR1's `RLHFDataset` loads the export's directory (train) and `DIR@test` with its default keys
   and with `answer_key=triune_reward`, decoding every image and filtering by prompt length.
2. Per row, EasyR1's `process_image` (data.min_pixels / max_pixels) and the processor: the image
   tokens in the dataset's input_ids match the grid, and the size the model saw equals what
   triune's EasyR1 reward function computes (Qwen2.5-VL's box frame).
3. EasyR1's `collate_fn` batches the rows.
4. EasyR1's `AutoRewardManager`, configured with triune's reward function file, scores a right and
   a wrong completion per row from EasyR1's own DataProto: right answers score 1, scores equal
   triune's own `score`, and every metric is a float per row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tiny_qwen  # noqa: E402

FAILURES: list[str] = []
DATA_PIXELS = (262144, 4194304)  # EasyR1's defaults (examples/config.yaml: data.min_pixels / max_pixels)


def check(ok: bool, what: str) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        FAILURES.append(what)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--easyr1", required=True, type=Path, help="a checkout of hiyouga/EasyR1")
    parser.add_argument(
        "--export", required=True, type=Path, help="output of `triune export --format easyr1`"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(args.easyr1.resolve()))
    tiny_qwen.torchvision_stand_in()

    import numpy as np
    import torch
    import transformers
    from verl.protocol import DataProto  # EasyR1's
    from verl.utils.dataset import RLHFDataset, collate_fn, process_image
    from verl.workers.reward import AutoRewardManager, RewardConfig

    from triune_data.verifiers import score
    from triune_data.verifiers.common.wire import item_from_reward_spec
    from triune_train.integrations import easyr1
    from triune_train.integrations.common import Settings

    torch.set_num_threads(1)
    commit = (args.easyr1 / ".git").exists() and _head(args.easyr1)
    print(f"EasyR1 {commit or '(no git metadata)'}; transformers {transformers.__version__}")
    tok = tiny_qwen.tokenizer()
    proc = tiny_qwen.processor(tok)
    pad_id = tok.convert_tokens_to_ids("<|image_pad|>")

    def load(path: str, **keys):
        return RLHFDataset(
            data_path=path,
            tokenizer=tok,
            processor=proc,
            max_prompt_length=4096,
            min_pixels=DATA_PIXELS[0],
            max_pixels=DATA_PIXELS[1],
            filter_overlong_prompts=True,
            filter_overlong_prompts_workers=1,
            **keys,
        )

    print("1. EasyR1 RLHFDataset")
    t0 = time.perf_counter()
    splits = {
        "train": load(str(args.export), answer_key="triune_reward"),
        "test": load(f"{args.export}@test", answer_key="triune_reward"),
    }
    print(f"  loaded and length-filtered in {time.perf_counter() - t0:.1f} s")
    sizes = {k: len(v) for k, v in splits.items()}
    check(sizes == {"train": 256, "test": 32}, f"directory -> train, DIR@test -> test: {sizes}")
    plain = load(f"{args.export}@test")
    check(
        plain[0]["ground_truth"] == plain.dataset[0]["answer"],
        "default keys (prompt, answer, images) load too",
    )

    print("2. EasyR1's image path per row vs triune's model_input_size (Qwen2.5-VL pixel frame)")
    settings = Settings.from_kwargs(
        "easyr1",
        {"model_family": "qwen2_5_vl", "data_min_pixels": DATA_PIXELS[0], "data_max_pixels": DATA_PIXELS[1]},
    )
    rows, agree, tokens_ok = [], 0, 0
    for ds in splits.values():
        for i in range(len(ds)):
            item, raw = ds[i], ds.dataset[i]
            spec = json.loads(item["ground_truth"])
            images = [process_image(im, DATA_PIXELS[0], DATA_PIXELS[1]) for im in raw["images"]]
            grid = proc.image_processor(images=images, return_tensors="pt")["image_grid_thw"].tolist()
            seen = [(float(w * 14), float(h * 14)) for _, h, w in grid]
            predicted = [settings.model_input_size(s) for s in item["extra_info"]["image_size"]]
            agree += predicted == seen
            tokens_ok += int((item["input_ids"] == pad_id).sum()) == sum(t * h * w for t, h, w in grid) // 4
            rows.append((item, spec, seen[0] if seen else None))
    n = len(rows)
    check(agree == n, f"size the model saw == triune's prediction on {agree}/{n} rows")
    check(tokens_ok == n, f"image tokens in EasyR1's input_ids == grid / merge² on {tokens_ok}/{n} rows")
    (w, h), (seen_w, seen_h) = rows[0][1]["image_size"], rows[0][2] or (0, 0)
    print(f"  e.g. a {w:g}x{h:g} image reaches Qwen2.5-VL as {seen_w:g}x{seen_h:g} under EasyR1's defaults")

    print("3. EasyR1 collate_fn")
    batch = collate_fn([splits["train"][i] for i in range(16)])
    check(
        tuple(batch["input_ids"].shape) == (16, 4096) and len(batch["ground_truth"]) == 16,
        "a batch of 16 rows",
    )

    print("4. EasyR1 AutoRewardManager with triune's reward function")
    reward_kwargs = {
        "model_family": "qwen2_5_vl",
        "data_min_pixels": DATA_PIXELS[0],
        "data_max_pixels": DATA_PIXELS[1],
        "total_steps": 2,
        "rows_per_step": 256,  # rollout_batch_size × n
    }
    config = RewardConfig(
        reward_function=f"{easyr1.__file__}:compute_score", reward_function_kwargs=reward_kwargs
    )
    config.post_init()
    manager = AutoRewardManager(config, tok)
    results = {}
    for right in (True, False):
        comps = [_completion(spec, seen, right) for _, spec, seen in rows]
        ids = [tok.encode(c, add_special_tokens=False) for c in comps]
        width = max(len(x) for x in ids)
        data = DataProto.from_dict(
            tensors={
                "responses": torch.tensor([x + [tok.pad_token_id] * (width - len(x)) for x in ids]),
                "response_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids]),
            },
            non_tensors={
                "ground_truth": np.array([item["ground_truth"] for item, _, _ in rows], dtype=object)
            },
        )
        reward_tensor, metrics = manager.compute_reward(data)
        results[right] = (reward_tensor.sum(-1).tolist(), metrics, comps)
    right_scores, metrics, comps = results[True]
    wrong_scores = results[False][0]
    check(min(metrics["accuracy"]) > 0.9999, f"right answers: accuracy 1 on all {n} rows")
    lower = sum(a < b for a, b in zip(wrong_scores, right_scores, strict=True))
    check(lower == n, f"a wrong answer scores below the right one on {lower}/{n} rows")
    own = [
        score(item_from_reward_spec(spec, c, model_input_size=seen, model_frame="pixel")).reward
        for (_, spec, seen), c in zip(rows, comps, strict=True)
    ]
    check(np.allclose(own, right_scores, atol=1e-6), "EasyR1's scores == triune's own score()")
    floats = all(len(v) == n and all(type(x) is float for x in v) for v in metrics.values())
    check(floats, f"metrics, one float per row: {sorted(metrics)}")
    print(
        f"  reward/status_error = {np.mean(metrics['status_error']):.3f}, reward/overall = {np.mean(metrics['overall']):.3f}"
    )

    print("EasyR1 check: " + ("PASSED" if not FAILURES else f"FAILED ({len(FAILURES)})"))
    return 1 if FAILURES else 0


def _head(path: Path) -> str | None:
    import subprocess

    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() or None


def _completion(spec: dict, seen: tuple[float, float] | None, right: bool) -> str:
    from triune_data.coords import from_canonical

    gt = spec["ground_truth"]
    if isinstance(gt, str):
        return f"<think>\nworking\n</think>\n<answer>\n\\boxed{{{gt if right else '987654321'}}}\n</answer>"
    shift = 0.0 if right else 0.5 * spec["image_size"][0]
    boxes = [[b["bbox"][0] + shift, *b["bbox"][1:]] for b in gt]
    pixels = from_canonical(boxes, "pixel", image_size=spec["image_size"], model_input_size=seen)
    items = [
        {"bbox_2d": [round(float(v), 3) for v in p], "label": b["label"]}
        for p, b in zip(pixels, gt, strict=True)
    ]
    return f"<think>\nlooking\n</think>\n<answer>\n{json.dumps(items)}\n</answer>"


if __name__ == "__main__":
    sys.exit(main())
