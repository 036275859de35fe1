"""The spaces meta/info.json declares are checked against the stored data on every open: a store
whose observation or action space cannot hold its columns is refused by `ildata.load`, `inspect`,
`convert` and `verify` with one line naming meta/info.json, never an internal error later."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import DATASETS, make_episodes, run_cli

import ildata
from ildata.episode import DataError

SHIPPED = DATASETS / "cartpole-expert"  # Box(4,) float32 observations, Discrete(2) int64 actions


def _obs_shape_5(info: dict[str, Any]) -> None:
    space = info["observation_space"]
    space.update(shape=[5], low=[*space["low"], 0.0], high=[*space["high"], 0.0])


def _obs_shape_5_bounds_4(info: dict[str, Any]) -> None:
    info["observation_space"]["shape"] = [5]


def _obs_integer_box(info: dict[str, Any]) -> None:
    info["observation_space"]["dtype"] = "int64"


def _action_box(info: dict[str, Any]) -> None:
    info["action_space"] = {"type": "Box", "dtype": "float32", "shape": [2], "low": [0, 0], "high": [1, 1]}


def _action_n_zero(info: dict[str, Any]) -> None:
    info["action_space"]["n"] = 0


def _action_n_text(info: dict[str, Any]) -> None:
    info["action_space"]["n"] = "2"


def _action_multidiscrete(info: dict[str, Any]) -> None:
    info["action_space"] = {"type": "MultiDiscrete", "dtype": "int64", "nvec": [2, 2], "start": [0, 0]}


def _action_unknown_kind(info: dict[str, Any]) -> None:
    info["action_space"] = {"type": "Graph"}


CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "obs-shape-5-over-4": (_obs_shape_5, "observation_space (Box) has shape [5], but the 'obs' data is float32 of shape [4]"),
    "obs-shape-5-bounds-4": (_obs_shape_5_bounds_4, "observation_space (Box) has shape [5]"),
    "obs-integer-box-over-floats": (_obs_integer_box, "observation_space (Box) holds int64 values"),
    "action-box-over-discrete": (_action_box, "action_space (Box) has shape [2], but the 'acts' data is int64 of shape []"),
    "action-n-zero": (_action_n_zero, "action_space (Discrete) needs a positive integer n"),
    "action-n-text": (_action_n_text, "action_space (Discrete) needs a positive integer n"),
    "action-multidiscrete-shape": (_action_multidiscrete, "action_space (MultiDiscrete) has shape [2]"),
    "action-unknown-kind": (_action_unknown_kind, "action_space is 'Graph'"),
}


def _edited_copy(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    store = tmp_path / "store"
    shutil.copytree(SHIPPED, store)
    info_path = store / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    edit(info)
    info_path.write_text(json.dumps(info, indent=2))
    return store


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_refuses_declared_spaces_the_data_does_not_have(tmp_path: Path, case: str) -> None:
    edit, message = CASES[case]
    store = _edited_copy(tmp_path, edit)
    with pytest.raises(DataError) as caught:
        ildata.load(store)
    assert f"meta/info.json: {message}" in str(caught.value)
    assert caught.value.subject == store


@pytest.mark.parametrize("case", ["obs-shape-5-over-4", "action-box-over-discrete", "action-n-zero"])
@pytest.mark.parametrize("command", ["inspect", "convert", "verify"])
def test_cli_refuses_declared_spaces_the_data_does_not_have(tmp_path: Path, case: str, command: str) -> None:
    edit, message = CASES[case]
    store = _edited_copy(tmp_path, edit)
    args = [command, str(store)] + ([str(tmp_path / "out")] if command == "convert" else [])
    done = run_cli(*args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0], done.stderr
    assert "meta/info.json" in lines[0] and message in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_shipped_stores_pass_the_space_checks() -> None:
    for info in sorted(DATASETS.glob("*/meta/info.json")):
        assert len(ildata.load(info.parent.parent)) > 0


def test_save_refuses_an_observation_space_its_episodes_do_not_fit(tmp_path: Path) -> None:
    """What `load` would refuse is never written (the writer checks the same declarations)."""
    from gymnasium import spaces

    episodes = make_episodes(obs_dim=3)
    wrong = spaces.Box(-np.inf, np.inf, shape=(5,), dtype=np.float32)
    with pytest.raises(DataError, match=r"observation_space \(Box\) has shape \[5\]"):
        ildata.save(episodes, tmp_path / "store", observation_space=wrong, action_space=spaces.Box(-1, 1, (2,), np.float32))
    assert not (tmp_path / "store").exists()
