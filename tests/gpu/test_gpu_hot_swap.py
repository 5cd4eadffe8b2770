"""A CUDA member copies a leader's workspace checkpoint written on the CPU: hot swap and restore paths.

The leader (member 0) trains a few epochs on the CPU and writes its workspace checkpoints (CPU tensors,
weights-only). Member 1 trains on the device; after its first epoch the test calls the PBT observer's own
exploit (the code path a real exploit takes) with member 0 as leader. With ``pbt/mutation=lr_only`` every change
is live, so it is a hot swap: the weights, normaliser statistics and Adam moments must land on member 1's
device with the leader's values, and training must go on (a tensor on the wrong device fails the next update).
The restart path restores the same file through ``checkpoint=`` (rl_games' restore, mapped by poptrain).
"""

from __future__ import annotations

import pytest
import torch
from gpu_helpers import Capture, compose, on_cuda, tensor_devices

from poptrain.pbt.observer import PbtAlgoObserver
from poptrain.pbt.workspace import Workspace

pytestmark = pytest.mark.gpu

ENVS = 256
EPOCH_FRAMES = ENVS * 16


def member(idx: int, device: str, root, epochs: int) -> list[str]:
    return [
        "task=Cartpole", f"num_envs={ENVS}", f"max_iterations={epochs}", f"rl_device={device}",
        f"sim_device={device}", f"train_dir={root}", f"experiment=m{idx}", "train.params.config.save_frequency=0",
        "pbt=pbt_default", "pbt/mutation=lr_only", "pbt.num_policies=2", f"pbt.policy_idx={idx}",
        f"pbt.workspace={root / 'ws'}", f"pbt.interval_steps={EPOCH_FRAMES}", f"pbt.start_after={EPOCH_FRAMES}",
        "pbt.initial_delay=1000000000", "pbt.objective_grace_steps=0",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def leader(tmp_path_factory):
    """Member 0 trained 3 epochs on the CPU; its newest workspace metadata and checkpoint."""
    from poptrain.train import run_training

    root = tmp_path_factory.mktemp("gpu_swap")
    run_training(compose(*member(0, "cpu", root, 3)))
    ws = Workspace(root / "ws")
    meta = ws.latest(0)
    assert meta is not None
    return root, ws, meta, ws.load_state(meta)


def test_hot_swap_of_a_cpu_checkpoint_into_a_device_agent(leader, device):
    from poptrain.train import run_training

    root, ws, meta, state = leader
    assert tensor_devices(state["model"]) == {"cpu"}
    dev = torch.device(device).type
    seen: dict = {}

    def swap_after_first_epoch(algo, epoch: int) -> None:
        if epoch != 1:
            return
        pbt = next(o for o in algo.algo_observer.observers if isinstance(o, PbtAlgoObserver))
        pbt.exploit(meta, int(algo.frame))
        seen["model"] = {k: v.detach().clone() for k, v in algo.model.state_dict().items()}
        params = [p for g in algo.optimizer.param_groups for p in g["params"]]
        # clones: training goes on after the swap and Adam updates its moments in place
        seen["opt"] = [(p.device, {k: v.clone() for k, v in algo.optimizer.state[p].items()}) for p in params]
        seen["groups"] = [dict(g) for g in algo.optimizer.param_groups]

    capture = Capture(swap_after_first_epoch)
    result = run_training(compose(*member(1, device, root, 3)), observers=[capture])

    # the swap happened in process and training went on for the remaining epochs
    events = [e for e in ws.read_lineage() if e.event == "exploit" and e.member == 1]
    assert [e.mode for e in events] == ["hot_swap"] and events[0].source == 0
    assert result.frames == 3 * EPOCH_FRAMES
    # weights and normaliser statistics: on the device, with the leader's values
    assert tensor_devices(seen["model"]) == {dev}
    for key, value in state["model"].items():
        torch.testing.assert_close(seen["model"][key].cpu(), value, msg=key)
    # Adam moments on each parameter's device, equal to the leader's; step where torch keeps it
    leader_opt = state["optimizer"]["state"]
    fused = any(g.get("fused") or g.get("capturable") for g in seen["groups"])
    assert len(seen["opt"]) == len(leader_opt)
    for i, (param_device, moments) in enumerate(seen["opt"]):
        assert param_device.type == dev
        for name in ("exp_avg", "exp_avg_sq"):
            assert moments[name].device == param_device, (i, name)
            torch.testing.assert_close(moments[name].cpu(), leader_opt[i][name], msg=f"{i} {name}")
        assert moments["step"].device.type == (dev if fused else "cpu")
        assert float(moments["step"]) == float(leader_opt[i]["step"])


def test_restart_path_restores_a_cpu_checkpoint_onto_the_device(leader, device):
    from poptrain.train import run_training

    root, ws, meta, state = leader
    checkpoint = ws.member_dir(0) / meta.checkpoint
    capture = Capture()
    cfg = compose(
        "task=Cartpole", f"num_envs={ENVS}", f"max_iterations={meta.epoch + 1}", f"rl_device={device}",
        f"sim_device={device}", f"train_dir={root}", "experiment=restored", f"checkpoint={checkpoint}",
    )  # fmt: skip
    result = run_training(cfg, observers=[capture])
    assert result.frames == int(state["frame"]) + EPOCH_FRAMES  # continued from the leader's counters
    dev = torch.device(device).type
    opt_state = {i: s for i, s in enumerate(capture.algo.optimizer.state.values())}
    assert tensor_devices({i: {k: v for k, v in s.items() if k != "step"} for i, s in opt_state.items()}) == {
        dev
    }
    assert tensor_devices(capture.algo.model.state_dict()) == {dev}
    if on_cuda(device):
        assert torch.cuda.memory_allocated() > 0
