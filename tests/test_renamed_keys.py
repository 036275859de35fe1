"""One name per meaning: a recipe that uses a key's old name is refused by `ildata train` with one
line giving the new name, exit status 2, before any training."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import REPO, run_cli

from ildata.cli import main


def _with_key(recipe: str, dotted: str, value: object, tmp_path: Path) -> Path:
    """The shipped recipe with `dotted` (e.g. config.bc.standardise) set, written to tmp_path."""
    data = yaml.safe_load((REPO / "recipes" / recipe).read_text())
    if isinstance(data.get("dataset"), str):
        data["dataset"] = str((REPO / "recipes" / data["dataset"]).resolve())
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    path = tmp_path / recipe
    path.write_text(yaml.safe_dump(data))
    return path


def test_old_key_through_python_m_ildata_cli_train_is_one_line_with_exit_2(tmp_path: Path) -> None:
    path = _with_key("dagger-cartpole.yaml", "config.num_envs", 4, tmp_path)
    out = tmp_path / "run"
    result = run_cli("train", str(path), "--out", str(out), timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [f"ildata: error: {path}: config.num_envs was renamed to config.n_envs"]
    assert not out.exists() and not Path(f"{out}.partial").exists()


@pytest.mark.parametrize(
    ("recipe", "old", "new"),
    [
        ("dagger-pendulum.yaml", "config.bc.standardise", "config.bc.normalize_obs"),
        ("bc-cartpole.yaml", "config.standardise", "config.normalize_obs"),
        ("density-cartpole.yaml", "config.standardise", "config.normalize_obs"),
        ("bc-cartpole.yaml", "eval.num_envs", "eval.n_envs"),
    ],
)
def test_every_renamed_key_names_its_new_name(recipe: str, old: str, new: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _with_key(recipe, old, True if old.endswith("standardise") else 4, tmp_path)
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"ildata: error: {path}: {old} was renamed to {new}"]
    assert not out.exists() and not Path(f"{out}.partial").exists()
