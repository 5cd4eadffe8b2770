"""``LineageEvent`` is written and read by the same code and keeps the on-disk format of earlier versions;
``Layout`` is the one place that says what a workspace looks like (the engine, status and ``find_workspace``
agree on it)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from meta_factory import make_meta

from poptrain.errors import WorkspaceError
from poptrain.pbt.layout import Layout, checkpoint_name
from poptrain.pbt.lineage import LineageEvent, LineageLog
from poptrain.pbt.workspace import Workspace
from poptrain.report.locate import find_workspace, is_workspace

LR = "train.params.config.learning_rate"


def test_an_event_round_trips_with_its_event_specific_fields(tmp_path):
    log = LineageLog(tmp_path / "lineage.jsonl")
    written = log.append(
        LineageEvent.create(
            "exploit", np.int64(2), source=0, source_iteration=4, iteration=5, frames=np.int64(100),
            old_params={LR: 1e-3}, new_params={LR: 2e-3}, changed=[LR], mode="hot_swap",
            latency_s=np.float32(0.25), applied={LR: 2e-3},
        )
    )  # fmt: skip
    (read,) = log.read()
    assert read == written
    assert type(read.member) is int and type(read.frames) is int  # numpy numbers made plain at write time
    assert read.extra == {"latency_s": 0.25, "applied": {LR: 2e-3}}
    assert read.source == 0 and read.new_params == {LR: 2e-3} and read.mode == "hot_swap"


def test_a_line_in_the_format_of_earlier_versions_reads_unchanged(tmp_path):
    # what the dict-based writer produced: flat standard + extra fields, sha256 over the canonical JSON of the rest
    record = {
        "event": "restart", "member": 1, "source": 0, "source_iteration": 3, "iteration": 6, "frames": 4096,
        "old_params": {LR: 1.0}, "new_params": {LR: 1.0}, "changed": [], "mode": "restart", "time": 1.7e9,
        "cause": "exploit", "latency_s": 6.5,
    }  # fmt: skip
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True)
    line = json.dumps({**record, "sha256": hashlib.sha256(canonical.encode()).hexdigest()}, sort_keys=True)
    (tmp_path / "lineage.jsonl").write_text(line + "\n")
    (event,) = Workspace(tmp_path).read_lineage()
    assert event.to_record() == record
    assert event.extra == {"cause": "exploit", "latency_s": 6.5}
    # and the writer produces the same bytes for it
    assert event.to_line() == (line + "\n").encode()


def test_the_writer_refuses_what_its_reader_would_skip(tmp_path):
    with pytest.raises(ValueError, match="iteration"):
        LineageEvent.create("mutate", 1, iteration=-1)
    with pytest.raises(ValueError, match="new_params"):
        LineageEvent.create("mutate", 1, new_params=[1, 2])
    with pytest.raises(ValueError, match="lower-case"):
        LineageEvent.create("Exploit", 1)


def test_layout_names_every_path_and_the_workspace_writes_where_it_says(tmp_path):
    layout = Layout(tmp_path)
    ws = Workspace(tmp_path)
    meta = make_meta(3, 7, checkpoint=checkpoint_name(7))
    ws.write_checkpoint(meta, {"w": 1})
    assert layout.meta_path(3, 7).is_file() and layout.checkpoint_path(3, "000007.pth").is_file()
    assert layout.meta_path(3, 7) == tmp_path / "003" / "000007.yaml"
    ws.ensure_population(4)
    ws.append_lineage("mutate", 3)
    assert layout.population_path.is_file() and layout.lineage_path.is_file()
    assert layout.members() == ws.members() == [3]
    assert Layout.resolve("/runs", "ws").root.as_posix() == "/runs/ws"
    assert Layout.resolve("/runs", "/shared/ws").root.as_posix() == "/shared/ws"
    with pytest.raises(WorkspaceError, match="pbt.workspace is empty"):
        Layout.resolve("/runs", " ")


def test_a_member_folder_that_is_a_symbolic_link_makes_no_workspace(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    Workspace(elsewhere).write_checkpoint(make_meta(0, 1), {"w": 1})
    run = tmp_path / "run"
    (run / "ws").mkdir(parents=True)
    (run / "ws" / "000").symlink_to(elsewhere / "000")
    # the engine never lists it (it would read and write through it), and neither does status' search
    assert Workspace(run / "ws").members() == []
    assert not is_workspace(run / "ws")
    with pytest.raises(WorkspaceError, match="no PBT workspace"):
        find_workspace(run)
    assert find_workspace(elsewhere) == elsewhere


def test_an_event_built_as_the_dataclass_is_written_as_create_writes_it(tmp_path):
    # the observer builds LineageEvent itself; the log makes it plain and checks it exactly as `create` does
    fields = dict(
        source=np.int64(0), source_iteration=4, iteration=5, frames=np.int64(100), old_params={LR: np.float64(1e-3)},
        new_params={LR: 2e-3}, changed=[LR], mode="restart",
    )  # fmt: skip
    extra = {"mutated": [LR], "objective": np.float32(0.5), "source_objective": 1.5}
    built = LineageEvent(event="exploit", member=np.int64(2), time=1.7e9, **fields, extra=extra)
    made = dataclasses.replace(LineageEvent.create("exploit", 2, **fields, **extra), time=1.7e9)
    log = LineageLog(tmp_path / "lineage.jsonl")
    log.append(built)
    assert (tmp_path / "lineage.jsonl").read_bytes() == made.to_line()
    (read,) = log.read()
    assert read == made and type(read.member) is int and read.extra["objective"] == 0.5
    with pytest.raises(ValueError, match="iteration"):  # the writer refuses what its reader would skip
        log.append(dataclasses.replace(built, iteration=-1))
    assert len(log.read()) == 1
