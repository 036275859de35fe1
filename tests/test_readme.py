"""The README's Quick start is what CI runs: the two commands stay in step with .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_commands() -> list[str]:
    section = ROOT.joinpath("README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_quick_start_has_exactly_two_commands_installing_torch_first():
    commands = quick_start_commands()
    assert len(commands) == 2
    for command in commands:
        assert command.startswith("pip install torch==2.13.0 && ")


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = quick_start_commands()[1]
    ci_lines = ROOT.joinpath(".ci/run").read_text().splitlines()
    assert test_command in ci_lines


def test_main_command_recipe_and_dataset_exist():
    main = quick_start_commands()[0]
    recipe = re.search(r"ildata train (\S+)", main).group(1)
    assert (ROOT / recipe).is_file()
    assert any((ROOT / "datasets").glob("*/meta/info.json"))


def test_python_example_runs(tmp_path, monkeypatch):
    """The README's Python example works as written (lines needing files a user would bring, or
    the Hub, are left out; everything else runs against the shipped data)."""
    section = ROOT.joinpath("README.md").read_text().split("## What it does", 1)[1]
    code = re.findall(r"```python\n(.*?)\n```", section, flags=re.S)[0]
    skip = ("...", "old.pkl", "hf://")
    lines = [line for line in code.splitlines() if not any(s in line for s in skip)]
    source = "\n".join(lines).replace('"datasets/', f'"{ROOT}/datasets/')
    monkeypatch.chdir(tmp_path)
    exec(compile(source, "README.md", "exec"), {})
    assert (tmp_path / "demos-train" / "meta" / "info.json").is_file()
