import pytest
import torch
from torch import nn

from triune_train.models.families import ModelError
from triune_train.models.freeze import freeze, param_groups, parameter_parts, trainable_parameters

FAMILIES = ["qwen2_5_vl", "qwen3_vl"]


def numel(params) -> int:
    return sum(p.numel() for p in params)


@pytest.mark.parametrize("family", FAMILIES)
def test_parts_match_the_model_tree(tiny_policy, family: str) -> None:
    model = tiny_policy(family).model
    visual = model.model.visual  # transformers 5 layout, named here only to cross-check the types
    mergers = [visual.merger, *getattr(visual, "deepstack_merger_list", [])]
    parts = parameter_parts(model, model_family := tiny_policy(family).family)
    assert model_family.name == family
    assert numel(parts["connector"]) == numel(p for m in mergers for p in m.parameters())
    assert numel(parts["vision"]) == numel(visual.parameters()) - numel(parts["connector"])
    assert numel(parts["language"]) == numel(model.parameters()) - numel(visual.parameters())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    ("vision", "connector", "frozen_parts"),
    [(True, True, {"vision", "connector"}), (True, False, {"vision"}), (False, False, set())],
)
def test_freeze_counts_and_gradients(
    tiny_policy, family: str, vision: bool, connector: bool, frozen_parts
) -> None:
    policy = tiny_policy(family)
    model = policy.model
    counts = freeze(model, policy.family, vision=vision, connector=connector)
    parts = parameter_parts(model, policy.family)
    for part, params in parts.items():
        assert counts.frozen[part] == (numel(params) if part in frozen_parts else 0)
        assert counts.trainable[part] == (0 if part in frozen_parts else numel(params))
        assert all(p.requires_grad == (part not in frozen_parts) for p in params)
    assert counts.total_frozen + counts.total_trainable == numel(model.parameters())
    metrics = counts.as_metrics()
    assert metrics["params/frozen"] == counts.total_frozen and metrics["params/language_trainable"] > 0

    # a real backward pass: frozen parts get no gradient, the others do
    grid = torch.tensor([[1, 4, 4]])
    patch_dim = 3 * 2 * policy.family.patch_size**2
    ids = torch.tensor([[policy.image_token_id] * 4 + [5, 6, 7]])
    mm = torch.tensor([[1] * 4 + [0, 0, 0]])
    out = model(
        input_ids=ids, pixel_values=torch.randn(16, patch_dim), image_grid_thw=grid, mm_token_type_ids=mm
    )
    out.logits.sum().backward()
    for part, params in parts.items():
        has_grad = any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
        assert has_grad == (part not in frozen_parts), part


def test_name_prefixes_from_older_transformers_match_nothing(tiny_policy) -> None:
    # V-Triune froze `visual.*` (transformers 4.51); in transformers 5 that prefix matches no parameter,
    # which is why the freeze goes by module type.
    names = [n for n, _ in tiny_policy("qwen2_5_vl").model.named_parameters()]
    assert not [n for n in names if n.startswith("visual.")]
    assert any(n.startswith("model.visual.") for n in names)


@pytest.mark.parametrize("family", FAMILIES)
def test_param_groups_have_per_module_learning_rates(tiny_policy, family: str) -> None:
    policy = tiny_policy(family)
    freeze(policy.model, policy.family, vision=False, connector=False)
    groups = param_groups(
        policy.model, policy.family, lr=1e-3, vision_lr=1e-5, connector_lr=1e-4, weight_decay=0.01
    )
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [
        ("vision", 1e-5, 0.01),
        ("connector", 1e-4, 0.01),
        ("language", 1e-3, 0.01),
    ]
    assert trainable_parameters(groups) == numel(policy.model.parameters())
    optimizer = torch.optim.AdamW(groups)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-5, 1e-4, 1e-3]

    freeze(policy.model, policy.family)  # the paper's setting: only the language model trains
    groups = param_groups(policy.model, policy.family, lr=1e-6)
    assert [g["name"] for g in groups] == ["language"]
    assert trainable_parameters(groups) == numel(p for p in policy.model.parameters() if p.requires_grad)


def test_a_model_without_the_family_tower_is_refused(tiny_policy) -> None:
    family = tiny_policy("qwen2_5_vl").family
    with pytest.raises(ModelError, match="expected one vision tower"):
        freeze(nn.Sequential(nn.Linear(2, 2)), family)
    qwen3 = tiny_policy("qwen3_vl").model  # the other family's tower is not this family's type
    with pytest.raises(ModelError, match="found 0"):
        freeze(qwen3, family)
