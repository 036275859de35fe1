"""DAgger (algos/dagger.py) and its growing store: the store stays a valid store that only grows,
the mixture labels every state with the expert's action, budgets are upper bounds, an interrupted
run resumes, bad input is one line before training, and the quality bars of issue 8."""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from support import DATASETS, make_episodes

import ildata
from algos.base import seed_everything
from algos.bc import BC, BCConfig
from algos.dagger import DAgger, DAggerConfig, Mixture
from algos.online.growing_store import GrowingStore
from algos.policies import Policy, evaluate, load_policy, p_value_not_above
from algos.recipe import build_dataclass, load_recipe
from algos.train import partial_dir, run_recipe
from ildata.cli import main
from ildata.collect import rollout
from ildata.envs import env_spaces
from ildata.episode import DataError, EpisodeBatch, Obs
from ildata.store import xxh3_file

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE_RECIPE = ROOT / "recipes" / "dagger-cartpole.yaml"
PENDULUM_RECIPE = ROOT / "recipes" / "dagger-pendulum.yaml"
CARTPOLE_EXPERT = "expert:cartpole-ppo"  # shipped in datasets/experts/
PENDULUM_EXPERT = "expert:pendulum-sac"
OBS = gym.spaces.Box(-10.0, 10.0, (3,), np.float32)
ACT = gym.spaces.Discrete(3)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    seed_everything(0, threads=1)


def _episodes(lengths: tuple[int, ...], seed: int) -> list:
    return make_episodes(lengths, seed=seed, act_dim=None, seeds=True)


def _batch(lengths: tuple[int, ...], seed: int) -> EpisodeBatch:
    return EpisodeBatch.from_episodes(_episodes(lengths, seed))


# ----------------------------------------------------------------------------- growing store


def test_appending_rounds_writes_one_new_shard_and_keeps_a_valid_store(tmp_path: Path) -> None:
    store = GrowingStore(tmp_path / "rollouts")
    episodes = [_episodes((4, 6, 3), 0), _episodes((7, 2), 1), _episodes((5,), 2)]
    parts = [EpisodeBatch.from_episodes(eps) for eps in episodes]
    digests: dict[str, str] = {}
    for i, batch in enumerate(parts):
        store.append(batch, observation_space=OBS, action_space=ACT, env_id=None)
        shards = sorted((store.root / "data").iterdir())
        assert [p.name for p in shards] == [f"shard-{k:05d}.arrow" for k in range(i + 1)]
        for shard in shards[:-1]:  # earlier rounds are never rewritten
            assert xxh3_file(shard) == digests[shard.name]
        digests[shards[-1].name] = xxh3_file(shards[-1])
        assert ildata.load(store.root).verify() == []
    grown = ildata.load(store.root)
    whole = ildata.save(
        [ep for eps in episodes for ep in eps],
        tmp_path / "whole",
        observation_space=OBS,
        action_space=ACT,
    )
    assert len(grown) == 6 and grown.num_transitions == whole.num_transitions == 27
    a, b = grown.transitions(), whole.transitions()
    for name in ("obs", "acts", "next_obs", "rews", "episode_index", "terminated"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(grown.episode_column("seed"), whole.episode_column("seed"))
    mine, theirs = json.loads((store.root / "meta/stats.json").read_text()), json.loads((tmp_path / "whole/meta/stats.json").read_text())
    assert mine["episodes"] == theirs["episodes"]
    np.testing.assert_allclose(mine["features"]["obs"]["std"], theirs["features"]["obs"]["std"], rtol=1e-9)
    assert mine["features"]["obs"]["quantiles_exact"] is False
    assert main(["verify", str(store.root)]) == 0 and main(["inspect", str(store.root)]) == 0


def test_store_rolls_back_to_a_snapshot_and_drops_uncommitted_shards(tmp_path: Path) -> None:
    store = GrowingStore(tmp_path / "rollouts")
    store.append(_batch((4, 6), 0), observation_space=OBS, action_space=ACT, env_id=None)
    store.snapshot_meta(tmp_path / "snap")
    store.append(_batch((3,), 1), observation_space=OBS, action_space=ACT, env_id=None)
    (store.root / "data" / "shard-00002.arrow").write_bytes(b"half-written")  # an interrupted append
    store.restore_meta(tmp_path / "snap")
    ds = ildata.load(store.root)
    assert len(ds) == 2 and ds.verify() == [] and sorted(os.listdir(store.root / "data")) == ["shard-00000.arrow"]


# ----------------------------------------------------------------------------- mixture, schedule


class Constant(Policy):
    def __init__(self, value: int) -> None:
        super().__init__(OBS, gym.spaces.Discrete(2))
        self.value = value

    def act(self, obs: Obs) -> np.ndarray:
        return np.full(len(np.asarray(obs)), self.value, dtype=np.int64)


class Sink:
    executed: np.ndarray | None = None


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_mixture_labels_every_state_with_the_expert_and_executes_it_with_probability_beta(beta: float) -> None:
    sink = Sink()
    mixture = Mixture(Constant(1), Constant(0), sink, np.random.default_rng(0))
    mixture.beta = beta
    obs = np.zeros((4000, 3), dtype=np.float32)
    labels = mixture(obs)
    assert (labels == 1).all()
    assert sink.executed is not None
    share = sink.executed.mean()  # executed expert actions are 1, learner actions 0
    assert share == pytest.approx(beta, abs=0.03)


def test_beta_schedules() -> None:
    linear = DAggerConfig(beta_rampdown_rounds=4)
    assert [linear.beta(r) for r in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    exponential = DAggerConfig(beta_schedule="exponential", beta_decay=0.5)
    assert [exponential.beta(r) for r in range(3)] == [1.0, 0.5, 0.25]
    assert DAggerConfig(beta_schedule="constant", beta_value=0.2).beta(7) == 0.2
    with pytest.raises(DataError, match="beta_decay: must be within"):
        DAggerConfig(beta_decay=1.5)


# ----------------------------------------------------------------------------- fit, budget


def tiny(**overrides: object) -> DAggerConfig:
    """A few short rounds on CartPole-v1 (the learner's episodes end early, so rounds finish episodes)."""
    data = {
        "expert": CARTPOLE_EXPERT,
        "rounds": 4,
        "steps_per_round": 200,
        "total_timesteps": 700,
        "n_envs": 2,
        "beta_schedule": "constant",
        "beta_value": 0.3,
        "bc": {"n_gradient_steps": 40, "log_interval": 40},
    }
    data.update(overrides)
    return build_dataclass(DAggerConfig, data, "config")


def test_fit_stays_within_the_budget_and_learns_from_every_labelled_step(tmp_path: Path) -> None:
    spaces = env_spaces("CartPole-v1")
    algo = DAgger(tiny(), observation_space=spaces[0], action_space=spaces[1], seed=1)
    rows: list[tuple[int, dict[str, float]]] = []
    algo.fit(None, env_id="CartPole-v1", log=lambda step, m: rows.append((step, m)))
    # 200 + 200 + 200 + 100 env steps: the last round gets what the budget has left.
    assert [step for step, _ in rows] == [200, 400, 600, 700]
    assert [m["beta"] for _, m in rows] == [0.3] * 4
    assert all(m["env_steps"] == step for step, m in rows)
    assert algo.store_dir is not None
    store = ildata.load(algo.store_dir)
    assert store.verify() == [] and store.env_id == "CartPole-v1"
    assert rows[-1][1]["labelled_steps"] == store.num_transitions == rows[-1][1]["bc_samples"] <= 700
    # Every stored action is the expert's label of its state.
    expert = load_policy(CARTPOLE_EXPERT, env_id="CartPole-v1")
    tr = store.transitions()
    np.testing.assert_array_equal(expert(tr.obs), tr.acts)
    # Rollout returns are the env's true returns of the finished episodes.
    assert all(m["rollout_return_mean"] >= 1 for _, m in rows if "rollout_return_mean" in m)
    algo.save(tmp_path / "run")
    assert ildata.load(tmp_path / "run" / "rollouts").fingerprint == store.fingerprint


def test_warm_start_demonstrations_are_trained_on(tmp_path: Path) -> None:
    spaces = env_spaces("CartPole-v1")
    demos = ildata.load(DATASETS / "cartpole-expert")
    algo = DAgger(tiny(total_timesteps=200, rounds=1), observation_space=spaces[0], action_space=spaces[1], seed=0)
    rows: list[dict[str, float]] = []
    algo.fit(demos, env_id="CartPole-v1", log=lambda step, m: rows.append(m))
    assert rows[-1]["bc_samples"] == demos.num_transitions + rows[-1]["labelled_steps"]


# ----------------------------------------------------------------------------- run folders, resume


def _recipe_file(tmp_path: Path, **config: object) -> Path:
    data = yaml.safe_load(CARTPOLE_RECIPE.read_text())
    data["env"] = "CartPole-v1"
    data["config"] = {
        **data["config"],
        "expert": CARTPOLE_EXPERT,
        "rounds": 4,
        "steps_per_round": 200,
        "total_timesteps": 800,
        "beta_schedule": "constant",
        "beta_value": 0.3,
        "bc": {"n_gradient_steps": 40, "log_interval": 40},
        **config,
    }
    data["eval"] = {"episodes": 2}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_interrupted_run_resumes_from_its_last_finished_round(tmp_path: Path) -> None:
    recipe_path = _recipe_file(tmp_path)
    out = tmp_path / "run"

    def interrupt_in_round_2(line: str) -> None:
        if line.startswith("step 600:"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_recipe(load_recipe(recipe_path), out=out, echo=interrupt_in_round_2)
    work = partial_dir(out)
    assert not out.exists() and work.is_dir()
    # The last finished round (round 2, checkpointed before it was logged) is intact on disk.
    kept = ildata.load(work / "rollouts")
    assert kept.verify() == [] and len(kept.meta.data_files) == json.loads((work / "checkpoint/state.json").read_text())["round"] == 3

    assert main(["train", str(recipe_path), "--resume", str(out), "--quiet"]) == 0
    assert out.is_dir() and not work.exists() and not (out / "checkpoint").exists()
    with (out / "metrics.csv").open() as f:
        header, *lines = [line.strip().split(",") for line in f]
    assert [int(line[0]) for line in lines] == [200, 400, 600, 800]
    store = ildata.load(out / "rollouts")
    assert store.verify() == [] and store.num_transitions == float(lines[-1][header.index("labelled_steps")])
    # The rounds before the interrupt are kept as they were; a round that finished episodes adds a shard.
    assert store.meta.data_files[:3] == kept.meta.data_files and store.num_transitions >= kept.num_transitions
    assert json.loads((out / "eval.json").read_text())["expert_return"] == 500.0
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"


def _one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_bad_input_is_one_line_naming_the_key_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = str(_recipe_file(tmp_path))
    out = tmp_path / "run"
    cases = {
        "config.expert": ["--set", "config.expert=expert:no-such-expert"],
        "config.expert: ": ["--set", "env=Pendulum-v1"],  # the CartPole expert on Pendulum's spaces
        "config.demonstrations": ["--set", f"config.demonstrations={DATASETS / 'pendulum-expert'}"],
    }
    for key, extra in cases.items():
        err = _one_error_line(capsys, ["train", recipe, "--out", str(out), *extra])
        assert key in err, err
        assert not out.exists() and not partial_dir(out).exists()
    # A resume folder from another recipe: the differing key is named.
    work = partial_dir(out)
    work.mkdir()
    (work / "config.yaml").write_text(yaml.safe_dump(load_recipe(recipe, ["config.rounds=9"]).to_dict()))
    err = _one_error_line(capsys, ["train", recipe, "--resume", str(out)])
    assert "--resume: config.rounds is 9 in that run, 4 in the recipe" in err
    err = _one_error_line(capsys, ["train", recipe, "--out", str(out)])
    assert "--resume" in err  # an interrupted run is not silently replaced


# ----------------------------------------------------------------------------- quality bars


def _passes_bar(report: dict, bar: float) -> float:
    """p-value for "normalised score <= bar" over the evaluation episodes (one-sided t-test)."""
    threshold = report["random_return"] + bar * (report["expert_return"] - report["random_return"])
    return p_value_not_above(report["returns"], threshold)


@pytest.mark.slow
def test_cartpole_reaches_95_percent_with_at_most_5000_labels(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_recipe(load_recipe(CARTPOLE_RECIPE), out=out, echo=lambda _: None)
    with (out / "metrics.csv").open() as f:
        header, *lines = [line.strip().split(",") for line in f]
    assert float(lines[-1][header.index("labelled_steps")]) <= 5000
    report = json.loads((out / "eval.json").read_text())
    assert report["expert_return"] == 500.0 and report["n"] == 20
    assert _passes_bar(report, 0.95) < 0.05, report


@pytest.mark.slow
def test_pendulum_reaches_90_percent_with_at_most_20000_labels(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_recipe(load_recipe(PENDULUM_RECIPE), out=out, echo=lambda _: None)
    with (out / "metrics.csv").open() as f:
        header, *lines = [line.strip().split(",") for line in f]
    assert float(lines[-1][header.index("labelled_steps")]) <= 20_000
    report = json.loads((out / "eval.json").read_text())
    assert _passes_bar(report, 0.9) < 0.05, report


@pytest.mark.slow
def test_dagger_beats_bc_on_pendulum_at_2000_labels(tmp_path: Path) -> None:
    """Same BC settings (imitation's defaults, Gaussian head) and the same number of gradient steps;
    BC learns from 2,000 steps of the expert's own rollouts, DAgger labels 2,000 steps it visits."""
    from scipy import stats

    env = "Pendulum-v1"
    spaces = env_spaces(env)
    bc = {"head": "gaussian", "n_gradient_steps": 1000, "log_interval": 1000}
    config = {"expert": PENDULUM_EXPERT, "rounds": 5, "steps_per_round": 400, "total_timesteps": 2000, "n_envs": 2}
    dagger = DAgger(
        build_dataclass(DAggerConfig, {**config, "beta_rampdown_rounds": 2, "bc": bc}, "config"),
        observation_space=spaces[0],
        action_space=spaces[1],
    )
    rows: list[dict[str, float]] = []
    dagger.fit(None, env_id=env, log=lambda step, m: rows.append(m))
    assert rows[-1]["labelled_steps"] == 2000
    demos = ildata.save(rollout(load_policy(PENDULUM_EXPERT, env_id=env), env, 10), tmp_path / "demos", env_id=env)
    assert demos.num_transitions == 2000
    clone = BC(build_dataclass(BCConfig, {**bc, "n_gradient_steps": 5000}, "bc"), observation_space=spaces[0], action_space=spaces[1])
    clone.fit(demos, env_id=env)
    assert dagger.policy is not None and clone.policy is not None
    mine = np.asarray(evaluate(dagger.policy, env, 30, seed=100_000)["returns"])
    theirs = np.asarray(evaluate(clone.policy, env, 30, seed=100_000)["returns"])
    result = stats.permutation_test(
        (mine, theirs), lambda x, y: np.mean(x) - np.mean(y), alternative="greater", n_resamples=9999, random_state=0
    )
    assert result.pvalue < 0.05, (mine.mean(), theirs.mean(), result.pvalue)
