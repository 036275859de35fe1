"""Recipe files: a broken YAML file is reported as `FILE:LINE:COLUMN: invalid YAML (...)`, one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO

from ildata.cli import main


def test_broken_yaml_names_line_and_column(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "recipe.yaml"
    bad.write_text("name: x\nalgo: bc\nconfig: {a: [1, 2}\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"ildata: error: {bad}:3:18: invalid YAML (expected ',' or ']'"), err


def test_bad_indentation_names_its_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "recipe.yaml"
    bad.write_text("algo: bc\n  seed: 1\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}:2:7: invalid YAML (mapping values are not allowed here)" in err[0], err


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_builds(path: Path) -> None:
    """What `ildata train RECIPE` does before training: keys, dataset, env and algorithm all check out."""
    from algos.recipe import load_recipe
    from algos.train import prepare, quiet_third_party

    with quiet_third_party():
        prepared = prepare(load_recipe(path))
    assert prepared.env_id is not None or prepared.dataset is not None
