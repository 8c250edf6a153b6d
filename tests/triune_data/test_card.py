"""The dataset card: configs per data_source, features as `datasets` writes them, lineage."""

import yaml

from triune_data.card import features_yaml
from triune_data.schema import hf_features


def card_yaml(path):
    text = (path / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_declares_a_config_per_source_plus_default(small_dataset):
    card = card_yaml(small_dataset)
    configs = {c["config_name"]: c for c in card["configs"]}
    assert set(configs) == {"default", "synth_det", "synth_math", "synth_count"}
    assert configs["default"]["default"] is True
    assert {"split": "test", "path": "data/synth_count/test-*"} in configs["synth_count"]["data_files"]
    assert card["license"] == "cc0-1.0"
    assert card["dataset_info"]["features"] == features_yaml()


def test_features_yaml_is_what_datasets_writes():
    assert features_yaml() == hf_features()._to_yaml_list()


def test_card_body_has_no_placeholder(small_dataset):
    """The card is pushed as built: every sentence must hold on the Hub too, no PATH/TODO to fill."""
    body = (small_dataset / "README.md").read_text().split("---\n", 2)[2]
    for placeholder in ("PATH", "TODO", "example.com", "<data_source>", "http://", "https://"):
        assert placeholder not in body, placeholder
    assert 'the data_source as config name (e.g. `"synth_count"`) for one source' in body
