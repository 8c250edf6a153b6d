"""The registry of filters: every built-in filter registered, named apart from build rejects."""

import subprocess
import sys
from pathlib import Path
from typing import get_args

import polars as pl

from tests.triune_data.filters._rows import context, rows, sample, with_null
from triune_data.filters import filter_names, filter_reasons, get_filter
from triune_data.filters.base import FILE, POS, ROW
from triune_data.rejects import RejectReason

RULE_FILTERS = {
    "choice_answers",
    "answer_symbols",
    "answer_chars",
    "prompt_tokens",
    "boxes_per_category",
    "box_area",
    "single_multi_ratio",
    "category_balance",
    "phrase_complexity",
    "ocr_language",
    "ocr_verifiable",
    "gold_verifies",
    "image_size",
}


def test_no_filter_name_is_a_build_reject_reason() -> None:
    """A reject's reason says which stage dropped it: a filter's name never means a build check."""
    clash = set(filter_names()) & set(get_args(RejectReason))
    assert not clash, clash


def test_rule_filters_are_registered_with_a_reason() -> None:
    assert set(filter_names()) >= RULE_FILTERS
    reasons = filter_reasons()
    for name in RULE_FILTERS:
        assert get_filter(name).name == name
        assert reasons[name] and "\n" not in reasons[name]
        assert get_filter(name).columns, name  # every rule filter declares what it reads


def test_every_rule_filter_survives_null_and_empty_values(tmp_path: Path) -> None:
    """A row whose every column is null and a row of empty lists and strings: no crash, a verdict
    aligned with the rows, a Boolean drop and a Utf8 detail (prompt_tokens, which needs a
    tokenizer, has its own null test)."""
    empty = sample("empty", answer="", ground_truth="", question="", sizes=[], boxes=[], prompt=[])
    batch = rows(sample("null", task="detection", boxes=[("a", 0.0, 0.0, 1.0, 1.0)]), empty, sample("plain"))
    for column in batch.columns:
        if not column.startswith("_"):
            batch = with_null(batch, column, 0)
    for name in sorted(RULE_FILTERS - {"prompt_tokens"}):
        verdict = get_filter(name)().apply(batch, context(tmp_path))
        assert verdict.drop.dtype == pl.Boolean and verdict.drop.len() == 3, name
        assert verdict.drop.null_count() == 0, name
        assert verdict.detail is not None and verdict.detail.dtype == pl.Utf8, name
        assert verdict.detail.len() == 3, name


def test_every_rule_filter_reads_only_its_declared_columns(tmp_path: Path) -> None:
    """The runner loads only `columns` (plus ROW, FILE, POS): a filter reading another one fails here."""
    batch = rows(
        sample("a", task="detection", boxes=[("car", 0.0, 0.0, 600.0, 400.0)] * 2),
        sample("b", task="ocr", answer="###", verifier="ocr"),
    )
    for name in sorted(RULE_FILTERS - {"prompt_tokens"}):
        cls = get_filter(name)
        narrow = batch.select(*cls.columns, ROW, FILE, POS)
        assert cls().apply(narrow, context(tmp_path)).drop.len() == 2, name
    assert get_filter("prompt_tokens").columns == ("prompt", "image_sizes")


def test_importing_the_filters_stays_light() -> None:
    """The runner imports every filter: transformers and math-verify load only when a filter runs."""
    code = (
        "import sys\n"
        "import triune_data.filters\n"
        "triune_data.filters.filter_names()\n"
        "bad = [m for m in ('torch', 'transformers', 'sympy', 'math_verify') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
