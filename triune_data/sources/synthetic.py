"""`synthetic`: generated images for all eight tasks, with exact ground truth.

The embedded demo data, and a way to exercise every stage without downloads. `GENERATORS` maps
each task to a small function that lays out one scene and computes its answer:

- detection, grounding, counting (here): coloured shapes ("red circle", "blue star", ...) placed
  without overlap, >= 4 px apart. Detection lists the categories present (plus unlisted distractor
  shapes) and boxes every instance; grounding refers to one shape by a superlative ("the largest
  green triangle", "the leftmost ...") or a relation to a unique anchor ("the blue square left of the
  red circle"), only when exactly one shape fits; counting asks for a colour, a kind or both.
  Boxes are the exact drawn extents in pixels: a shape drawn over pixel columns x1..x2 has the box
  [x1, x2 + 1), the pixel-edge convention of the canonical frame.
- ocr, math, chart, puzzle, science (`_synth_questions`): a figure plus a question; answers are
  integers, decimals or `\\frac{a}{b}`, as math-verify compares them (no `\\boxed{}`).

Sample `i` depends only on (recipe seed, data_source, task, split, i): it is drawn from its own
`random.Random(ctx.rng_seed(...))`, so samples never depend on each other and neither `limit` nor
the worker count changes anything. Ids are `<split>-<i>`, so a train and a test split of one
data_source never collide. The adapter decides every coordinate; `_synth_render.render_scene`
draws the ops (plain tuples) when the pipeline loads the image, in whatever process that is.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import Field

from triune_data.sources.base import (
    Draft,
    DraftBox,
    ImageRender,
    Reject,
    SourceContext,
    SourceOptions,
    register_source,
)
from triune_data.sources.common import synth_questions as questions
from triune_data.sources.common.synth_render import BACKGROUNDS, COLORS, SHAPES, Op, render_scene
from triune_data.types import TASKS, Task

Side = Annotated[int, Field(ge=32, le=4096)]
CATEGORIES: tuple[tuple[str, str], ...] = tuple((k, c) for c in COLORS for k in SHAPES)  # (kind, colour)
GAP = 4  # free pixels between shapes, so every box is its own


class SyntheticOptions(SourceOptions):
    task: Task = Field(description="Which of the eight tasks to generate.")
    count: int = Field(ge=1, le=10_000_000, description="Number of samples.")
    image_size: tuple[Side, Side] = Field(
        (320, 240),
        description="[width, height] of every image (legible from about 160 px; smaller is for fast tests).",
    )
    image_size_max: tuple[Side, Side] | None = Field(
        None,
        description="With it, each sample's width and height are drawn uniformly between image_size and this.",
    )
    format: Literal["png", "jpeg"] = Field("png", description="Image encoding (JPEG: quality 92, 4:4:4).")
    max_objects: int = Field(
        8, ge=2, le=24, description="Most shapes in a detection, grounding or counting image."
    )


@dataclass
class Scene:
    """One generated sample before drawing: the ops, the prompt fields and the exact answer."""

    pool: str
    fields: dict[str, str]
    answer: str  # "" for box tasks: the pipeline writes the ground truth from `boxes`
    ops: list[Op]
    boxes: list[DraftBox] = field(default_factory=list)


@dataclass(frozen=True)
class Obj:
    kind: str
    color: str
    x1: int
    y1: int
    x2: int  # inclusive, as drawn
    y2: int

    @property
    def label(self) -> str:
        return f"{self.color} {self.kind}"

    @property
    def side(self) -> int:
        return self.x2 - self.x1 + 1

    def box(self, label: str) -> DraftBox:
        return DraftBox(label, self.x1, self.y1, self.x2 + 1, self.y2 + 1)  # pixel edges: [x1, x2 + 1)

    def op(self) -> Op:
        return ("shape", self.kind, COLORS[self.color], self.x1, self.y1, self.x2, self.y2)


def layout(rng: random.Random, w: int, h: int, specs: list[tuple[str, str]]) -> list[Obj]:
    """Non-overlapping square shapes, biggest placed first; one that finds no room is left out."""
    specs = rng.sample(specs, len(specs))  # so the caller's order (targets first) biases nothing
    hi = max(16, min(min(w, h) // 3, int(0.7 * (w * h / (len(specs) + 1)) ** 0.5)))
    sides = sorted((rng.randint(max(14, hi // 2), hi) for _ in specs), reverse=True)
    placed: list[Obj] = []
    for (kind, color), s in zip(specs, sides, strict=True):
        for _ in range(100):
            x, y = rng.randint(2, w - s - 2), rng.randint(2, h - s - 2)
            if all(
                x > b.x2 + GAP or x + s <= b.x1 - GAP or y > b.y2 + GAP or y + s <= b.y1 - GAP for b in placed
            ):
                placed.append(Obj(kind, color, x, y, x + s - 1, y + s - 1))
                break
    return placed


def gen_detection(rng: random.Random, w: int, h: int, o: SyntheticOptions) -> Scene:
    asked = rng.sample(CATEGORIES, rng.randint(1, 3))
    others = [c for c in CATEGORIES if c not in asked]
    n = rng.randint(2, o.max_objects)
    k = rng.randint(0, n // 3)  # distractors: shapes of categories the prompt does not list
    found: list[Obj] = []
    while not found:
        objs = layout(rng, w, h, [rng.choice(asked) for _ in range(n - k)] + rng.sample(others, k))
        found = sorted(
            (ob for ob in objs if (ob.kind, ob.color) in asked), key=lambda b: (b.label, b.y1, b.x1)
        )
    listed = "\n".join(f"- {label}" for label in sorted({ob.label for ob in found}))
    return Scene(
        "detection", {"categories": listed}, "", [ob.op() for ob in objs], [ob.box(ob.label) for ob in found]
    )


# Grounding: "the leftmost blue square" holds when the target is strictly beyond every other one of
# its label; "the blue square left of the red circle" when it is strictly left of the (unique) anchor
# and every other blue square is clearly on the other side (centre beyond the anchor's centre).
SUPERLATIVES: dict[str, Callable[[Obj, Obj], bool]] = {
    "largest": lambda a, b: a.side >= 1.25 * b.side,
    "smallest": lambda a, b: b.side >= 1.25 * a.side,
    "leftmost": lambda a, b: a.x2 < b.x1,
    "rightmost": lambda a, b: a.x1 > b.x2,
    "topmost": lambda a, b: a.y2 < b.y1,
    "bottommost": lambda a, b: a.y1 > b.y2,
}
RELATIONS: dict[str, tuple[Callable[[Obj, Obj], bool], Callable[[Obj, Obj], bool]]] = {
    "left of": (lambda a, b: a.x2 < b.x1, lambda a, b: a.x1 + a.x2 > b.x1 + b.x2),
    "right of": (lambda a, b: a.x1 > b.x2, lambda a, b: a.x1 + a.x2 < b.x1 + b.x2),
    "above": (lambda a, b: a.y2 < b.y1, lambda a, b: a.y1 + a.y2 > b.y1 + b.y2),
    "below": (lambda a, b: a.y1 > b.y2, lambda a, b: a.y1 + a.y2 < b.y1 + b.y2),
}


def referring_expressions(objs: list[Obj]) -> dict[str, list[tuple[str, Obj]]]:
    """Every unambiguous expression for the scene, by kind: plain, superlative, relation."""
    groups: dict[str, list[Obj]] = {}
    for ob in objs:
        groups.setdefault(ob.label, []).append(ob)
    unique = [g[0] for g in groups.values() if len(g) == 1]
    out: dict[str, list[tuple[str, Obj]]] = {"plain": [(f"the {ob.label}", ob) for ob in unique]}
    out["superlative"], out["relation"] = [], []
    for label, group in groups.items():
        for t in group if len(group) > 1 else ():
            rest = [g for g in group if g is not t]
            for word, beats in SUPERLATIVES.items():
                if all(beats(t, g) for g in rest):
                    out["superlative"].append((f"the {word} {label}", t))
            for anchor in unique:
                for rel, (yes, other_side) in RELATIONS.items():
                    if yes(t, anchor) and all(other_side(g, anchor) for g in rest):
                        out["relation"].append((f"the {label} {rel} the {anchor.label}", t))
    return out


def gen_grounding(rng: random.Random, w: int, h: int, o: SyntheticOptions) -> Scene:
    kinds: list[str] = []
    while not kinds:  # a scene where no object can be singled out is drawn again
        cats = rng.sample(CATEGORIES, rng.randint(2, 4))
        objs = layout(rng, w, h, [rng.choice(cats) for _ in range(rng.randint(2, o.max_objects))])
        exprs = referring_expressions(objs)
        kinds = [k for k in ("superlative", "relation") if exprs[k]] or (["plain"] if exprs["plain"] else [])
    expression, target = rng.choice(exprs[rng.choice(kinds)])
    return Scene(
        "grounding", {"expression": expression}, "", [ob.op() for ob in objs], [target.box(expression)]
    )


COUNT_QUESTIONS = (
    "How many {} are there in the image?",
    "How many {} can you see?",
    "Count the {} in the picture.",
    "What is the number of {} in the image?",
)


def gen_counting(rng: random.Random, w: int, h: int, o: SyntheticOptions) -> Scene:
    kind, color = rng.choice(CATEGORIES)
    noun, match = rng.choice(
        [
            (f"{color} {kind}s", lambda k, c: (k, c) == (kind, color)),
            (f"{kind}s", lambda k, c: k == kind),
            (f"{color} shapes", lambda k, c: c == color),
        ]
    )
    n = rng.randint(1, o.max_objects - 1)
    targets = [c for c in CATEGORIES if match(*c)]
    others = [c for c in CATEGORIES if not match(*c)]
    distractors = [rng.choice(others) for _ in range(rng.randint(1, o.max_objects - n))]
    objs = layout(rng, w, h, [rng.choice(targets) for _ in range(n)] + distractors)
    count = sum(match(ob.kind, ob.color) for ob in objs)  # what was actually placed
    question = rng.choice(COUNT_QUESTIONS).format(noun)
    return Scene("counting", {"question": question}, str(count), [ob.op() for ob in objs])


TaskGenerator = Callable[[random.Random, int, int, SyntheticOptions], Scene]


def _question_task(gen: Callable[[random.Random, int, int], questions.Question]) -> TaskGenerator:
    """A question generator (`_synth_questions`) as a task generator: its fields are {question}."""

    def run(rng: random.Random, w: int, h: int, o: SyntheticOptions) -> Scene:
        q = gen(rng, w, h)
        return Scene(q.pool, {"question": q.question}, q.answer, q.ops)

    return run


GENERATORS: dict[str, TaskGenerator] = {
    "detection": gen_detection,
    "grounding": gen_grounding,
    "counting": gen_counting,
    "ocr": _question_task(questions.ocr),
    "math": _question_task(questions.math),
    "chart": _question_task(questions.chart),
    "puzzle": _question_task(questions.puzzle),
    "science": _question_task(questions.science),
}
assert set(GENERATORS) == set(TASKS)


def _size(rng: random.Random, o: SyntheticOptions) -> tuple[int, int]:
    if o.image_size_max is None:
        return o.image_size
    (w0, h0), (w1, h1) = o.image_size, o.image_size_max
    return rng.randint(min(w0, w1), max(w0, w1)), rng.randint(min(h0, h1), max(h0, h1))


def make_scene(o: SyntheticOptions, seed: int) -> tuple[int, int, str, Scene]:
    """Everything about one sample, from its own seed: (width, height, background, scene)."""
    rng = random.Random(seed)
    w, h = _size(rng, o)
    background = rng.choice(BACKGROUNDS)
    return w, h, background, GENERATORS[o.task](rng, w, h, o)


@register_source("synthetic", options=SyntheticOptions, tasks=TASKS)
def read_synthetic(opts: SyntheticOptions, ctx: SourceContext) -> Iterator[Draft | Reject]:
    ext = "jpg" if opts.format == "jpeg" else "png"
    for i in range(opts.count):
        sid = f"{ctx.split}-{i:06d}"
        w, h, background, scene = make_scene(opts, ctx.rng_seed(opts.task, ctx.split, i))
        kwargs = {
            "width": w,
            "height": h,
            "background": background,
            "ops": tuple(scene.ops),
            "format": opts.format,
        }
        image = ImageRender(
            render_scene, tuple(sorted(kwargs.items())), f"synthetic/{ctx.data_source}/{sid}.{ext}"
        )
        yield Draft(
            id=sid,
            task=opts.task,
            prompt=ctx.prompt(scene.pool, sid, num_images=1, **scene.fields),
            answer=scene.answer,
            ground_truth=scene.answer,
            images=[image],
            original_id=sid,
            boxes=scene.boxes,
            box_frame="pixel",
        )
