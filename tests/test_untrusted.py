"""poptrain.untrusted: the one rule for workspace values that become argv or terminal text; lineage checksums;
restarts that keep ``+``/``++`` prefixes."""

from __future__ import annotations

import json
import logging

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from poptrain.pbt.restart import restart_argv
from poptrain.pbt.workspace import Workspace
from poptrain.untrusted import markup_safe, override_refusal, refusal, safe_overrides, safe_params, shown

LR = "train.params.config.learning_rate"
HOSTILE_KEYS = [
    "+hydra.job.env_set.PYTHONPATH",
    "hydra.job_logging.handlers.file.filename",
    "hydra",
    "~task",
    "--experimental-rerun",
    "-m",
    "a b",
    "a=b",
    "task.env.x,hydra.run.dir",
    "train..x",
    "",
    "k\nhydra.x",
]


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_are_refused_even_when_allowed(key):
    assert refusal(key, allowed=[key])
    assert refusal(key)


def test_only_allowed_dotted_keys_pass():
    assert refusal(LR) == "" and refusal(LR, [LR]) == ""
    assert refusal("train.params.config.gamma", [LR]) == "not one this member may set"
    assert refusal(3) and refusal(None)


def test_safe_params_drops_refused_keys_with_one_warning(caplog):
    values = {
        LR: 1e-3,
        "+hydra.job.env_set.PYTHONPATH": "/tmp/x",
        "--experimental-rerun": "/x.pkl",
        "seed": 2,
    }
    with caplog.at_level(logging.WARNING, logger="poptrain.untrusted"):
        kept = safe_params(values, [LR, "seed"], "test")
    assert kept == {LR: 1e-3, "seed": 2}
    assert len(caplog.records) == 1
    assert "+hydra.job.env_set.PYTHONPATH" in caplog.text and "--experimental-rerun" in caplog.text


def test_recorded_overrides_keep_prefixes_but_never_hydra_or_flags(caplog):
    good = ["task=Cartpole", "pbt/mutation=task_only", "+task.env.extra=1", "++seed=3", "~train.params.x"]
    bad = ["--experimental-rerun=/x.pkl", "+hydra.job.env_set.A=1", "hydra.run.dir=/x", "-m", "a\nb=1"]
    assert [o for o in good if override_refusal(o)] == []
    with caplog.at_level(logging.WARNING, logger="poptrain.untrusted"):
        assert safe_overrides(good + bad, "test") == good
    assert len(caplog.records) == 1
    assert safe_overrides("task=Cartpole", "test") == []  # not a list: nothing reused


def test_restart_argv_refuses_hostile_value_keys():
    argv = restart_argv(["task=Cartpole"], {LR: 1e-3, "+hydra.job.env_set.PYTHONPATH": "/tmp/evil"})
    assert argv[3:] == ["task=Cartpole", f"{LR}=0.001"]


def test_restart_keeps_the_plus_prefix_of_a_replaced_override():
    parser = OverridesParser.create()
    merged = restart_argv(
        ["task=Cartpole", "+task.env.extra=1", "++seed=3", "~train.x"],
        {"task.env.extra": 2.5, "seed": 4, "train.x": 1},
    )[3:]
    assert merged == ["task=Cartpole", "+task.env.extra=2.5", "++seed=4", "++train.x=1"]
    parsed = parser.parse_overrides(merged)
    assert [p.is_add() for p in parsed] == [False, True, False, False]
    assert [p.is_force_add() for p in parsed] == [False, False, True, True]


def test_display_text_is_one_line_without_markup_or_control_characters():
    assert shown("a\nb\x1b[31mc\x00") == "a\\nb[31mc"
    assert markup_safe("could not read [/data/x.yaml]") == "could not read \\[/data/x.yaml]"
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(markup_safe("[/x] [bold]y[/bold] \x1b]0;title\x07"))
    assert "[/x] [bold]y[/bold]" in console.export_text()
    assert len(shown("x" * 1000)) == 200


def test_lineage_lines_carry_a_checksum_and_bad_lines_are_skipped(tmp_path, caplog):
    ws = Workspace(tmp_path)
    ws.append_lineage(
        "exploit",
        1,
        source=0,
        source_iteration=2,
        iteration=3,
        frames=10,
        old_params={LR: 1.0},
        new_params={LR: 2.0},
        changed=[LR],
    )
    ws.append_lineage("mutate", 2, iteration=1, frames=5, new_params={LR: 3.0}, changed=[LR])
    lines = ws.lineage_path.read_text().splitlines()
    assert all("sha256" in json.loads(line) for line in lines)
    edited = json.loads(lines[0])
    edited["new_params"] = {"--experimental-rerun": "/x.pkl"}  # edited without recomputing the checksum
    unsigned = {k: v for k, v in json.loads(lines[1]).items() if k != "sha256"}
    wrong_type = dict(json.loads(lines[1]), source="0")  # a non-int source
    with open(ws.lineage_path, "a") as f:
        for rec in (edited, unsigned, wrong_type):
            f.write(json.dumps(rec) + "\n")
        f.write("\udcff".encode("utf-8", "surrogateescape").decode("latin-1") + "\n")
    with open(ws.lineage_path, "ab") as f:
        f.write(b"\xff\xfe{not utf-8}\n")
    with caplog.at_level(logging.WARNING, logger="poptrain.pbt.workspace"):
        recs = ws.read_lineage()
    assert [(r.event, r.member) for r in recs] == [("exploit", 1), ("mutate", 2)]
    assert all("sha256" not in r.to_record() for r in recs)
    assert caplog.text.count("skipping corrupt line") == 5
    assert "sha256" in caplog.text and "source" in caplog.text


def test_append_lineage_refuses_a_record_its_reader_would_skip(tmp_path):
    with pytest.raises(ValueError, match="source"):
        Workspace(tmp_path).append_lineage("exploit", 1, source="leader")


def test_play_overrides_from_a_forged_saved_config_read_no_environment_and_no_hostile_keys(
    monkeypatch, caplog
):
    from poptrain.overrides import config_overrides

    monkeypatch.setenv("POPTRAIN_TEST_SECRET", "s3cr3t-value")
    saved = {
        "task": {
            "name": "Cartpole",
            "env": {"maxEffort": "${oc.env:POPTRAIN_TEST_SECRET}", "resetDist": 0.2},
        },
        "train": {"params": {"config": {"gamma": 0.9, "x=1,hydra.run.dir": 3}}},
    }
    with caplog.at_level(logging.WARNING):
        overrides = config_overrides(saved)
    joined = " ".join(overrides)
    assert "s3cr3t" not in joined and "hydra" not in joined and "maxEffort" not in joined
    assert "train.params.config.gamma=0.9" in overrides and "task.env.resetDist=0.2" in overrides
    assert "read the environment" in caplog.text and "untrusted key" in caplog.text
