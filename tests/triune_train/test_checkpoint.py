import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from triune_train.checkpoint import (
    RunError,
    checkpoints,
    latest_checkpoint,
    load_checkpoint,
    prepare_run,
    save_checkpoint,
)
from triune_train.config import TrainConfig

torch.set_num_threads(1)


class Net(nn.Module):
    """A stand-in policy: what checkpoint.py needs is save_pretrained (weights are exact either way)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def save_pretrained(self, path):
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / "weights.pt")

    def load(self, path):
        self.load_state_dict(torch.load(path / "weights.pt", weights_only=True))


class Processor:
    def __init__(self, fail=False):
        self.fail = fail

    def save_pretrained(self, path):
        if self.fail:
            raise KeyboardInterrupt  # Ctrl-C in the middle of a save
        (path / "processor.json").write_text("{}")


def make(seed=0):
    torch.manual_seed(seed)
    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return net, opt, sched


def step(net, opt, sched):
    x = torch.randn(8, 4)  # consumes the global RNG: its state must be restored too
    loss = net.lin(x).pow(2).mean() + random.random() * 0 + float(np.random.rand()) * 0
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return loss.item()


def save(run, n, net, opt, sched, keep=2, processor=None):
    return save_checkpoint(
        run,
        n,
        model=net,
        processor=processor or Processor(),
        optimizer=opt,
        scheduler=sched,
        state={"data": {"draws": n}},
        keep=keep,
    )


def test_resume_from_checkpoint_reproduces_the_next_losses_exactly(tmp_path):
    net, opt, sched = make()
    for _ in range(3):
        step(net, opt, sched)
    path = save(tmp_path, 3, net, opt, sched)
    expected = [step(net, opt, sched) for _ in range(3)]

    net2, opt2, sched2 = make(seed=123)  # different init and RNG: everything must come from the checkpoint
    net2.load(path / "policy")
    state = load_checkpoint(path, optimizer=opt2, scheduler=sched2)
    assert state["step"] == 3 and state["data"] == {"draws": 3}
    assert [step(net2, opt2, sched2) for _ in range(3)] == expected


def test_checkpoint_layout_and_pruning(tmp_path):
    net, opt, sched = make()
    for n in (1, 2, 3):
        save(tmp_path, n, net, opt, sched, keep=2)
    assert [p.name for p in checkpoints(tmp_path)] == ["step-000002", "step-000003"]
    latest = latest_checkpoint(tmp_path)
    assert sorted(p.name for p in latest.iterdir()) == ["policy", "state.json", "trainer_state.pt"]
    assert json.loads((latest / "state.json").read_text())["step"] == 3
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []


def test_interrupted_save_leaves_the_last_checkpoint_loadable(tmp_path):
    net, opt, sched = make()
    save(tmp_path, 1, net, opt, sched)
    with pytest.raises(KeyboardInterrupt):
        save(tmp_path, 2, net, opt, sched, processor=Processor(fail=True))
    assert latest_checkpoint(tmp_path).name == "step-000001"
    assert not (tmp_path / "checkpoints" / "step-000002").exists()
    _, opt2, sched2 = make()
    load_checkpoint(latest_checkpoint(tmp_path), optimizer=opt2, scheduler=sched2)


def cfg(**changes):
    base = {"total_steps": 10, "model": {"path": "tiny:qwen2_5_vl"}, "data": {"path": "d"}}
    for key, value in changes.items():
        section, field = key.split("__")
        base.setdefault(section, {})[field] = value
    return TrainConfig.model_validate(base)


def test_prepare_run_fresh_and_resume(tmp_path):
    run = tmp_path / "run"
    assert prepare_run(run, cfg(), resume=False) is None
    assert json.loads((run / "config.json").read_text())["hash"] == cfg().hash
    with pytest.raises(RunError, match="is not empty: pass --resume"):
        prepare_run(run, cfg(), resume=False)
    assert prepare_run(run, cfg(), resume=True) is None  # interrupted before the first checkpoint
    net, opt, sched = make()
    save(run, 4, net, opt, sched)
    (run / "checkpoints" / ".tmp-step-000008").mkdir()  # an interrupted save
    assert prepare_run(run, cfg(), resume=True).name == "step-000004"
    assert not (run / "checkpoints" / ".tmp-step-000008").exists()


@pytest.mark.parametrize(
    "changed, message",
    [
        ({}, None),
        ({"optim__lr": 2e-6}, r"the recipe changed since the run started \(optim\.lr\)"),
        ({"data__path": "other"}, r"\(data\.path\)"),
    ],
)
def test_resume_refuses_a_changed_recipe(tmp_path, changed, message):
    prepare_run(tmp_path, cfg(), resume=False)
    if message is None:
        prepare_run(tmp_path, cfg(**changed), resume=True)
    else:
        with pytest.raises(RunError, match=message):
            prepare_run(tmp_path, cfg(**changed), resume=True)


def test_resume_refuses_changed_total_steps(tmp_path):
    prepare_run(tmp_path, cfg(), resume=False)
    with pytest.raises(RunError, match=r"total_steps changed \(10 in the run, 20 now\)"):
        prepare_run(
            tmp_path, TrainConfig.model_validate({**cfg().model_dump(), "total_steps": 20}), resume=True
        )


def test_resume_needs_a_run(tmp_path):
    with pytest.raises(RunError, match="nothing to resume"):
        prepare_run(tmp_path, cfg(), resume=True)
