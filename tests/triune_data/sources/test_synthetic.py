"""The `synthetic` source: determinism, exact ground truth re-derived from the drawn scene, pixels.

Every answer is recomputed here from what the image shows (the drawing ops and the decoded
pixels), by code independent of the generators: a count from the shapes drawn, a box from the
non-background pixels, a chart answer from the numbers written above the bars, a thermometer
reading from the tick labels and the liquid's top, and so on.
"""

import ast
import io
import itertools
import json
import math
import multiprocessing
import operator
import re
import textwrap
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageColor
from pydantic import ValidationError

from triune_data.build import build_dataset
from triune_data.materialize import MaterializeOptions, SourceRun, materialize
from triune_data.recipe import load_recipe
from triune_data.sources.base import Draft, PromptPool, SourceContext
from triune_data.sources.common.synth_render import COLORS, font, render_scene
from triune_data.sources.synthetic import SyntheticOptions, read_synthetic
from triune_data.types import TASKS, Sample

REPO = Path(__file__).resolve().parents[3]
QUESTION = PromptPool(("{question}",), (("Think step by step.",), ("Put the final answer in \\boxed{}.",)))
POOLS = {
    "detection": PromptPool(("Locate every object of these classes:\n{categories}",)),
    "grounding": PromptPool(("Locate {expression}.",)),
    **{t: QUESTION for t in ("counting", "ocr", "math", "puzzle", "science", "chart")},
}
COLOR_NAME = {v: k for k, v in COLORS.items()}


def make(
    task: str, count: int = 24, seed: int = 0, split: str = "train", source: str = "synth", **opts
) -> list[Draft]:
    ctx = SourceContext(data_source=source, split=split, seed=seed, base_dir=REPO, prompts=POOLS)
    return list(read_synthetic(SyntheticOptions(task=task, count=count, **opts), ctx))


def kw(d: Draft) -> dict:
    return dict(d.images[0].kwargs)


def pixels(d: Draft) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(d.images[0].load())).convert("RGB"))


def texts(d: Draft) -> list[tuple[int, int, str]]:
    return [(op[1], op[2], op[3]) for op in kw(d)["ops"] if op[0] == "text"]


def shapes(d: Draft) -> list[tuple[str, str, int, int, int, int]]:
    """(colour name, kind, x1, y1, x2, y2) with exclusive x2, y2 for the coloured shapes."""
    return [
        (COLOR_NAME[op[2]], op[1], op[3], op[4], op[5] + 1, op[6] + 1)
        for op in kw(d)["ops"]
        if op[0] == "shape" and op[2] in COLOR_NAME
    ]


def question(d: Draft) -> str:
    return d.prompt[0].content.removeprefix("<image>").split("\n\n")[0]


def value(answer: str) -> Fraction:
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", answer)
    return Fraction(int(m[2]), int(m[3])) * (-1 if m[1] else 1) if m else Fraction(answer)


# ----------------------------------------------------------------------------------------------
# Determinism and independence


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_drafts_and_bytes(task):
    a, b = make(task, 6), make(task, 6)
    assert a == b
    assert [d.images[0].load() for d in a] == [d.images[0].load() for d in b]


@pytest.mark.parametrize("task", TASKS)
def test_seed_source_and_split_each_change_the_samples(task):
    base = [kw(d)["ops"] for d in make(task, 6)]
    for other in (make(task, 6, seed=1), make(task, 6, source="other"), make(task, 6, split="test")):
        assert sum(kw(d)["ops"] != ops for d, ops in zip(other, base, strict=True)) >= 5


def test_a_sample_does_not_depend_on_the_others():
    assert make("counting", 5) == make("counting", 12)[:5]


def test_ids_are_unique_and_carry_the_split():
    train, test = make("math", 30), make("math", 5, split="test")
    ids = [d.id for d in train + test]
    assert len(set(ids)) == len(ids)
    assert (train[3].id, train[3].original_id, test[0].id) == ("train-000003", "train-000003", "test-000000")
    assert train[3].images[0].name == "synthetic/synth/train-000003.png"


# ----------------------------------------------------------------------------------------------
# Drafts and images


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_every_task_yields_valid_drafts_and_decodable_images(task, fmt):
    drafts = make(task, 8, format=fmt, image_size=[200, 160], image_size_max=[420, 300])
    assert len(drafts) == 8
    for d in drafts:
        args = kw(d)
        assert d.task == task and d.verifier is None and d.box_frame == "pixel"
        assert d.prompt[0].content.count("<image>") == 1 and len(d.images) == 1
        scalars = [v for op in args["ops"] for v in op]
        assert all(isinstance(v, (int, str)) or v is None for v in scalars)  # exact and picklable: no floats
        im = Image.open(io.BytesIO(d.images[0].load()))
        assert im.format == {"png": "PNG", "jpeg": "JPEG"}[fmt]
        assert im.size == (args["width"], args["height"])
        assert 200 <= im.width <= 420 and 160 <= im.height <= 300
        im.load()
        if task in ("detection", "grounding"):
            assert d.answer == d.ground_truth == "" and d.boxes
            assert all(0 <= b.x1 < b.x2 <= im.width and 0 <= b.y1 < b.y2 <= im.height for b in d.boxes)
        else:
            assert d.answer == d.ground_truth and d.ground_truth.strip() and not d.boxes
            assert "boxed" not in d.ground_truth and len(d.ground_truth) <= 20


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("size", [[32, 32], [120, 48], [48, 160], [96, 72]])
def test_tiny_and_narrow_images_still_render(task, size):
    for d in make(task, 12, seed=11, image_size=size):
        assert Image.open(io.BytesIO(d.images[0].load())).size == tuple(size)
        assert all(0 <= b.x1 < b.x2 <= size[0] and 0 <= b.y1 < b.y2 <= size[1] for b in d.boxes)


@pytest.mark.parametrize("task", ["detection", "grounding", "counting"])
@pytest.mark.parametrize("max_objects", [2, 3, 24])
def test_any_number_of_objects_works(task, max_objects):
    for d in make(task, 10, seed=12, max_objects=max_objects):
        assert 1 <= len(shapes(d)) <= max_objects


def _render(args: dict) -> bytes:
    return render_scene(**args)


def test_rendering_in_another_process_gives_identical_bytes():
    drafts = [make(task, 1, seed=5)[0] for task in TASKS]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = list(pool.map(_render, [kw(d) for d in drafts]))
    assert remote == [d.images[0].load() for d in drafts]


@pytest.mark.parametrize(
    "opts, error",
    [
        ({"task": "segmentation", "count": 3}, "task"),
        ({"task": "math", "count": 0}, "count"),
        ({"task": "math", "count": 3, "image_size": [31, 240]}, "image_size"),
        ({"task": "math", "count": 3, "image_size": [320, 5000]}, "image_size"),
        ({"task": "math", "count": 3, "image_size": [320]}, "image_size"),
        ({"task": "math", "count": 3, "format": "gif"}, "format"),
        ({"task": "counting", "count": 3, "max_objects": 1}, "max_objects"),
        ({"task": "math", "count": 3, "colour": "red"}, "colour"),
    ],
)
def test_bad_options_are_refused(opts, error):
    with pytest.raises(ValidationError, match=error):
        SyntheticOptions(**opts)


# ----------------------------------------------------------------------------------------------
# Exact ground truth, task by task


@pytest.mark.parametrize("seed", range(3))
def test_detection_boxes_are_the_drawn_extents_of_every_listed_shape(seed):
    for d in make("detection", 12, seed=seed, max_objects=10):
        img, bg = pixels(d), np.array(ImageColor.getrgb(kw(d)["background"]))
        listed = [line.removeprefix("- ") for line in d.prompt[0].content.split(":\n", 1)[1].splitlines()]
        assert listed == sorted(set(listed))
        drawn = shapes(d)
        expected = sorted(
            (f"{c} {k}", x1, y1, x2, y2) for c, k, x1, y1, x2, y2 in drawn if f"{c} {k}" in listed
        )
        assert (
            sorted((b.label, b.x1, b.y1, b.x2, b.y2) for b in d.boxes) == expected
        )  # all of them, nothing else
        for b in d.boxes:
            x1, y1, x2, y2 = int(b.x1), int(b.y1), int(b.x2), int(b.y2)
            ox, oy = max(0, x1 - 2), max(0, y1 - 2)  # shapes are >= 4 px apart: the margin holds no other
            ys, xs = np.nonzero((img[oy : y2 + 2, ox : x2 + 2] != bg).any(axis=2))
            assert (xs.min() + ox, ys.min() + oy, xs.max() + ox + 1, ys.max() + oy + 1) == (x1, y1, x2, y2)
            centre = img[(y1 + y2) // 2, (x1 + x2) // 2]
            assert tuple(centre) == ImageColor.getrgb(COLORS[b.label.split()[0]])


def _resolve(expression: str, objs: list[tuple[str, int, int, int, int]]) -> tuple:
    """The one object an expression refers to, or an AssertionError if it is ambiguous."""
    side = lambda o: o[3] - o[1]  # noqa: E731
    m = re.fullmatch(r"the (largest|smallest|leftmost|rightmost|topmost|bottommost) (\w+ \w+)", expression)
    if m:
        group = [o for o in objs if o[0] == m[2]]
        beats = {
            "largest": lambda a, b: side(a) > side(b),
            "smallest": lambda a, b: side(a) < side(b),
            "leftmost": lambda a, b: a[3] <= b[1],
            "rightmost": lambda a, b: a[1] >= b[3],
            "topmost": lambda a, b: a[4] <= b[2],
            "bottommost": lambda a, b: a[2] >= b[4],
        }[m[1]]
        hits = [t for t in group if all(beats(t, g) for g in group if g is not t)]
        assert len(group) >= 2 and len(hits) == 1, (expression, group)
        return hits[0]
    m = re.fullmatch(r"the (\w+ \w+) (left of|right of|above|below) the (\w+ \w+)", expression)
    if m:
        (anchor,) = [o for o in objs if o[0] == m[3]]
        rel = {
            "left of": lambda a: a[3] <= anchor[1],
            "right of": lambda a: a[1] >= anchor[3],
            "above": lambda a: a[4] <= anchor[2],
            "below": lambda a: a[2] >= anchor[4],
        }[m[2]]
        group = [o for o in objs if o[0] == m[1]]
        hits = [o for o in group if rel(o)]
        assert len(group) >= 2 and len(hits) == 1, (expression, group, anchor)
        return hits[0]
    (hit,) = [o for o in objs if f"the {o[0]}" == expression]
    return hit


def test_grounding_expression_singles_out_the_boxed_shape():
    kinds = set()
    for d in make("grounding", 60, seed=3):
        objs = [(f"{c} {k}", x1, y1, x2, y2) for c, k, x1, y1, x2, y2 in shapes(d)]
        (box,) = d.boxes
        expression = question(d).removeprefix("Locate ").removesuffix(".")
        assert box.label == expression
        assert _resolve(expression, objs)[1:] == (box.x1, box.y1, box.x2, box.y2)
        kinds.add("relation" if " the " in expression[4:] else expression.split()[1])
    assert "relation" in kinds and len(kinds) >= 4  # relations and several superlatives occur


def test_counting_answer_is_the_number_of_matching_shapes_drawn():
    answers = set()
    for d in make("counting", 40, seed=1, max_objects=10):
        noun = re.search(r"(?:How many|Count the|number of) (\w+(?: \w+)?) (?:are|can|in)", question(d))[
            1
        ].split()
        drawn = shapes(d)
        if noun[-1] == "shapes":
            count = sum(c == noun[0] for c, *_ in drawn)
        else:
            kind, colour = noun[-1].removesuffix("s"), noun[0] if len(noun) == 2 else None
            count = sum(k == kind and colour in (None, c) for c, k, *_ in drawn)
        assert d.ground_truth == str(count)
        boxes = [s[2:] for s in drawn]  # nothing hides anything: the pixels show every shape counted
        assert all(
            a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
            for a in boxes
            for b in boxes
            if a != b
        )
        answers.add(count)
    assert len(answers) >= 4


def test_ocr_answer_is_the_text_drawn_inside_the_image():
    for d in make("ocr", 30, seed=2):
        ((x, y, text),) = texts(d)
        assert text == d.ground_truth
        op = next(op for op in kw(d)["ops"] if op[0] == "text")
        left, top, right, bottom = font(op[4]).getbbox(text, anchor=op[6])
        img = pixels(d)
        assert x + left >= 0 and x + right <= img.shape[1] and y + top >= 0 and y + bottom <= img.shape[0]
        ink = img[y + top : y + bottom, x + left : x + right]
        assert (ink != ink[0, 0]).any(axis=2).sum() > 20  # the glyphs are there


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _evaluate(node: ast.AST) -> Fraction:
    """Arithmetic on our own rendered expressions (numbers, + - * /, parentheses) in exact fractions."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.BinOp):
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    assert isinstance(node, ast.Constant) and isinstance(node.value, int)
    return Fraction(node.value)


def solve_math(d: Draft) -> Fraction:
    q, t = question(d), [s for _, _, s in texts(d)]
    if "Solve the equation" in q:
        a, sign, b, c = re.fullmatch(r"(\d+)x ([+-]) (\d+) = (-?\d+)", t[0]).groups()
        return (int(c) - int(sign + b)) / Fraction(int(a))
    if t[0].endswith(" = ?"):
        return _evaluate(ast.parse(t[0].removesuffix(" = ?"), mode="eval"))
    if "rectangle" in q:
        a, b = (int(s.removesuffix(" cm")) for s in t)
        return Fraction(a * b if "area" in q else 2 * (a + b))
    legs = [int(s) for s in t if s != "?"]
    hyp = math.isqrt(sum(v * v for v in legs))
    assert hyp * hyp == sum(v * v for v in legs)
    return Fraction(hyp)


def solve_chart(d: Draft) -> Fraction:
    q, ops = question(d), kw(d)["ops"]
    t = sorted(texts(d), key=lambda p: p[1])[1:]  # the topmost text is the title
    numbers = {x: int(s) for x, _, s in t if s.isdigit()}
    names = {s: numbers[x] for x, _, s in t if not s.isdigit()}  # a bar's name sits under its value
    tops = [op[2] for op in sorted(op for op in ops if op[0] == "rect")]  # bars left to right
    pairs = list(zip((v for _, v in sorted(numbers.items())), tops, strict=True))
    assert len(names) == len(pairs) >= 3
    assert all(ta <= tb for va, ta in pairs for vb, tb in pairs if va > vb)  # bigger value, taller bar
    vals = list(names.values())
    if m := re.fullmatch(r"What is the value for (\w+)\?", q):
        return Fraction(names[m[1]])
    if m := re.fullmatch(r"What is the sum of the values for (\w+) and (\w+)\?", q):
        return Fraction(names[m[1]] + names[m[2]])
    if m := re.fullmatch(r"How much greater is the value for (\w+) than for (\w+)\?", q):
        assert names[m[1]] > names[m[2]]
        return Fraction(names[m[1]] - names[m[2]])
    return Fraction(sum(vals) if "total" in q else max(vals) - min(vals))


def _cells(d: Draft) -> list[tuple[int, int, str]]:
    """(row top, column left, content) of every framed cell; content is a number, "?" or "polyN"."""
    ops = kw(d)["ops"]
    frames = [op for op in ops if op[0] == "rect"]
    out = []
    for _, x1, y1, x2, y2, *_ in frames:
        inside = [
            op for op in ops if op[0] in ("text", "shape") and x1 < (op[1] if op[0] == "text" else op[3]) < x2
        ]
        inside = [op for op in inside if y1 < (op[2] if op[0] == "text" else op[4]) < y2]
        (op,) = inside
        out.append((y1, x1, op[3] if op[0] == "text" else op[1]))
    return sorted(out)


def solve_puzzle(d: Draft) -> Fraction:
    cells = _cells(d)
    if "grid" in question(d):
        rows = [[c for _, _, c in cells[i : i + 3]] for i in range(0, 9, 3)]
        full = [list(map(int, r)) for r in rows if "?" not in r]
        plus = all(a + b == c for a, b, c in full)
        assert plus != all(a * b == c for a, b, c in full)  # the complete rows tell the rule apart
        a, b, c = next(r for r in rows if "?" in r)
        if c == "?":
            return Fraction(int(a) + int(b) if plus else int(a) * int(b))
        known, c = int(b if a == "?" else a), int(c)
        return Fraction(c - known) if plus else Fraction(c, known)
    seq = [c for _, _, c in cells]
    miss = seq.index("?")
    if any(s.startswith("poly") for s in seq):
        sides = {k: int(s.removeprefix("poly")) for k, s in enumerate(seq) if s != "?"}
        (first,) = {v - k for k, v in sides.items()}  # one more side per tile
        return Fraction(first + miss)
    known = [(i, Fraction(int(s))) for i, s in enumerate(seq) if s != "?"]
    (i0, v0), (i1, v1) = known[0], known[-1]
    step = (v1 - v0) / (i1 - i0)
    if all(v == v0 + step * (i - i0) for i, v in known):
        return v0 + step * (miss - i0)
    ratio = next(b / a for (i, a), (j, b) in itertools.pairwise(known) if j == i + 1)
    assert all(v == v0 * ratio ** (i - i0) for i, v in known)
    return v0 * ratio ** (miss - i0)


def _read_scale(ticks: list[int], labels: list[tuple[int, int]], at: int) -> Fraction:
    """The scale value at tick position `at` (which must be a tick), from the labelled ticks."""
    (p0, v0), (p1, v1) = labels[0], labels[-1]
    i0, i1 = ticks.index(p0), ticks.index(p1)
    return v0 + Fraction(v1 - v0, i1 - i0) * (ticks.index(at) - i0)


def solve_science(d: Draft) -> Fraction:
    q, t, ops = question(d), texts(d), kw(d)["ops"]
    if "thermometer" in q:
        ticks = sorted(op[2] for op in ops if op[0] == "line")
        labels = sorted((y, int(s)) for _, y, s in t if re.fullmatch(r"-?\d+", s))
        (liquid,) = [op for op in ops if op[0] == "rect" and op[6] is None]
        return _read_scale(ticks, labels, liquid[2])  # the liquid ends exactly on a tick
    if "ruler" in q:
        ticks = sorted(op[1] for op in ops if op[0] == "line" and op[1] == op[3] and op[5] != "#888888")
        labels = sorted((x, int(s)) for x, _, s in t if s.isdigit())
        (bar,) = [op for op in ops if op[0] == "rect" and op[5] == COLORS[re.search(r"the (\w+) bar", q)[1]]]
        return _read_scale(ticks, labels, bar[3]) - _read_scale(ticks, labels, bar[1])
    if "circuit" in q:
        ohms = [int(s.split()[0]) for _, _, s in t if s.endswith(" ohm")]
        volts = next(int(s.split()[0]) for _, _, s in t if s.endswith(" V"))
        return Fraction(sum(ohms)) if "resistance" in q else Fraction(volts, sum(ohms))
    (pivot,) = [op for op in ops if op[0] == "shape"]
    cx = (pivot[3] + pivot[5]) / 2
    unit = min(abs(x - cx) for x, _, s in t if s == "1")
    (mass_x, mass), (ask_x, _) = sorted(
        ((x, s) for x, _, s in t if s.endswith(" kg") or s == "?"), key=lambda p: p[1] == "?"
    )
    dm, da = round(abs(mass_x - cx) / unit), round(abs(ask_x - cx) / unit)
    return Fraction(int(mass.split()[0]) * dm, da)


@pytest.mark.parametrize(
    "task, solve",
    [("math", solve_math), ("chart", solve_chart), ("puzzle", solve_puzzle), ("science", solve_science)],
)
def test_reasoning_answers_follow_from_what_is_drawn(task, solve):
    answers = []
    for d in make(task, 40, seed=4):
        assert value(d.ground_truth) == solve(d), (question(d), texts(d), d.ground_truth)
        answers.append(d.ground_truth)
    assert len(set(answers)) >= 15


@pytest.mark.parametrize("task", TASKS)
def test_ground_truth_gets_full_marks_from_the_task_verifier(task):
    from triune_data.verifiers import ScoreItem, score

    run = SourceRun(adapter="synthetic", data_source="synth", split="train")  # task-default verifiers
    for d in make(task, 6, seed=6):
        s = materialize(d, run, MaterializeOptions())
        assert isinstance(s, Sample), s
        size = (s.image_sizes[0].width, s.image_sizes[0].height)
        if task in ("detection", "grounding"):
            right = f"<think>\nfound them\n</think>\n<answer>\n{s.ground_truth}\n</answer>"
            wrong = re.sub(r'"bbox_2d":\s*\[', '"bbox_2d": [1000, 1000, 1001, 1001, ', right)  # not a box
        else:
            right = f"<think>\nread it\n</think>\nThe answer is \\boxed{{{s.ground_truth}}}."
            wrong = right.replace(f"{{{s.ground_truth}}}", "{98765}")
        r = s.reward
        verdicts = [
            score(
                ScoreItem(
                    verifier=r.verifier,
                    completion=c,
                    ground_truth=s.ground_truth,
                    params=r.verifier_params,
                    image_size=size,
                    step=9,
                    total_steps=10,
                )
            )
            for c in (right, wrong)
        ]
        assert [(v.status, v.accuracy) for v in verdicts] == [("ok", 1.0), ("ok", 0.0)], (
            s.ground_truth,
            verdicts,
        )


def test_fractions_are_written_in_lowest_terms_for_math_verify():
    fracs = [d.ground_truth for d in make("math", 120, seed=9) if "frac" in d.ground_truth]
    assert fracs
    for f in fracs:
        m = re.fullmatch(r"-?\\frac\{(\d+)\}\{(\d+)\}", f)
        assert m and math.gcd(int(m[1]), int(m[2])) == 1 and int(m[2]) > 1


# ----------------------------------------------------------------------------------------------
# Pools, the demo recipe, end to end


POOL_FIELDS = {
    "detection": {"categories": "- a\n- b"},
    "detection_single": {"category": "dog"},
    "grounding": {"expression": "the red circle"},
    "counting_object": {"category": "dog"},
    "mcq": {"question": "Q?", "options": "A. x\nB. y"},
    **{t: {"question": "Q?"} for t in ("counting", "ocr", "math", "puzzle", "science", "chart")},
}


def test_vtriune_pools_fill_every_template_with_the_contract_fields():
    loaded = load_recipe(REPO / "recipes" / "demo.yaml")
    assert set(loaded.prompts) == set(POOL_FIELDS)
    for name, pool in loaded.prompts.items():
        for template in pool.templates:
            text = template.format(**POOL_FIELDS[name])
            assert "{" not in text.replace("{'bbox_2d'", "").replace("\\boxed{}", "")
        tail = " ".join(s for sfx in pool.suffixes for s in sfx)
        if name in ("detection", "detection_single", "grounding"):
            assert "<answer>\n[{'bbox_2d': [x1,y1,x2,y2],'label': label_name}]\n</answer>" in tail
        else:
            assert len(pool.suffixes) == 2 and all("\\boxed{" in s for s in pool.suffixes[1])
            assert len(pool.suffixes[0]) >= 10 or name == "mcq"


def test_demo_recipe_covers_all_tasks_and_materializes_cleanly():
    loaded = load_recipe(REPO / "recipes" / "demo.yaml")
    assert loaded.recipe.seed == 0
    tasks, splits = set(), set()
    for entry, opts in zip(loaded.recipe.sources, loaded.options, strict=True):
        ctx = SourceContext(
            entry.data_source, entry.split, loaded.recipe.seed, loaded.base_dir, loaded.prompts
        )
        run = SourceRun(
            adapter="synthetic", data_source=entry.data_source, split=entry.split, verifier="format"
        )
        drafts = list(read_synthetic(opts, ctx))
        assert len(drafts) == opts.count
        assert all(isinstance(materialize(d, run, MaterializeOptions()), Sample) for d in drafts[:4])
        tasks.add(opts.task)
        splits.add(entry.split)
    assert tasks == set(TASKS) and splits == {"train", "test"}


E2E = """\
name: synth-e2e
seed: 7
prompts: {pools}
sources:
  - {{adapter: synthetic, data_source: s_det, options: {{task: detection, count: 10}}}}
  - {{adapter: synthetic, data_source: s_grd, options: {{task: grounding, count: 10, format: jpeg}}}}
  - {{adapter: synthetic, data_source: s_math, reward: {{verifier: format}}, options: {{task: math, count: 10}}}}
  - {{adapter: synthetic, data_source: s_math, split: test, reward: {{verifier: format}},
     options: {{task: math, count: 4}}}}
"""


def test_end_to_end_build_is_byte_identical_across_runs(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(textwrap.dedent(E2E.format(pools=REPO / "recipes" / "prompts" / "vtriune.yaml")))
    build_dataset(recipe, tmp_path / "a")
    build_dataset(recipe, tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / "data").rglob("*.parquet"))
    assert [str(f) for f in files] == [
        "data/s_det/train-00000-of-00001.parquet",
        "data/s_grd/train-00000-of-00001.parquet",
        "data/s_math/test-00000-of-00001.parquet",
        "data/s_math/train-00000-of-00001.parquet",
    ]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    for ds, n in (("s_det", 10), ("s_grd", 10), ("s_math", 14)):
        assert (
            manifest["sources"][ds]["read"],
            manifest["sources"][ds]["kept"],
            manifest["sources"][ds]["rejected"],
        ) == (n, n, 0)

    rows = pq.read_table(tmp_path / "a" / "data" / "s_det" / "train-00000-of-00001.parquet").to_pylist()
    ctx = SourceContext("s_det", "train", 7, tmp_path, load_recipe(recipe).prompts)
    drafts = list(read_synthetic(SyntheticOptions(task="detection", count=10), ctx))
    for row, d in zip(rows, drafts, strict=True):
        assert row["id"] == f"s_det/{d.id}" and row["prompt"][0]["content"] == d.prompt[0].content
        assert [(b["label"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in row["boxes"]] == [
            (b.label, b.x1, b.y1, b.x2, b.y2) for b in d.boxes
        ]
        assert json.loads(row["ground_truth"])[0]["bbox_2d"] == [
            d.boxes[0].x1,
            d.boxes[0].y1,
            d.boxes[0].x2,
            d.boxes[0].y2,
        ]
        assert row["images"][0]["bytes"] == d.images[0].load()
        assert row["reward"]["verifier"] == "detection" and row["provenance"]["source"] == "synthetic"
    grd = pq.read_table(tmp_path / "a" / "data" / "s_grd" / "train-00000-of-00001.parquet").to_pylist()
    assert all(
        r["images"][0]["bytes"][:2] == b"\xff\xd8" and r["images"][0]["path"].endswith(".jpg") for r in grd
    )
    math_rows = pq.read_table(tmp_path / "a" / "data" / "s_math" / "test-00000-of-00001.parquet").to_pylist()
    assert [r["id"] for r in math_rows] == [f"s_math/test-{i:06d}" for i in range(4)]
    assert all(
        r["ground_truth"] == r["answer"] and r["prompt"][0]["content"].startswith("<image>")
        for r in math_rows
    )
