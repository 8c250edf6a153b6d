"""Question generators of the `synthetic` source: a figure plus a question with an exact answer.

OCR (a word, number or plate), math (equations, fractions, rectangle and right-triangle figures),
chart (a bar chart), puzzle (number sequences, row-rule grids, polygon side counts) and science
(thermometer, ruler, series circuit, lever). Each function draws every number it uses from the
sample's own `rng` and computes the answer from those numbers, never from text. Answers are
integers, decimals or `\\frac{a}{b}` in lowest terms: short, bracket-free strings that math-verify
compares exactly (V-Triune's rule filter keeps only such answers, paper §5.1.1.1).

The Aileron font Pillow embeds has no ×, ÷, − or Ω, so expressions use `*`, `/`, `-` and "ohm".
"""

from __future__ import annotations

import random
from fractions import Fraction
from typing import NamedTuple

from triune_data.sources.common import synth_render as render
from triune_data.sources.common.synth_render import Op


def _frac(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    return f"{'-' if v < 0 else ''}\\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


class Question(NamedTuple):
    pool: str  # the prompt pool; its template's only field is {question}
    question: str
    answer: str  # exact, as math-verify / the OCR verifier compare it (no \\boxed{})
    ops: list[Op]


def _ask(pool: str, question: str, answer: object, ops: list[Op]) -> Question:
    return Question(pool, question, answer if isinstance(answer, str) else str(answer), ops)


WORDS = (  # noqa: SIM905  (one string reads better than forty quoted words)
    "garden window planet silver market bridge rocket forest museum candle harbor winter pencil castle "
    "yellow coffee island jacket ladder mirror pepper rabbit tunnel violet walnut anchor basket canyon "
    "dragon engine falcon guitar helmet jungle kitten lemon meadow orchard puzzle quartz"
).split()
PLATE_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I, O, Q: a reader cannot tell them from 1 and 0
OCR_QUESTIONS = (
    "What text is written in the image?",
    "Read the text shown in the image.",
    "What does the text in the image say?",
    "Transcribe the text in the image exactly.",
)


def ocr(rng: random.Random, w: int, h: int) -> Question:
    word, plate = rng.choice(WORDS), rng.choice(("LLL DDDD", "LL-DDD-LL", "DLLL DDD"))
    text = rng.choice(
        [
            rng.choice((word, word.title(), word.upper())),
            f"{word.title()} {rng.choice(WORDS).title()}",
            str(rng.randint(10, 999_999)),
            "".join(
                rng.choice(PLATE_LETTERS) if c == "L" else str(rng.randrange(10)) if c == "D" else c
                for c in plate
            ),
        ]
    )
    return _ask("ocr", rng.choice(OCR_QUESTIONS), text, render.sign(rng, w, h, text))


def math(rng: random.Random, w: int, h: int) -> Question:
    size, kind = render.base_size(w, h) * 2, rng.randrange(5)
    if kind == 0:
        x, a, b = (
            rng.choice([v for v in range(-9, 16) if v]),
            rng.randint(2, 9),
            rng.choice([-1, 1]) * rng.randint(1, 20),
        )
        text = f"{a}x {'-' if b < 0 else '+'} {abs(b)} = {a * x + b}"
        return _ask(
            "math",
            "Solve the equation shown in the image. What is x?",
            x,
            render.text_lines(w, h, [text], size),
        )
    if kind == 1:
        a, b, c = rng.randint(2, 15), rng.randint(2, 12), rng.randint(1, 30)
        forms = [
            (f"{a} * {b} - {c}", a * b - c),
            (f"{c} + {a} * {b}", c + a * b),
            (f"({a} + {c}) * {b}", (a + c) * b),
        ]
        text, value = rng.choice(forms)
        ops = render.text_lines(w, h, [f"{text} = ?"], size)
        return _ask("math", "What is the value of the expression in the image?", value, ops)
    if kind == 2:
        d1, d2, op = rng.randint(2, 12), rng.randint(2, 12), rng.choice("+-")
        p, q = Fraction(rng.randint(1, d1 - 1), d1), Fraction(rng.randint(1, d2 - 1), d2)
        ops = render.text_lines(
            w, h, [f"{p.numerator}/{p.denominator} {op} {q.numerator}/{q.denominator} = ?"], size
        )
        question = "Compute the expression in the image. Give the result as a fraction in lowest terms."
        return _ask("math", question, _frac(p + q if op == "+" else p - q), ops)
    if kind == 3:
        a, b = rng.randint(3, 20), rng.randint(2, 15)
        ops = render.rectangle_figure(w, h, f"{a} cm", f"{b} cm", a / b)
        if rng.random() < 0.5:
            return _ask("math", "What is the area of the rectangle in square centimetres?", a * b, ops)
        return _ask("math", "What is the perimeter of the rectangle in centimetres?", 2 * (a + b), ops)
    k, (a, b, c) = (
        rng.randint(1, 3),
        rng.choice(((3, 4, 5), (4, 3, 5), (5, 12, 13), (12, 5, 13), (8, 15, 17))),
    )
    ops = render.right_triangle(w, h, (str(k * a), str(k * b), "?"), a / b)
    return _ask(
        "math", "The triangle in the image has a right angle. How long is the side marked '?'?", k * c, ops
    )


CHARTS = (
    ("Visitors per day", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]),
    ("Rainfall (mm)", ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]),
    ("Fruit sold (kg)", ["Apple", "Pear", "Plum", "Kiwi", "Mango", "Lime"]),
    ("Orders by city", ["Oslo", "Rome", "Lima", "Cairo", "Quito", "Bern"]),
)


def chart(rng: random.Random, w: int, h: int) -> Question:
    title, names = rng.choice(CHARTS)
    names = names[: rng.randint(3, min(6, max(3, w // 55)))]  # every name must fit under its bar
    values = rng.sample(range(3, 100), len(names))  # distinct: "largest" and "greater" have one answer
    i, j = rng.sample(range(len(names)), 2)
    hi, lo = (i, j) if values[i] > values[j] else (j, i)
    question, answer = rng.choice(
        [
            (f"What is the value for {names[i]}?", values[i]),
            ("What is the difference between the largest and the smallest value?", max(values) - min(values)),
            (f"What is the sum of the values for {names[i]} and {names[j]}?", values[i] + values[j]),
            (f"How much greater is the value for {names[hi]} than for {names[lo]}?", values[hi] - values[lo]),
            ("What is the total of all the values in the chart?", sum(values)),
        ]
    )
    color = rng.choice(list(render.COLORS.values()))
    return _ask("chart", question, answer, render.bar_chart(w, h, title, names, values, color))


def puzzle(rng: random.Random, w: int, h: int) -> Question:
    kind = rng.randrange(3)
    if kind == 0:  # a number sequence with one gap
        n, step = rng.randint(5, min(7, max(5, w // 45))), rng.choice((2, 3, 4, 5, 7, 9, -1, -2, -3))
        a = rng.randint(1, 20) if step > 0 else rng.randint(3 * n, 40)  # stays positive
        seq = rng.choice([[a + step * k for k in range(n)], [(a % 5 + 1) * 2**k for k in range(n)]])
        miss = rng.randrange(n)
        cells = ["?" if k == miss else str(v) for k, v in enumerate(seq)]
        question = "The numbers follow a pattern. Which number replaces the question mark?"
        return _ask("puzzle", question, seq[miss], render.tile_row(w, h, cells))
    if kind == 1:  # a 3x3 grid whose rows all follow c = a + b, or all c = a * b
        plus = rng.random() < 0.5
        rows: list[list[int]] = []
        while len(rows) < 3:
            a, b = rng.randint(2, 30 if plus else 9), rng.randint(2, 30 if plus else 9)
            if a + b != a * b:  # a row that fits both rules would not tell them apart
                rows.append([a, b, a + b if plus else a * b])
        r, c = rng.randrange(3), rng.randrange(3)
        grid = [
            ["?" if (ri, ci) == (r, c) else str(v) for ci, v in enumerate(row)] for ri, row in enumerate(rows)
        ]
        question = "Each row of the grid follows the same rule. Which number replaces the question mark?"
        return _ask("puzzle", question, rows[r][c], render.number_grid(w, h, grid))
    first, n, miss = rng.randint(3, 5), rng.randint(4, 5), rng.randrange(1, 4)  # polygons gaining a side
    fill = rng.choice(list(render.COLORS.values()))
    cells = ["?" if k == miss else f"shape:poly{first + k}:{fill}" for k in range(n)]
    question = (
        "The shapes follow a pattern. How many sides does the shape that replaces the question mark have?"
    )
    return _ask("puzzle", question, first + miss, render.tile_row(w, h, cells))


def science(rng: random.Random, w: int, h: int) -> Question:
    kind = rng.randrange(4)
    if kind == 0:
        lo, span = rng.choice((-20, -10, 0)), rng.choice((50, 60, 100))
        step = rng.choice([s for s in (1, 2, 5) if span / s <= (h - 80) / 4] or [5])  # ticks >= ~4 px apart
        value = lo + step * rng.randint(1, span // step - 1)
        ops = render.thermometer(w, h, lo, lo + span, step, 10 if span <= 60 else 20, value)
        return _ask("science", "What temperature does the thermometer show, in degrees Celsius?", value, ops)
    if kind == 1:
        length, color = rng.randint(6, 15), rng.choice(list(render.COLORS))
        start = rng.randint(0, 2 * length - 4) / 2  # half-centimetre marks
        end = rng.randint(int(2 * start) + 2, 2 * length) / 2
        ops = render.ruler(w, h, length, start, end, render.COLORS[color])
        question = f"How long is the {color} bar, in centimetres, measured with the ruler?"
        return _ask("science", question, f"{end - start:g}", ops)
    if kind == 2:
        volts, rs = (
            rng.choice((6, 9, 12, 24)),
            [rng.randint(1, 12) for _ in range(rng.randint(2, 3 if w >= 240 else 2))],
        )
        ops = render.circuit(w, h, volts, rs)
        if rng.random() < 0.5:
            question = "The resistors are in series. What is the total resistance of the circuit, in ohms?"
            return _ask("science", question, sum(rs), ops)
        return _ask(
            "science",
            "What current flows through the circuit, in amperes?",
            _frac(Fraction(volts, sum(rs))),
            ops,
        )
    arm, t = rng.randint(3, 5), rng.randint(1, 4)
    d1, d2 = rng.sample(range(1, arm + 1), 2)
    ops = render.lever(w, h, arm, (d1, f"{d2 * t} kg"), (d2, "?"))  # balanced: d1 * (d2 t) = d2 * (d1 t)
    question = (
        "The lever is balanced and its beam weighs nothing. What is the mass of the block marked '?', in kg?"
    )
    return _ask("science", question, d1 * t, ops)
