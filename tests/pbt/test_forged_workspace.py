"""A hostile co-user of the shared workspace cannot turn a forged leader into code execution or file writes.

A real member (rl_games process) runs next to a forged leader: metadata written through the real API (so its
checksum is valid: the checksum catches corruption, not forgery) with a huge objective, a far-future time that
never goes stale, the member's own network weights, and params holding the two attacks measured in issue 10:

- ``+hydra.job.env_set.PYTHONPATH=<dir>`` with a ``sitecustomize.py`` there: a restarted process would import it;
- ``hydra.job_logging.handlers.file.filename=<file>``: Hydra would append log lines to an arbitrary file;

plus a key of another mutation set (``train.params.config.gamma``) and no value for the member's own key (a
leader with a different mutation set used to crash the exploit). The member mutates only a task parameter, so
every exploit restarts it with os.execv: the path where leader keys became argv.
"""

from __future__ import annotations

import time

import pytest
import torch
from test_pbt_e2e import EPOCH_FRAMES, member_argv, start, train_line, wait_all

from poptrain.pbt.workspace import MemberMeta, Workspace

ATTACKS = ("+hydra.job.env_set.PYTHONPATH", "hydra.job_logging.handlers.file.filename")


@pytest.mark.timeout(600)
def test_forged_leader_params_never_reach_argv(tmp_path):
    ws_root, evil = tmp_path / "ws", tmp_path / "evil"
    evil.mkdir()
    marker, target = tmp_path / "imported.txt", tmp_path / "appended.log"
    (evil / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")
    argv = member_argv(ws_root, tmp_path / "runs", 0, 2, epochs=40, mutation="task_only", rate=1.0)
    # decisions start 16 epochs after the forgery can be written (iteration 1, epoch 8): margin for a fast machine
    argv = [
        a.replace(f"pbt.initial_delay={8 * EPOCH_FRAMES}", f"pbt.initial_delay={24 * EPOCH_FRAMES}")
        for a in argv
    ]
    log = tmp_path / "log0.txt"
    proc = start(argv, log)
    try:
        ws = Workspace(ws_root)
        own = ws.member_dir(0) / "000001.pth"
        deadline = time.monotonic() + 400  # generous: only a hang ends here
        while not (own.is_file() and ws.latest(0) is not None):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        state = torch.load(own, map_location="cpu", weights_only=True)
        forged = MemberMeta(
            member=1, iteration=1, frames=8 * EPOCH_FRAMES, epoch=8, objective=1e9, checkpoint="000001.pth",
            params={ATTACKS[0]: str(evil), ATTACKS[1]: str(target), "train.params.config.gamma": 0.5},
            experiment="leader", experiment_dir=str(tmp_path), time=time.time() + 1e6, num_policies=2,
        )  # fmt: skip
        ws.write_checkpoint(forged, state)
        assert wait_all([proc], timeout=500) == [0], log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    events = Workspace(ws_root).read_lineage()
    exploits = [e for e in events if e.event == "exploit"]
    # the member did copy the forged leader (its weights are real) and restarted with the new task value ...
    assert exploits and all(e.source == 1 and e.mode == "restart" for e in exploits), events
    assert all(set(e.new_params) == {"task.env.maxEpisodeLength"} for e in exploits), exploits
    assert [e for e in events if e.event == "restart"]
    # ... but none of the forged keys reached a command line, nothing was imported, no file was written
    restarts = [ln for ln in text.splitlines() if "PBT restart:" in ln]
    assert restarts and not [ln for ln in restarts if "hydra" in ln or "gamma" in ln], restarts
    assert not marker.exists() and not target.exists()
    assert "ignoring 3 untrusted key(s)" in text and ATTACKS[0] in text
    final = Workspace(ws_root).latest(0)
    assert final is not None and final.finished and final.frames == 40 * EPOCH_FRAMES
    assert int(train_line(log)["frames"]) == 40 * EPOCH_FRAMES
