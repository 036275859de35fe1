"""The learner of an online algorithm is a typed config field: `learner:` is parsed into the
dataclass its `algo` names (PPOConfig | SACConfig | TRPOConfig | DQNConfig), with the
algorithm's default learner when absent, strict keys, `--set config.learner.x=...`, renamed
keys refused with their new names, and the type visible from `ildata train --help`."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml
from support import DATASETS

from algos.adversarial import default_learner
from algos.base import ALGORITHMS
from algos.expert import ExpertConfig
from algos.online.learner_configs import DQNConfig, PPOConfig, SACConfig, TRPOConfig
from algos.preference_comparisons import PreferenceComparisonsConfig
from algos.recipe import load_recipe
from ildata.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _recipe(tmp_path: Path, algo: str, config: dict[str, object]) -> Path:
    recipe = {"algo": algo, "dataset": str(DATASETS / "cartpole-expert"), "env": "seals/CartPole-v0", "config": config}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_a_recipe_learner_builds_the_config_its_algo_names(tmp_path: Path) -> None:
    recipe = load_recipe(_recipe(tmp_path, "gail", {"learner": {"algo": "sac", "batch_size": 64, "learning_starts": 10}}))
    assert recipe.config.learner == SACConfig(batch_size=64, learning_starts=10)
    trpo = load_recipe(_recipe(tmp_path, "airl", {"learner": {"algo": "trpo", "rollout_steps": 64}}))
    assert trpo.config.learner == TRPOConfig(rollout_steps=64)
    # absent: the algorithm's own default learner; no `algo`: PPO
    assert load_recipe(_recipe(tmp_path, "gail", {})).config.learner == default_learner()
    assert load_recipe(_recipe(tmp_path, "rl", {})).config.learner == SACConfig()
    assert load_recipe(_recipe(tmp_path, "gail", {"learner": {"gamma": 0.9}})).config.learner == PPOConfig(gamma=0.9)
    dqn = load_recipe(_recipe(tmp_path, "preference_comparisons", {"learner": {"algo": "dqn"}}))
    assert dqn.config.learner == DQNConfig()
    # the run folder's recipe.yaml writes it back as a mapping that parses to the same config
    again = yaml.safe_load(yaml.safe_dump(recipe.to_dict()))
    assert again["config"]["learner"]["algo"] == "sac" and again["config"]["learner"]["batch_size"] == 64


def test_set_overrides_reach_the_typed_learner(tmp_path: Path) -> None:
    path = ROOT / "recipes" / "gail-pendulum.yaml"
    shipped = load_recipe(path)
    assert isinstance(shipped.config.learner, SACConfig)
    recipe = load_recipe(path, ["config.learner.batch_size=7", "config.learner.gamma=0.5"])
    assert recipe.config.learner.batch_size == 7 and recipe.config.learner.gamma == 0.5
    assert recipe.config.learner.learning_starts == shipped.config.learner.learning_starts  # the rest as shipped
    prefs = load_recipe(ROOT / "recipes" / "prefs-cartpole.yaml", ["config.learner.batch_size=32"])
    assert prefs.config.learner.batch_size == 32


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("config.learner.bogus=1", "config.learner.bogus: unknown key (known: algo, "),
        ("config.learner.algo=a2c", "config.learner.algo: must be one of 'ppo', 'sac', 'trpo', 'dqn', got 'a2c'"),
        ("config.learner.obs_norm=true", "config.learner.obs_norm was renamed to learner.normalize_obs"),
        ("config.learner.batch_size=0", "config.learner.batch_size: must be at least 1, got 0"),
        ("config.gen_steps_per_round=64", "config.gen_steps_per_round was renamed to config.steps_per_round"),
        ("config.reward_normalization=off", "config.reward_normalization was renamed to config.normalize_reward"),
        ("config.disc_input_norm=running", "config.disc_input_norm was renamed to config.disc_normalize_obs"),
    ],
)
def test_bad_or_renamed_learner_keys_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], override: str, message: str
) -> None:
    path = _recipe(tmp_path, "gail", {"total_timesteps": 64})
    assert main(["train", str(path), "--set", override, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and not (tmp_path / "run").exists()


def test_renamed_preference_and_rl_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _recipe(tmp_path, "preference_comparisons", {"reward_normalization": "off"})
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "config.reward_normalization was renamed to config.normalize_reward" in capsys.readouterr().err


def test_help_names_the_config_whose_learner_field_lists_the_learner_configs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    learners = {PPOConfig, SACConfig, TRPOConfig, DQNConfig}
    for name in ("gail", "airl", "rl", "preference_comparisons"):
        config = ALGORITHMS[name].Config
        assert f"[{config.__module__}.{config.__name__}]" in out
        assert set(typing.get_args(typing.get_type_hints(config)["learner"])) == learners
    # each learner config's fields are what `learner:` accepts
    assert "rollout_steps" in typing.get_type_hints(PPOConfig) and "learning_starts" in typing.get_type_hints(SACConfig)
    assert typing.get_type_hints(ExpertConfig)["learner"] == typing.get_type_hints(PreferenceComparisonsConfig)["learner"]
