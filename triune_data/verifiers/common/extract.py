"""Answer extraction shared by the text verifiers (math, counting, ocr, mcq).

Model output is untrusted, so every helper here is linear in the length of its input: single-pass
scanners and regexes without nested or overlapping quantifiers. (A lazy ``<answer>(.*?)</answer>``
search is quadratic on a completion made of thousands of unclosed ``<answer>`` tags.)
"""

from __future__ import annotations

import re
import string
import unicodedata

_OPEN, _CLOSE = "<answer>", "</answer>"
_THINK_CLOSE = "</think>"


def answer_block(text: str) -> str | None:
    """The text between the first ``<answer>`` and the next ``</answer>``; None without a closed block."""
    start = text.find(_OPEN)
    if start < 0:
        return None
    end = text.find(_CLOSE, start + len(_OPEN))
    return None if end < 0 else text[start + len(_OPEN) : end]


def after_think(text: str) -> str:
    """Drop a reasoning prefix: the text after the last ``</think>`` (all of it when there is none)."""
    cut = text.rfind(_THINK_CLOSE)
    return text if cut < 0 else text[cut + len(_THINK_CLOSE) :]


_BOX_TOKEN = re.compile(r"\\(?:boxed|fbox)\s*\{|[{}]")


def boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the content of every top-level ``\\boxed{...}`` (or ``\\fbox``), in order.

    Braces are balanced in one pass; an unclosed box yields nothing, a box inside a box is part of
    its outer box. Spans rather than strings so that nothing is copied twice.
    """
    stack: list[int] = []  # content start of an open box, or -1 for a plain brace
    boxes_open = 0
    spans = []
    for m in _BOX_TOKEN.finditer(text):
        tok = m.group()
        if tok == "}":
            if not stack:
                continue
            start = stack.pop()
            if start >= 0:
                boxes_open -= 1
                if boxes_open == 0:
                    spans.append((start, m.start()))
        elif tok == "{":
            stack.append(-1)
        else:
            stack.append(m.end())
            boxes_open += 1
    return spans


def last_boxed(text: str) -> str | None:
    """Content of the last top-level ``\\boxed{}``; None when there is no closed box."""
    spans = boxed_spans(text)
    if not spans:
        return None
    start, end = spans[-1]
    return text[start:end]


# Markdown emphasis: an opener at a word's start, a closer at its end, the same marker both sides.
# Not after a LaTeX group or superscript (``\\mathbf{v}_{1}``, ``z^*``) nor before one. The text
# between holds no * or _ and is at most 200 characters: one linear pass, no backtracking.
_EMPHASIS = re.compile(r"(?<![\w*\\})\]^])(\*{1,3}|_{1,3})(?=[^\s*_])([^*_\n]{1,200})(?<=\S)\1(?![\w*{^])")


def strip_emphasis(text: str) -> str:
    """Remove Markdown emphasis around words: ``**32**``, ``__32__``, ``*32*``, ``***32***`` -> ``32``.

    Markers inside words, between spaced operands or on LaTeX groups are not emphasis and stay:
    ``2*3*4``, ``2 * 3``, ``x_1``, ``a**2``, ``\\mathbf{v}_{1} + \\mathbf{w}_{2}``, ``z^* w^*``.

    >>> strip_emphasis("The answer is **32**."), strip_emphasis("__(C) 145°__"), strip_emphasis("2*3*4 = x_1")
    ('The answer is 32.', '(C) 145°', '2*3*4 = x_1')
    """
    if "*" not in text and "_" not in text:
        return text
    return _EMPHASIS.sub(r"\2", text)


_TEXT_MACRO = re.compile(
    r"\\(?:text|textbf|textit|textrm|texttt|mathrm|mathbf|mathit|mbox|operatorname)\s*\{([^{}]*)\}"
)


def strip_latex_text(s: str) -> str:
    """``\\text{STOP}`` -> ``STOP`` (also textbf, mathrm, mbox, ...), inline ``$`` removed, ``\\%`` -> ``%``."""
    for _ in range(4):  # nested wrappers, bounded
        stripped = _TEXT_MACRO.sub(r"\1", s)
        if stripped == s:
            break
        s = stripped
    return s.replace("\\%", "%").replace("$", "")


_BRACE_TOKEN = re.compile(r"\\\\|\\[{}]|[{}]")  # \\ (a LaTeX line break), \{ and \} are not braces


def braces_balanced(text: str) -> bool:
    r"""Every ``{`` has its ``}`` and no ``}`` comes first (escaped ``\{``, ``\}`` do not count).

    >>> braces_balanced(r"\frac{3}{4}"), braces_balanced(r"\frac{"), braces_balanced(r"\{1, 2\}")
    (True, False, True)
    """
    depth = 0
    for m in _BRACE_TOKEN.finditer(text):
        tok = m.group()
        if len(tok) == 1:
            depth += 1 if tok == "{" else -1
            if depth < 0:
                return False
    return depth == 0


def nesting_depth(text: str) -> int:
    """Deepest nesting of ``{([`` brackets (kinds mixed, unmatched closers ignored)."""
    depth = deepest = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]" and depth:
            depth -= 1
    return deepest


# Characters stripped from both ends of a normalised answer. Signs, currency, % and # are kept:
# "-5" is not "5".
_EDGE = "".join(sorted(set(string.whitespace) | set(".,;:!?()[]{}<>\"'`*_") | set("“”‘’«»「」『』")))


def normalize_text(s: str, *, case_sensitive: bool = False, remove_punctuation: bool = False) -> str:
    """Normalise a short free-text answer for exact matching.

    Unicode NFKC (full-width and ligature forms fold to ASCII), case-fold unless `case_sensitive`,
    whitespace runs collapsed to one space, surrounding quotes/brackets/markdown emphasis and
    sentence punctuation stripped; with `remove_punctuation` every Unicode punctuation character
    is dropped (replaced by a space) as well.
    """
    s = unicodedata.normalize("NFKC", s)
    if not case_sensitive:
        s = s.casefold()
    if remove_punctuation:
        s = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in s)
    return " ".join(s.split()).strip(_EDGE)


_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty"
)
NUMBER_WORDS: dict[str, int] = {w: i for i, w in enumerate(_WORDS.split())}
