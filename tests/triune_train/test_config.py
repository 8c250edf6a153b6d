import json
import textwrap
from pathlib import Path

import pytest

from triune_data.errors import RecipeError
from triune_train.config import TrainConfig, load_train_config, parse_override, train_recipe_json_schema

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes" / "train").glob("*.yaml"))

GOOD = """\
name: t
total_steps: 3
model:
  path: tiny:qwen2_5_vl
data:
  path: out/x
  prompts_per_step: 3
rollout:
  n: 4
optim:
  lr: 1.0e-3
"""


def write(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_defaults_fill_the_sections(tmp_path):
    cfg = load_train_config(write(tmp_path, GOOD))
    assert cfg.optim.lr == 1e-3 and cfg.rollout.n == 4 and cfg.rollout.temperature == 1.0
    assert cfg.model.freeze == ["vision", "connector"]  # the paper's setting is the default
    assert cfg.algorithm.kl_coef == 0 and (cfg.algorithm.clip_low, cfg.algorithm.clip_high) == (0.2, 0.28)
    assert len(cfg.hash) == 64


def test_hash_follows_content_and_overrides(tmp_path):
    p = write(tmp_path, GOOD)
    base = load_train_config(p).hash
    assert load_train_config(p).hash == base
    assert load_train_config(p, ["optim.lr=2e-3"]).hash != base
    assert load_train_config(p, ["optim.lr=1e-3"]).hash == base  # same resolved value, same hash


def test_override_sets_nested_values_as_yaml(tmp_path):
    cfg = load_train_config(
        write(tmp_path, GOOD), ["rollout.n=2", "model.freeze=[vision]", "reward.servers=[http://a:1]"]
    )
    assert cfg.rollout.n == 2 and cfg.model.freeze == ["vision"] and cfg.reward.servers == ["http://a:1"]


@pytest.mark.parametrize(
    "text, overrides, message",
    [
        (GOOD + "  lrr: 2\n", [], r"r\.yaml:12: optim\.lrr: unknown key \(allowed: lr, module_lr"),
        (GOOD + "bogus: 1\n", [], r"r\.yaml:12: bogus: unknown key"),
        (
            GOOD.replace("n: 4", "n: 0"),
            [],
            r"r\.yaml:9: rollout\.n: Input should be greater than or equal to 1",
        ),
        (GOOD.replace("total_steps: 3\n", ""), [], r"r\.yaml:1: total_steps: Field required"),
        (GOOD.replace("  path: out/x\n", ""), [], r"r\.yaml:6: data\.path: Field required"),
        (GOOD, ["optim.lrr=1"], r"^--set optim\.lrr=1: optim\.lrr: unknown key"),
        (GOOD, ["optim.lr=abc"], r"^--set optim\.lr=abc: optim\.lr: Input should be a valid number"),
        (GOOD, ["rollout.n"], r"^--set rollout\.n: expected KEY=VALUE"),
        (GOOD, ["model.path.x=1"], r"^--set model\.path\.x=1: model\.path is not a section"),
        (GOOD, ["algorithm.mini_batches=5"], r"^--set algorithm\.mini_batches=5: .*does not divide .*\(12\)"),
        (GOOD, ["model.freeze=[vision,llm]"], r"model\.freeze\[1\]: Input should be 'vision' or 'connector'"),
        (GOOD, ["optim.module_lr={vision: 1.0}"], r"optim\.module_lr: a learning rate for frozen modules"),
        (
            GOOD.replace("  lr: 1.0e-3", "  lr: 1.0e-3\n  module_lr: {vision: 1.0}"),
            [],
            r"r\.yaml:12: optim\.module_lr",
        ),
        ("- a list\n", [], r"r\.yaml:1: a train recipe is a mapping"),
        ("name: [unclosed\n", [], r"r\.yaml:2: invalid YAML"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, text, overrides, message):
    with pytest.raises(RecipeError, match=message):
        load_train_config(write(tmp_path, text), overrides)


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(RecipeError, match="file not found"):
        load_train_config(tmp_path / "nope.yaml")


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=3e-4") == (["a", "b"], 3e-4)  # YAML 1.1 alone would give "3e-4"
    assert parse_override("a.b=3.0e-4") == (["a", "b"], 3.0e-4)
    assert parse_override("a=") == (["a"], "")


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipes_load(recipe):
    cfg = load_train_config(recipe)
    assert cfg.total_steps >= 1


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_every_key_of_shipped_recipes_is_commented(recipe):
    """Each `key:` line in a shipped recipe carries a comment, on it or on the line above."""
    lines = recipe.read_text().splitlines()
    for i, line in enumerate(lines):
        body = line.split("#", 1)[0]
        if ":" in body and not line.lstrip().startswith("#"):
            assert "#" in line or lines[i - 1].lstrip().startswith("#"), f"{recipe.name}:{i + 1}: {line!r}"


def test_vtriune_recipe_has_the_paper_settings():
    cfg = load_train_config(Path(RECIPES[0]).parent / "vtriune-7b.yaml")
    assert cfg.model.freeze == ["vision", "connector"]
    assert (cfg.algorithm.clip_low, cfg.algorithm.clip_high, cfg.algorithm.kl_coef) == (0.2, 0.28, 0.0)
    assert cfg.rollout.n == 8 and cfg.optim.lr == 1e-6 and cfg.algorithm.loss_agg == "token-mean"


def test_schema_is_json_and_describes_fields():
    schema = train_recipe_json_schema()
    json.dumps(schema)
    assert "total_steps" in schema["required"]
    assert schema["$defs"]["OptimSection"]["properties"]["lr"]["description"]
    assert TrainConfig.model_fields.keys() >= {"model", "data", "rollout", "reward", "algorithm", "optim"}
