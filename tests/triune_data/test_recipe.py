import textwrap
from pathlib import Path

import pytest

from triune_data.errors import RecipeError
from triune_data.recipe import load_recipe

GOOD = """\
name: tiny
seed: 3
prompts:
  counting: {templates: ["{question}"]}
sources:
  - adapter: synthetic
    data_source: synth_counting
    options: {task: counting, count: 4}
"""


def write(tmp_path, text, name="r.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_good_recipe_loads_with_typed_options(tmp_path):
    loaded = load_recipe(write(tmp_path, GOOD))
    assert loaded.recipe.name == "tiny"
    assert loaded.options[0].count == 4
    assert loaded.prompts["counting"].templates == ("{question}",)
    assert len(loaded.hash) == 64


def test_hash_changes_with_content(tmp_path):
    a = load_recipe(write(tmp_path, GOOD)).hash
    b = load_recipe(write(tmp_path, GOOD.replace("seed: 3", "seed: 4"))).hash
    assert a != b


@pytest.mark.parametrize(
    "text, where",
    [
        (GOOD.replace("count: 4", "count: -1"), r"r\.yaml:8: sources\[0\]\.options\.count: -1 is less than"),
        (
            GOOD.replace("count: 4", "count: 4, colour: red"),
            r"r\.yaml:8: sources\[0\]\.options: Additional properties",
        ),
        (
            GOOD.replace("adapter: synthetic", "adapter: nosuch"),
            r"r\.yaml:6: sources\[0\]\.adapter: 'nosuch' is not one of",
        ),
        (
            GOOD.replace("data_source: synth_counting", "data_source: 'bad name/x'"),
            r"r\.yaml:7: sources\[0\]\.data_source",
        ),
        (GOOD.replace("name: tiny\n", ""), r"r\.yaml:1: \(top level\): 'name' is a required property"),
        (GOOD.replace("seed: 3", "seed: three"), r"r\.yaml:2: seed: 'three' is not of type 'integer'"),
        (GOOD + "bogus: 1\n", r"r\.yaml:1: \(top level\): Additional properties are not allowed \('bogus'"),
        ("name: [unclosed\n", r"r\.yaml:2: invalid YAML"),
        ("- just\n- a list\n", r"r\.yaml:1: a recipe is a mapping"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, text, where):
    with pytest.raises(RecipeError, match=where):
        load_recipe(write(tmp_path, text))


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_prompt_pools_from_a_file_are_validated_with_their_own_lines(tmp_path):
    write(tmp_path, "counting:\n  templates: []\n", name="pools.yaml")
    text = GOOD.replace('prompts:\n  counting: {templates: ["{question}"]}\n', "prompts: pools.yaml\n")
    with pytest.raises(RecipeError, match=r"pools\.yaml:2: counting\.templates: \[\] should be non-empty"):
        load_recipe(write(tmp_path, text))


def test_shipped_recipes_load():
    from pathlib import Path

    recipes = sorted(Path(__file__).resolve().parents[2].joinpath("recipes").glob("*.yaml"))
    assert recipes, "recipes/ should ship at least the demo recipe"
    for path in recipes:
        load_recipe(path)


REWARD = GOOD.replace(
    "    options: {task: counting, count: 4}\n",
    "    options: {task: counting, count: 4}\n    reward:\nREWARD",
)


@pytest.mark.parametrize(
    "reward, where",
    [
        (
            "      verifier: mathh\n",
            r"r\.yaml:10: sources\[0\]\.reward\.verifier: unknown verifier 'mathh' \(known: ",
        ),
        (
            "      verifier: counting\n      params: {tolerance: -1}\n",
            r"r\.yaml:11: sources\[0\]\.reward\.params\.tolerance: Input should be greater than or equal to 0",
        ),
        (
            "      verifier: counting\n      params:\n        tolerence: 1\n",
            r"r\.yaml:12: sources\[0\]\.reward\.params\.tolerence: Extra inputs are not permitted \(verifier counting\)",
        ),
        (
            "      params: {bogus: 1}\n",  # no verifier named: no verifier of the adapter's tasks takes it
            r"r\.yaml:10: sources\[0\]\.reward\.params\.bogus: Extra inputs are not permitted",
        ),
    ],
)
def test_unknown_verifiers_and_invalid_params_stop_at_load_naming_the_line(tmp_path, reward, where):
    with pytest.raises(RecipeError, match=where):
        load_recipe(write(tmp_path, REWARD.replace("REWARD", reward)))


def test_a_verifier_that_scores_none_of_the_adapters_tasks_is_a_recipe_error(tmp_path):
    text = GOOD.replace("adapter: synthetic", "adapter: clevr").replace(
        "    options: {task: counting, count: 4}\n",
        "    options: {path: q.json, images: imgs}\n    reward: {verifier: detection}\n",
    )
    with pytest.raises(
        RecipeError,
        match=r"r\.yaml:9: sources\[0\]\.reward\.verifier: detection scores detection, grounding samples; adapter clevr makes counting",
    ):
        load_recipe(write(tmp_path, text))


def test_params_the_adapter_completes_are_not_required_at_load(tmp_path):
    # mcq's `options` come from each record; the recipe only sets the format rule
    text = REWARD.replace("REWARD", "      verifier: mcq\n      params: {format: {mode: boxed}}\n")
    assert load_recipe(write(tmp_path, text)).recipe.sources[0].reward.params == {"format": {"mode": "boxed"}}


def test_without_prompts_the_shipped_pools_are_used(tmp_path):
    from triune_data.recipe import DEFAULT_PROMPTS

    loaded = load_recipe(
        write(tmp_path, GOOD.replace('prompts:\n  counting: {templates: ["{question}"]}\n', ""))
    )
    assert DEFAULT_PROMPTS.is_relative_to(Path(__file__).resolve().parents[2] / "triune_data")
    assert {"detection", "grounding", "counting", "math", "ocr"} <= set(loaded.prompts)
    assert loaded.resolved["prompts"]["counting"]["templates"]  # recorded in the manifest's recipe
