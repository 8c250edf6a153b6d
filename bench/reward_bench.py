"""Reward throughput: triune's reward service beside V-Triune's design and the bare verifiers, one run.

    .venv/bin/python bench/reward_bench.py [--items 10000] [--seed 0] [--workers 2]

A seeded batch shaped like GRPO steps in V-Triune's proportions (paper §5.1.1: 27.1K reasoning to
20.6K perception rows), 8 rollouts a prompt. Math: Orsta-style golds (integers, units, fractions,
percentages, roots, π, degrees, OCR words), closeform and freeform completions, right and wrong, some
unboxed, cut off or hedging. Detection: 1–8 gold boxes on images of real sizes, Qwen2.5-VL answers
with jittered, missed, extra and mislabelled boxes, code fences, Python quotes, some malformed JSON;
V-Triune's released weights and dynamic IoU (each prompt at a random training step).

(a) `triune serve-rewards --workers N` + `RewardClient` (batches of 1024); an
    item's latency is its batch's round trip.
(b) V-Triune's design, re-created in `_vtriune_baseline.py`: uvicorn --workers N, ``POST /judge`` per
    item, a verifier object per request, pycocotools per detection item; a 32-thread client with an
    event loop and an HTTP session per item.
(c) `triune_data.verifiers.score` in a plain loop in one process: the verifiers' own cost.

(a) runs N verifier processes, so its rate per core (items/s ÷ N) is set beside (c)'s: the gap is
what the service costs. CPU ms/item sums every process of a variant (client, server, workers), from
/proc. Each variant first scores a separate warm-up batch. The micro-benchmark runs our detection
verifier, its COCO AP and V-Triune's pycocotools path on the same parsed boxes, interleaved in
blocks of 200 items, and checks that map/map50/map75 agree to 1e-9.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import httpx

from triune_data.types import Box
from triune_data.verifiers import ScoreItem

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # _vtriune_baseline

ROLLOUTS, TOTAL_STEPS, MATH_SHARE = 8, 138, 27.1 / (27.1 + 20.6)
DET_WEIGHTS = {"iou": 1.0, "iou_first": 0.0, "map": 0.0, "map50": 0.0, "map75": 0.0}  # V-Triune's released
VT_RATIO = {"iou_max_label_first": 1.0, "iou_max_iou_first": 0.0, "iou_completeness": 0.3}
VT_RATIO |= {"map": 0.0, "map50": 0.0, "map75": 0.0}
# fmt: off
LABELS = ("person", "car", "dog", "cat", "bicycle", "traffic light", "chair", "cup", "bottle", "bird",
          "horse", "umbrella", "shiba dog", "dog collar", "trash bin can", "ambulance", "laptop")
SIZES = ((640, 480), (799, 533), (1024, 768), (1280, 720), (612, 612), (500, 375), (1920, 1080), (480, 640))
STEPS = ("Since $D$ is the midpoint of $AC$, we have $AD = DC = {a}$.", "So far the total is {c}.",
         "By the Pythagorean theorem, $AB^2 = {a}^2 + {b}^2$.", "Let $x$ be the length: $x + {a} = {b}$.",
         "From the figure, $\\angle ABC = {a}^\\circ$; a triangle's angles sum to $180^\\circ$.",
         "Substituting gives ${a}x = {b}$, hence $x = \\frac{{{b}}}{{{a}}}$.", "Wait, let me re-check that.",
         "The chart shows {a} units in 2019 and {b} in 2020, an increase of {c} units.",
         "Counting the objects in the image, there are {a} cubes and {b} spheres.",
         "The area is $\\frac{{1}}{{2}} \\cdot {a} \\cdot {b}$, and we combine it with the result above.")


def _math_answers(rng: random.Random) -> tuple[str, list[str], list[str]]:
    """(gold, right answers, wrong answers) of one question."""
    n, k, deg = rng.randint(2, 400), rng.randrange(5, 100, 5), rng.randint(10, 170)
    p, q = rng.choice(((1, 2), (3, 4), (2, 3), (5, 8), (7, 10), (4, 9), (3, 5)))
    a, b = rng.choice(((2, 3), (3, 2), (2, 5), (4, 2)))
    word, frac = rng.choice(("stop", "new york", "exit", "coffee")), f"\\frac{{{p}}}{{{q}}}"
    return rng.choices([
        (str(n), [str(n), f"{n}.0"], [str(n + 1), str(n - 2), str(2 * n), f"-{n}"]),
        (str(n), [f"{n} cm", f"{n}\\text{{ m}}", f"{n} kg"], [f"{n + 3} cm", f"{n * 10}\\text{{ m}}"]),
        (frac, [frac, f"\\dfrac{{{p}}}{{{q}}}", f"{p}/{q}", str(p / q)[:6]], [f"{q}/{p}", "0.33"]),
        (f"{k}\\%", [f"{k}\\%", str(k / 100)], [str(k), f"{k + 5}\\%"]),
        (f"{a}\\sqrt{{{b}}}", [f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}"], [f"{b}\\sqrt{{{a}}}"]),
        (f"{n}\\pi", [f"{n}\\pi", f"{n} \\pi"], [f"{2 * n}\\pi", str(n)]),
        (f"{deg}^\\circ", [f"{deg}^\\circ", f"{deg}^{{\\circ}}", str(deg)], [str(180 - deg), f"{deg + 10}"]),
        (word, [word.upper(), word.title()], ["york", "tea", "go"]),
    ], weights=(30, 10, 15, 10, 8, 7, 10, 10))[0]
# fmt: on


def math_group(rng: random.Random, pid: int) -> list[dict]:
    gold, right, wrong = _math_answers(rng)
    closeform = rng.random() < 0.4  # V-Triune's prompt pools: format_ratio > 0 asks for think/answer tags
    gold, out = rng.choice((f"\\boxed{{{gold}}}", gold)), []
    for _ in range(ROLLOUTS):
        ans, a, b, c = rng.choice(right if rng.random() < 0.5 else wrong), *rng.choices(range(1, 200), k=3)
        why = " ".join(rng.choice(STEPS).format(a=a, b=b, c=c) for _ in range(rng.randint(4, 30)))
        if closeform:
            text = f"<think>\n{why}\n</think>\n<answer>\n\\boxed{{{ans}}}\n</answer>"
        else:
            text = f"{why}\n\nTherefore, the final answer is $\\boxed{{{ans}}}$."
        fault = rng.random()
        if fault < 0.04:
            text = f"{why} The answer is {ans}."  # no box
        elif fault < 0.07:
            text = text[: rng.randint(10, len(why))]  # cut at the length limit
        elif fault < 0.10:
            text = f"{why} It could be \\boxed{{{rng.choice(wrong)}}} or \\boxed{{{ans}}}."  # hedging
        out.append({"kind": "math", "pid": pid, "completion": text, "gold": gold, "fw": 0.1 * closeform})
    return out


def _box_text(boxes: list[tuple[str, list[int]]], style: int) -> str:
    if style == 1:  # Python quotes, as in V-Triune's prompt example
        return "[" + ", ".join(f"{{'bbox_2d': {b}, 'label': '{lab}'}}" for lab, b in boxes) + "]"
    rows = ",\n".join(f'\t{{"bbox_2d": {b}, "label": "{lab}"}}' for lab, b in boxes)
    return f"```json\n[\n{rows}\n]\n```" if style == 2 else f"[\n{rows}\n]"


def detection_group(rng: random.Random, pid: int) -> list[dict]:
    w, h = rng.choice(SIZES)
    labels, gt, out = rng.sample(LABELS, rng.randint(1, 3)), [], []
    for _ in range(rng.randint(1, 8)):
        bw, bh = rng.uniform(0.04, 0.6) * w, rng.uniform(0.04, 0.6) * h
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        gt.append((rng.choice(labels), [round(x), round(y), round(x + bw), round(y + bh)]))
    for _ in range(ROLLOUTS):
        pred = []
        for lab, (x1, y1, x2, y2) in gt:
            if rng.random() < 0.12:
                continue  # missed
            s, size = rng.choice((0.005, 0.02, 0.06)), (x2 - x1, y2 - y1) * 2  # tight, fair, loose
            c = [min(max(round(v + rng.gauss(0, s) * d), 0), m)
                 for v, d, m in zip((x1, y1, x2, y2), size, (w, h) * 2, strict=True)]  # fmt: skip
            box = [min(c[0], c[2]), min(c[1], c[3]), max(c[0], c[2]), max(c[1], c[3])]
            pred.append((rng.choice(LABELS) if rng.random() < 0.08 else lab, box))
        for _ in range(rng.choice((0, 0, 0, 0, 1, 2))):  # extra boxes
            x, y = rng.randrange(w // 2), rng.randrange(h // 2)
            pred.append(
                (rng.choice(labels), [x, y, x + rng.randint(10, w // 2), y + rng.randint(10, h // 2)])
            )
        answer = _box_text(pred, rng.choices((0, 1, 2), weights=(55, 30, 15))[0])
        if rng.random() < 0.05:  # malformed: cut off, or a bracket lost
            answer = (
                answer[: rng.randint(1, len(answer))] if rng.random() < 0.5 else answer.replace("]", "", 1)
            )
        why = f"The image shows {len(gt)} objects of the listed classes. " + " ".join(
            f"The {lab} is near ({b[0]}, {b[1]}) and extends to ({b[2]}, {b[3]})." for lab, b in gt[:4]
        )
        text = f"<think>\n{why}\n</think>\n<answer>\n{answer}\n</answer>" if rng.random() > 0.02 else why
        out.append({"kind": "det", "pid": pid, "completion": text, "gt": gt, "size": (w, h), "fw": 0.1})
    return out


def make_specs(n: int, seed: int) -> list[dict]:
    rng, specs = random.Random(seed), []
    for pid in range(math.ceil(n / ROLLOUTS)):
        group = (math_group if rng.random() < MATH_SHARE else detection_group)(rng, pid)
        specs += [{**s, "step": step} for step in [rng.randint(1, TOTAL_STEPS)] for s in group]
    return specs[:n]


def to_item(s: dict) -> ScoreItem:
    """(a), (c): a triune reward item."""
    common = {"accuracy_weight": 1.0, "step": s["step"], "total_steps": TOTAL_STEPS}
    if s["kind"] == "math":
        return ScoreItem(
            verifier="math",
            completion=s["completion"],
            ground_truth=s["gold"],
            format_weight=s["fw"],
            **common,
        )
    gt = [Box(lab, *(float(v) for v in b)) for lab, b in s["gt"]]
    return ScoreItem(
        verifier="detection",
        completion=s["completion"],
        ground_truth=gt,
        params={"weights": DET_WEIGHTS},
        format_weight=0.1,
        image_size=s["size"],
        **common,
    )


def to_payload(s: dict) -> dict:
    """(b): V-Triune's request body, verifier params as a JSON string (docs/vtriune.md §2)."""
    math_row = s["kind"] == "math"
    parm = {"is_training": True, "step": s["step"], "total_steps": TOTAL_STEPS}
    parm |= {"image_path": [f"images/{s['pid']}.jpg"], "image_grid_thw": [[1, 476, 644]]}
    if not math_row:
        parm |= {"det_verifier_normalized": False, "det_reward_ratio": VT_RATIO}
        parm["image_grid_thw"] = [[1, s["size"][1], s["size"][0]]]
    solution = s["gold"] if math_row else "<answer>\n" + _box_text(s["gt"], 1) + "\n</answer>"
    return {"response": s["completion"], "prompt": "<image>Solve the problem in the image.",
            "answer": solution, "solution": solution, "data_source": "mm_math" if math_row else "v3det",
            "reward_verifier": "mathverify" if math_row else "detection",
            "reward_verifier_parm": json.dumps(parm), "format_ratio": s["fw"],
            "accuracy_ratio": 1.0}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# The variants. Servers run in their own session and are killed as a group on exit or Ctrl-C.


def _process_tree(pid: int) -> tuple[float, str]:
    """CPU seconds of `pid` and its descendants, and which of uvloop/httptools they loaded."""
    ticks, maps, stack = 0, "", [pid]
    while stack:
        p = stack.pop()
        with contextlib.suppress(OSError):
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            with open(f"/proc/{p}/maps") as fh:
                maps += fh.read()
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack += [int(c) for c in fh.read().split()]
    libs = "+".join(lib for lib in ("uvloop", "httptools") if f"/{lib}/" in maps) or "asyncio+h11"
    return ticks / os.sysconf("SC_CLK_TCK"), libs


@contextlib.contextmanager
def serving(module_args: list[str], health_url: str) -> Iterator[subprocess.Popen]:
    log = tempfile.TemporaryFile()  # noqa: SIM115  (V-Triune logs ~30 % of its requests)
    env = {**os.environ, "DET_IOU_THRESHOLD": "dynamic"}  # the fixed V-Triune launch (docs/vtriune.md §8)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])  # cli.py
    proc = subprocess.Popen(
        [sys.executable, "-m", *module_args], stdout=log, stderr=log, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"{module_args[0]} did not start:\n{log.read().decode()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health_url, timeout=1.0, trust_env=False).status_code == 200:
                    break
            time.sleep(0.2)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its process group
        proc.wait()
        log.close()


def run_server(kind: str, specs: list[dict], warm: list[dict], workers: int) -> dict:
    """(a) or (b): start the server, score the warm-up batch, then time the batch."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    url, trips = f"http://127.0.0.1:{port}", []
    if kind == "triune":
        from triune_train.rewards.client import RewardClient

        class TimedClient(RewardClient):  # records each batch's round trip
            async def _post(self, body: bytes, n: int, deadline: float | None) -> list:
                t = time.perf_counter()
                out = await super()._post(body, n, deadline)
                trips.append((time.perf_counter() - t, n))
                return out

        args, health = ["cli", "serve-rewards", "--port", port], "/healthz"
        client, prepare = TimedClient([url]), to_item

        def score(batch: list) -> tuple[list, list]:
            trips.clear()
            results = client.score(batch)
            if bad := [r.message for r in results if r.status not in ("ok", "not_applicable")]:
                print(f"(a): {len(bad)} items with status error/timeout, e.g. {bad[0]!r}")
            return [r.reward for r in results], [t for t, n in trips for _ in range(n)]
    else:
        from _vtriune_baseline import judge_all

        args, health = ["uvicorn", "_vtriune_baseline:app", "--app-dir", str(HERE), "--port", port], "/"
        prepare = to_payload

        def score(batch: list) -> tuple[list, list]:
            rewards, lat = judge_all([url + "/judge"], batch)
            return [r["final_reward"] for r in rewards], lat

    with serving([*args, "--workers", str(workers)], url + health) as proc:
        score([prepare(s) for s in warm])
        batch = [prepare(s) for s in specs]  # the batch as the trainer has it, before the clock starts
        cpu0, own0, t0 = _process_tree(proc.pid)[0], time.process_time(), time.perf_counter()
        rewards, lat = score(batch)
        wall = time.perf_counter() - t0
        cpu, libs = _process_tree(proc.pid)
    cpu += time.process_time() - own0 - cpu0
    return {"wall": wall, "cpu": cpu, "lat": lat, "rewards": rewards, "libs": libs}


def run_inline(specs: list[dict], warm: list[dict]) -> dict:
    """(c), in a fresh child process: `score()` item after item."""
    from triune_data.verifiers import score

    for s in warm:
        score(to_item(s))
    items, lat, rewards = [to_item(s) for s in specs], [], []
    cpu0, t0 = time.process_time(), time.perf_counter()
    for item in items:
        t = time.perf_counter()
        rewards.append(score(item).reward)
        lat.append(time.perf_counter() - t)
    return {
        "wall": time.perf_counter() - t0,
        "cpu": time.process_time() - cpu0,
        "lat": lat,
        "rewards": rewards,
    }


def run_micro(specs: list[dict]) -> dict:
    """Detection only, in a fresh child process: every path over the same items, interleaved in
    blocks of 200 so that the machine's drift hits them alike."""
    import numpy as np
    from _vtriune_baseline import coco_eval, coco_objects

    from triune_data.verifiers import score
    from triune_data.verifiers.common.box_parse import parse_boxes
    from triune_data.verifiers.common.box_score import answer_text, ground_truth_boxes
    from triune_data.verifiers.common.coco_map import coco_ap

    def parse(s: dict, item: ScoreItem) -> tuple:  # what the verifier parses, as it parses it
        gt, gt_labels = ground_truth_boxes(
            [Box(lab, *map(float, b)) for lab, b in s["gt"]], match_labels=True
        )
        text = answer_text(item.completion)
        pred = parse_boxes(text) if text is not None else None
        return (gt, gt_labels, *((pred.boxes, pred.labels) if pred else (np.zeros((0, 4)), ())))

    def rows(boxes: np.ndarray, labels: list | tuple) -> list[dict]:  # V-Triune's parsed-box dicts
        return [{"bbox_2d": b.tolist(), "label": lab} for b, lab in zip(boxes, labels, strict=True)]

    det = [s for s in specs if s["kind"] == "det"]
    items = [to_item(s) for s in det]
    zero = {"map": 0.0, "map50": 0.0, "map75": 0.0}  # V-Triune's AP when no box has a GT label
    paths: dict[str, Callable] = {
        "verifier": lambda i: score(i).components,
        "parse": parse,
        "build": lambda g, gl, p, pl: (coco_objects(rows(p, pl), rows(g, gl)),),
        "eval": lambda o: coco_eval(*o) if o else zero,
        "coco_ap": coco_ap,
    }
    seconds = dict.fromkeys(paths, 0.0)
    out: dict[str, list] = {name: [] for name in paths}

    def timed(name: str, args: list[tuple]) -> list:
        t = time.perf_counter()
        res = [paths[name](*a) for a in args]
        seconds[name] += time.perf_counter() - t
        out[name] += res
        return res

    for a in [(i,) for i in items[:100]]:  # warm-up
        paths["verifier"](*a)
    # Block by block, every path in turn: drift in machine speed hits all paths alike.
    for start in range(0, len(items), 200):
        block, specs_block = items[start : start + 200], det[start : start + 200]
        timed("verifier", [(i,) for i in block])
        parsed = timed("parse", list(zip(specs_block, block, strict=True)))
        objects = timed("build", parsed)
        timed("eval", objects)
        timed("coco_ap", parsed)
    us = {name: seconds[name] / len(items) * 1e6 for name in paths}
    verdicts, stats, aps = out["verifier"], out["eval"], out["coco_ap"]
    worst = max(abs(x - st[k]) for v, ap, st in zip(verdicts, aps, stats, strict=True)
                for k in zero for x in (v[k], max(getattr(ap, k), 0.0)))  # fmt: skip
    return {"n": len(det), "worst": worst, **us}


# ----------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="verifier processes (a), uvicorn workers (b)")
    ap.add_argument("--warmup", type=int, default=200, help="items each variant scores before it is timed")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the servers are cleaned up

    specs, warm, w = make_specs(args.items, args.seed), make_specs(args.warmup, args.seed + 1), args.workers
    n_math = sum(s["kind"] == "math" for s in specs)
    print(f"{len(specs)} items ({n_math} math, {len(specs) - n_math} detection), {os.cpu_count()} CPU cores")
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:
        c = ex.submit(run_inline, specs, warm).result()
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as ex:  # a fresh process again
        m = ex.submit(run_micro, specs).result()
    a, b = run_server("triune", specs, warm, w), run_server("vtriune", specs, warm, w)

    def ms(xs: list[float], q: int) -> float:
        return statistics.quantiles(xs, n=100, method="inclusive")[q - 1] * 1000

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    print(f"\ncommand: .venv/bin/python bench/reward_bench.py {' '.join(sys.argv[1:])}".rstrip())
    print("\n| variant | processes | items/s | items/s per verifier core | p50 ms | p99 ms | CPU ms/item "
          "| mean reward |\n|---|---|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    rate = {}
    for key, name, procs, cores, r in (
        (
            "a",
            f"(a) triune service --workers {w} + RewardClient",
            f"{w} + server + client, {a['libs']}",
            w,
            a,
        ),
        ("b", f"(b) V-Triune design, uvicorn --workers {w}", f"{w} + client, {b['libs']}", w, b),
        ("c", "(c) `score()` in a loop", "1", 1, c),
    ):
        n = len(r["rewards"])
        rate[key] = n / r["wall"]
        lat, cpu, mean = (
            (ms(r["lat"], 50), ms(r["lat"], 99)),
            1000 * r["cpu"] / n,
            statistics.fmean(r["rewards"]),
        )
        print(f"| {name} | {procs} | {rate[key]:.0f} | {rate[key] / cores:.0f} | {lat[0]:.1f} | {lat[1]:.1f} "
              f"| {cpu:.2f} | {mean:.4f} |")  # fmt: skip
    same = sum(abs(x - y) <= 1e-12 for x, y in zip(a["rewards"], c["rewards"], strict=True))
    gap, speedup = rate["c"] / (rate["a"] / w), rate["a"] / rate["b"]
    print(f"\n(a) and (c) rewards identical on {same}/{len(specs)} items")
    print(f"(a)/(b) items/s: {speedup:.1f}x (target >= 5): {verdict(speedup >= 5)}")
    print(f"(c)/((a)/{w}) items/s per core: {gap:.2f} (target <= 1.5): {verdict(gap <= 1.5)}")

    print(f"\nDetection micro-benchmark, {m['n']} items, one process:\n\n| path | µs/item |\n|---|---:|")
    for label, key in (
        ("our detection verifier, whole (`score()`: parse, 6 matchings, COCO AP, format)", "verifier"),
        ("the verifier's parsing alone (ground truth + answer)", "parse"),
        ("pycocotools: one-image COCO ground truth + loadRes", "build"),
        ("pycocotools: COCOeval evaluate/accumulate/summarize", "eval"),
        ("our `coco_ap` alone", "coco_ap"),
    ):
        print(f"| {label} | {m[key]:.0f} |")
    whole = (m["parse"] + m["build"] + m["eval"]) / m["verifier"]
    alone, ev = (m["build"] + m["eval"]) / m["coco_ap"], m["eval"] / m["coco_ap"]
    print(
        f"\nmap/map50/map75, max |ours - pycocotools|: {m['worst']:.1e} (target <= 1e-9): "
        f"{verdict(m['worst'] <= 1e-9)}"
    )
    print(f"(i)  parsing + pycocotools / whole verifier: {whole:.1f}x (target >= 20): {verdict(whole >= 20)}")
    print(f"(ii) COCO objects + COCOeval / coco_ap: {alone:.1f}x (target >= 20): {verdict(alone >= 20)}")
    print(f"     COCOeval alone / coco_ap: {ev:.1f}x (target >= 20): {verdict(ev >= 20)}")


if __name__ == "__main__":
    main()
