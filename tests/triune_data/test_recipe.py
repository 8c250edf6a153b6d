import textwrap

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
