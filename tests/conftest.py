from pathlib import Path

import pytest

PROMPTS = Path(__file__).resolve().parents[1] / "recipes" / "prompts" / "vtriune.yaml"

SMALL_RECIPE = f"""\
name: small
description: A small synthetic dataset for tests.
seed: 11
prompts: {PROMPTS}
sources:
  - adapter: synthetic
    data_source: synth_det
    license: CC0-1.0
    options: {{task: detection, count: 12, image_size: [160, 120]}}
  - adapter: synthetic
    data_source: synth_math
    license: CC0-1.0
    options: {{task: math, count: 10, image_size: [200, 80]}}
  - adapter: synthetic
    data_source: synth_count
    split: test
    license: CC0-1.0
    options: {{task: counting, count: 8, image_size: [160, 120], format: jpeg}}
"""


@pytest.fixture(scope="session")
def small_recipe(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("recipe") / "small.yaml"
    p.write_text(SMALL_RECIPE)
    return p


@pytest.fixture(scope="session")
def small_dataset(small_recipe, tmp_path_factory) -> Path:
    """A finished dataset directory. Tests must not modify it (copy it first)."""
    from triune_data.build import build_dataset

    out = tmp_path_factory.mktemp("data") / "small"
    build_dataset(small_recipe, out)
    return out
