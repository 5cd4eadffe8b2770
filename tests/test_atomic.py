"""poptrain.atomic.atomic_write: the one atomic write, used by checkpoints, the workspace, reports and the launcher."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from poptrain.atomic import atomic_write
from poptrain.launcher.backends import atomic_write as launcher_write


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "meta.yaml"
    atomic_write(path, lambda f: f.write(b"old\n"))

    def half_then_fail(f):
        f.write(b"half of the new con")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.yaml"]


def test_mode_sets_the_permission_bits(tmp_path):
    private = atomic_write(tmp_path / "a.pth", lambda f: f.write(b"x"))
    shared = atomic_write(tmp_path / "report.html", lambda f: f.write(b"x"), mode=0o644)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600  # mkstemp's default: owner only
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644


def test_the_launcher_writes_scripts_through_it_without_importing_torch(tmp_path):
    script = tmp_path / "job.sbatch"
    launcher_write(str(script), "#!/bin/bash\necho hi\n", mode=0o755)
    assert script.read_text() == "#!/bin/bash\necho hi\n" and os.access(script, os.X_OK)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.sbatch"]
    # the launcher and its Ray workers must not pay torch's import (seconds, ~300 MB) for a text file
    probe = "import sys, poptrain.launcher.backends.slurm; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_exclusive_write_that_cannot_win_makes_no_temp_file_and_a_loser_whose_temp_vanished_is_told_so(
    tmp_path,
):
    path = tmp_path / "population.json"
    atomic_write(path, lambda f: f.write(b"first\n"), exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write(path, lambda f: f.write(b"second\n"), exclusive=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["population.json"]

    other = tmp_path / "other.json"

    def winner_appears_and_cleans_up(f):  # another process links its file and removes the losers' temp files
        f.write(b"loser\n")
        other.write_bytes(b"winner\n")
        for leftover in tmp_path.glob(".other.json.*.tmp"):
            leftover.unlink()

    with pytest.raises(FileExistsError):
        atomic_write(other, winner_appears_and_cleans_up, exclusive=True)
    assert other.read_bytes() == b"winner\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "population.json"]
