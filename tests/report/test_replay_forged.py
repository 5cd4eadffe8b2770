"""``poptrain replay`` on a forged workspace: recorded keys that are not config keys never become argv.

Lineage lines and metadata are workspace content anyone can write (with a valid checksum). Measured in issue 10: a
lineage key ``--experimental-rerun`` made ``python -m poptrain.train`` unpickle a file. Here the forged lineage and
the member's recorded overrides carry that flag (pointing at a pickle that creates a file when loaded), a Hydra
logging key and a key the config does not have; the replay runs for real and nothing of it happens.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest
from synthetic import LR

from poptrain import replay
from poptrain.cli import main
from poptrain.pbt.workspace import MemberMeta, Workspace

ENT = "train.params.config.entropy_coef"


class _Trap:
    """Unpickling it calls open(marker, "w"): the file exists iff something loaded the pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.timeout(300)
def test_forged_lineage_and_overrides_never_reach_the_replay_argv(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    marker, target, evil = tmp_path / "unpickled.txt", tmp_path / "appended.log", tmp_path / "evil"
    trap = tmp_path / "config.pickle"
    trap.write_bytes(pickle.dumps(_Trap(marker)))
    evil.mkdir()
    (evil / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    ws = Workspace(tmp_path / "ws")
    ws.ensure_population(1)
    base = ["task=Cartpole", "num_envs=16", "num_threads=1", "pbt=no_pbt",
            f"--experimental-rerun={trap}", f"+hydra.job.env_set.PYTHONPATH={evil}"]  # fmt: skip
    for it in (1, 2):
        ws.write_checkpoint(MemberMeta(member=0, iteration=it, frames=512 * it, epoch=2 * it, objective=1.0,
                                       params={LR: 3e-4, ENT: 0.0}, checkpoint=f"{it:06d}.pth", experiment="e",
                                       experiment_dir="/e", time=1.0, num_policies=1, overrides=base),
                            {"model": {}})  # fmt: skip
    forged = {LR: 1e-4, ENT: 0.0, "--experimental-rerun": str(trap),
              "hydra.job_logging.handlers.file.filename": str(target), "task.env.notAKey": 1.0}  # fmt: skip
    ws.append_lineage("mutate", 0, iteration=1, frames=512, old_params={LR: 3e-4, ENT: 0.0}, new_params=forged,
                      changed=sorted(forged), mode="hot_swap")  # fmt: skip
    argvs: list[list[str]] = []
    real_runner = replay.run_streaming

    def recording_runner(argv: list[str]) -> tuple[int, str]:
        argvs.append(argv)
        return real_runner(argv)

    monkeypatch.setattr(replay, "run_streaming", recording_runner)
    with caplog.at_level(logging.WARNING, logger="poptrain.untrusted"):
        assert main(["replay", str(ws.root), "--member", "0", "--out", str(tmp_path / "replay")]) == 0
    assert len(argvs) == 2
    for argv in argvs:
        joined = " ".join(argv)
        assert "experimental" not in joined and "hydra" not in joined and "notAKey" not in joined, argv
    assert f"{LR}=0.0001" in " ".join(argvs[1])  # the legitimate change is still replayed
    assert not marker.exists() and not target.exists()
    warned = [r.getMessage() for r in caplog.records]
    assert any("--experimental-rerun" in m and "task.env.notAKey" in m for m in warned), warned
    assert any("+hydra.job.env_set.PYTHONPATH" in m and "overrides" in m for m in warned), warned
