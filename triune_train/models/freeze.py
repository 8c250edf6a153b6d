"""Freeze the vision tower and connector by module TYPE, report counts, build per-module param groups.

Every parameter belongs to exactly one part:

- ``connector``: inside a module of the family's connector classes (the patch merger(s));
- ``vision``:    otherwise inside the family's vision-tower class (patch embedding, blocks);
- ``language``:  everything else (embeddings, decoder layers, LM head).

Membership is decided by ``isinstance`` on the modules, never by parameter-name prefixes:
transformers 5 renamed ``visual.*`` to ``model.visual.*``, and V-Triune's name-based freeze would
then have frozen nothing without a word. The freeze asserts that exactly one vision tower and at
least one connector were found and that the frozen count is what the parts say, so a rename fails
loudly here. The paper freezes both (§4.1, Fig. 7: with the ViT trainable, gradient norms grew
tenfold and detection collapsed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from triune_train.models.families import Family, ModelError

Part = Literal["vision", "connector", "language"]
PARTS: tuple[Part, ...] = ("vision", "connector", "language")


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts (elements, not tensors) per part, after a freeze."""

    frozen: dict[str, int]
    trainable: dict[str, int]

    @property
    def total_frozen(self) -> int:
        return sum(self.frozen.values())

    @property
    def total_trainable(self) -> int:
        return sum(self.trainable.values())

    def as_metrics(self) -> dict[str, float]:
        """Flat metric keys: ``params/frozen``, ``params/trainable``, ``params/{part}_trainable`` …"""
        out = {"params/frozen": float(self.total_frozen), "params/trainable": float(self.total_trainable)}
        for part in PARTS:
            out[f"params/{part}_frozen"] = float(self.frozen[part])
            out[f"params/{part}_trainable"] = float(self.trainable[part])
        return out


def _modules_of(model: nn.Module, types: tuple[type, ...]) -> list[nn.Module]:
    """Outermost modules of the given types (a merger inside a merger is not counted twice)."""
    found: list[nn.Module] = []
    inside: set[int] = set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, types):
            found.append(module)
            inside.update(id(m) for m in module.modules())
    return found


def parameter_parts(model: nn.Module, family: Family) -> dict[Part, list[nn.Parameter]]:
    """Every parameter of ``model`` assigned to one part (shared/tied parameters once)."""
    towers = _modules_of(model, family.vision_tower_types)
    if len(towers) != 1:
        names = ", ".join(t.__name__ for t in family.vision_tower_types)
        raise ModelError(f"{family.name}: expected one vision tower ({names}), found {len(towers)}")
    connectors = _modules_of(model, family.connector_types)
    if not connectors:
        names = ", ".join(t.__name__ for t in family.connector_types)
        raise ModelError(f"{family.name}: no connector module ({names}) in the model")
    connector_ids = {id(p) for c in connectors for p in c.parameters()}
    vision_ids = {id(p) for p in towers[0].parameters()} - connector_ids
    parts: dict[Part, list[nn.Parameter]] = {part: [] for part in PARTS}
    for param in model.parameters():  # deduplicates tied parameters
        pid = id(param)
        part: Part = "connector" if pid in connector_ids else "vision" if pid in vision_ids else "language"
        parts[part].append(param)
    return parts


def count_params(parts: dict[Part, list[nn.Parameter]]) -> ParamCounts:
    frozen: dict[str, int] = {p: sum(x.numel() for x in parts[p] if not x.requires_grad) for p in PARTS}
    trainable: dict[str, int] = {p: sum(x.numel() for x in parts[p] if x.requires_grad) for p in PARTS}
    return ParamCounts(frozen=frozen, trainable=trainable)


def freeze(model: nn.Module, family: Family, *, vision: bool = True, connector: bool = True) -> ParamCounts:
    """Freeze the chosen parts (``requires_grad = False``), unfreeze the others; return the counts.

    Asserts the result: every element of a frozen part is frozen, every other one trainable, and
    at least one parameter stays trainable.
    """
    parts = parameter_parts(model, family)
    wanted: dict[Part, bool] = {"vision": vision, "connector": connector, "language": False}
    frozen_parts = [p for p in PARTS if wanted[p]]
    for part, params in parts.items():
        for param in params:
            param.requires_grad_(part not in frozen_parts)
    counts = count_params(parts)
    expected = sum(int(x.numel()) for p in frozen_parts for x in parts[p])
    if counts.total_frozen != expected or (frozen_parts and expected == 0):
        raise ModelError(f"{family.name}: froze {counts.total_frozen} parameters, expected {expected}")
    if counts.total_trainable == 0:
        raise ModelError(f"{family.name}: nothing left to train after the freeze")
    return counts


def param_groups(
    model: nn.Module,
    family: Family,
    *,
    lr: float,
    vision_lr: float | None = None,
    connector_lr: float | None = None,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups, one per part with trainable parameters, each with its own lr.

    ``vision_lr`` / ``connector_lr`` default to ``lr``. Frozen parameters are left out. Each group
    carries a ``name`` key (torch keeps extra keys), so schedulers and logs can tell them apart.
    """
    lrs: dict[Part, float] = {
        "vision": lr if vision_lr is None else vision_lr,
        "connector": lr if connector_lr is None else connector_lr,
        "language": lr,
    }
    groups = []
    for part, params in parameter_parts(model, family).items():
        trainable = [p for p in params if p.requires_grad]
        if trainable:
            groups.append({"name": part, "params": trainable, "lr": lrs[part], "weight_decay": weight_decay})
    return groups


def trainable_parameters(groups: Iterable[dict[str, Any]]) -> int:
    """Elements in the given param groups (a cross-check for the optimizer)."""
    return sum(p.numel() for g in groups for p in g["params"])
