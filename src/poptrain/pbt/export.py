"""``best/``: the exported best member (its newest checkpoint, its full config, its metadata).

Which member is best is ``poptrain.pbt.ranking``'s call (the same order the engine, status and the report use);
this module writes the three files, each atomically and ``meta.yaml`` last, so a reader that finds meta.yaml
finds a complete export.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from poptrain.pbt.files import dump_yaml, no_link, remove_temp_files, torch_bytes, write_bytes
from poptrain.pbt.layout import Layout
from poptrain.pbt.meta import MemberMeta, plain_data


def write_best(
    layout: Layout, meta: MemberMeta, state: dict, config: Mapping[str, Any], clean_temp: bool = False
) -> Path:
    """Write best/{checkpoint.pth, config.yaml, meta.yaml} atomically (meta last); return the folder.
    ``clean_temp`` (only while holding the best/ lock): first delete ``.*.tmp`` leftovers of exporters killed
    mid-write."""
    d = no_link(layout.best_dir)
    if clean_temp:
        remove_temp_files(d, "best/")
    write_bytes(layout.best_checkpoint, torch_bytes(state))
    write_bytes(layout.best_config, dump_yaml(plain_data(config, "config")))
    write_bytes(layout.best_meta, dump_yaml(meta.to_dict()))
    return d
