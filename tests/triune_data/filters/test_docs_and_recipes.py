"""docs/filtering.md lists the registered filters; the shipped filter recipes load and run."""

from pathlib import Path

import pytest

from triune_data.filters import filter_names
from triune_data.filters.recipe import load_filter_recipe
from triune_data.filters.reference import splice

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "filtering.md"
RECIPES = ROOT / "recipes" / "filters"

# The names fixed for the whole project: rules, dedup, difficulty and mixing filters.
ALL_FILTERS = {
    "choice_answers", "answer_symbols", "answer_chars", "prompt_tokens", "boxes_per_category",
    "box_area", "single_multi_ratio", "category_balance", "phrase_complexity", "ocr_language",
    "ocr_verifiable", "gold_verifies", "image_size", "exact_dedup", "near_dedup", "contamination",
    "difficulty_stats", "difficulty_band", "source_cap", "task_cap", "duplicate", "sample_weight",
}  # fmt: skip


def test_the_filter_reference_is_current():
    text = DOC.read_text(encoding="utf-8")
    assert text == splice(text), (
        "docs/filtering.md is stale: python -m triune_data.filters.reference docs/filtering.md"
    )
    for name in filter_names():
        assert f"### `{name}`" in text


def test_no_filter_name_is_a_build_reject_reason():
    from triune_data.rejects import REJECT_REASONS

    assert not set(filter_names()) & set(REJECT_REASONS)
    assert not ALL_FILTERS & set(REJECT_REASONS)


def test_the_vtriune_recipe_uses_every_filter():
    # Needs every helper's filters registered: fails until rules, dedup and difficulty are merged.
    loaded = load_filter_recipe(RECIPES / "vtriune.yaml")
    assert {f.name for f in loaded.filters} == ALL_FILTERS


def test_the_demo_recipe_runs_on_the_demo_dataset(tmp_path):
    from triune_data.build import build_dataset
    from triune_data.filters.run import filter_dataset

    loaded = load_filter_recipe(RECIPES / "demo.yaml")  # fails until the rule and dedup filters are merged
    build_dataset(ROOT / "recipes" / "demo.yaml", tmp_path / "demo")
    report = filter_dataset(tmp_path / "demo", loaded, tmp_path / "out")
    assert report.sources and all(c.kept > 0 for c in report.sources.values())


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_name_only_known_filters(path):
    import yaml

    names = {s["filter"] for s in yaml.safe_load(path.read_text())["stages"]}
    assert names <= ALL_FILTERS
