"""Filter recipes: validation with file:line, resolved form and hash."""

import pytest

from triune_data.errors import RecipeError
from triune_data.filters.recipe import filter_recipe_json_schema, load_filter_recipe

GOOD = """\
name: mix
seed: 4
stages:
  - filter: source_cap
    max_rows: 10
  - filter: duplicate
  - filter: sample_weight
    weight: 2.5
    tasks: [puzzle]
"""


def write(tmp_path, text):
    p = tmp_path / "f.yaml"
    p.write_text(text)
    return p


def test_a_good_recipe_loads_with_defaults_filled(tmp_path):
    loaded = load_filter_recipe(write(tmp_path, GOOD))
    assert [f.name for f in loaded.filters] == ["source_cap", "duplicate", "sample_weight"]
    assert loaded.resolved["stages"][1] == {
        "filter": "duplicate",
        "tasks": ["puzzle"],
        "data_sources": None,
        "factor": 2,
    }
    assert loaded.resolved["seed"] == 4 and len(loaded.hash) == 64


def test_the_hash_covers_params_and_seed_not_layout(tmp_path):
    base = load_filter_recipe(write(tmp_path, GOOD)).hash
    assert load_filter_recipe(write(tmp_path, GOOD + "\n# a comment\n")).hash == base
    assert (
        load_filter_recipe(
            write(tmp_path, GOOD.replace("  - filter: duplicate", "  - {filter: duplicate, factor: 2}"))
        ).hash
        == base
    )
    assert load_filter_recipe(write(tmp_path, GOOD.replace("max_rows: 10", "max_rows: 11"))).hash != base
    assert load_filter_recipe(write(tmp_path, GOOD.replace("seed: 4", "seed: 5"))).hash != base


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("filter: duplicate", "filter: nope"),
            r"f\.yaml:6: stages\[1\]\.filter: unknown filter 'nope' \(known: .*duplicate.*source_cap",
        ),
        (
            ("max_rows: 10", "max_rows: -1"),
            r"f\.yaml:5: stages\[0\]\.max_rows: -1 is less than the minimum of 0",
        ),
        (
            ("max_rows: 10", "max_rows: 10\n    maxrows: 3"),
            r"f\.yaml:4: stages\[0\]: Additional properties are not allowed \('maxrows'",
        ),
        (
            ("weight: 2.5", "weight: heavy"),
            r"f\.yaml:8: stages\[2\]\.weight: 'heavy' is not of type 'number'",
        ),
        (("tasks: [puzzle]", "tasks: [poetry]"), r"f\.yaml:9: stages\[2\]\.tasks: \['poetry'\] is not valid"),
        (("name: mix", "name: 'bad name'"), r"f\.yaml:1: name: 'bad name' does not match"),
        (
            ("seed: 4", "seed: 4\nextra: 1"),
            r"f\.yaml:1: \(top level\): Additional properties are not allowed \('extra'",
        ),
    ],
)
def test_bad_recipes_are_one_line_with_file_line_and_field(tmp_path, edit, message):
    with pytest.raises(RecipeError, match=message) as exc:
        load_filter_recipe(write(tmp_path, GOOD.replace(*edit)))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"f\.yaml:1: a filter recipe is a mapping"),
        ("name: x\nstages: []\n", r"f\.yaml:2: stages: \[\] should be non-empty"),
        ("name: x\nstages:\n  - {max_rows: 3}\n", r"f\.yaml:3: stages\[0\]: 'filter' is a required property"),
        ("name: x\nstages: [\n", r"f\.yaml:\d+: invalid YAML"),
    ],
)
def test_malformed_recipes(tmp_path, text, message):
    with pytest.raises(RecipeError, match=message):
        load_filter_recipe(write(tmp_path, text))


def test_the_schema_has_one_branch_per_registered_filter():
    from triune_data.filters import filter_names

    schema = filter_recipe_json_schema()
    items = schema["properties"]["stages"]["items"]
    assert items["properties"]["filter"]["enum"] == filter_names()
    assert [b["if"]["properties"]["filter"]["const"] for b in items["allOf"]] == filter_names()
