import pytest

from triune_train.models.families import FAMILIES, VISION_TOKENS, ModelError, family_for


@pytest.mark.parametrize(
    ("model_type", "name", "frame", "patch"),
    [
        ("qwen2_vl", "qwen2_vl", "norm1000", 14),
        ("qwen2_5_vl", "qwen2_5_vl", "pixel", 14),
        ("qwen3_vl", "qwen3_vl", "norm1000", 16),
    ],
)
def test_family_for_model_type(model_type: str, name: str, frame: str, patch: int) -> None:
    family = family_for(model_type)
    assert (family.name, family.box_frame, family.patch_size, family.merge_size) == (name, frame, patch, 2)


@pytest.mark.parametrize("model_type", ["qwen2", "llama", "", "qwen2_5_vl_moe"])
def test_unknown_model_type_is_one_line_error(model_type: str) -> None:
    with pytest.raises(ModelError, match="has no vision tower triune can train") as e:
        family_for(model_type)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_resolves_its_classes(name: str) -> None:
    # A transformers release that renames one of these classes must fail here, not freeze nothing.
    from torch import nn

    family = FAMILIES[name]
    assert all(issubclass(t, nn.Module) for t in family.vision_tower_types + family.connector_types)
    assert family.model_class.__name__.endswith("ForConditionalGeneration")
    assert family.processor_class.__name__.endswith("Processor")


def test_a_renamed_class_is_a_model_error() -> None:
    import dataclasses

    broken = dataclasses.replace(
        FAMILIES["qwen2_5_vl"], _vision_tower_classes=("Qwen2_5_VisionTowerThatMoved",)
    )
    with pytest.raises(ModelError, match="no class 'Qwen2_5_VisionTowerThatMoved'"):
        _ = broken.vision_tower_types


def test_vision_tokens_include_the_placeholders() -> None:
    assert {"<|image_pad|>", "<|video_pad|>"} <= set(VISION_TOKENS)
