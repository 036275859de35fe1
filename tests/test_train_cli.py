"""`ildata train` / `ildata eval` end to end: the README's main command, run folders, reproducibility, bad recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import EXPERT_ZIP

import ildata
from algos.policies import load_policy, p_value_not_above
from algos.recipe import load_recipe
from algos.train import run_recipe
from ildata.cli import main

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "bc-cartpole.yaml"
RUN_FILES = {"config.yaml", "dataset.json", "versions.json", "metrics.csv", "curve.png", "algorithm.json", "policy", "eval.json"}


@pytest.mark.slow
def test_main_command_trains_bc_cartpole_to_95_percent(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["train", str(RECIPE), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == RUN_FILES
    report = json.loads((out / "eval.json").read_text())
    expert = report["expert_return"]
    assert expert == 500.0 and report["n"] == 20
    assert p_value_not_above(report["returns"], 0.95 * expert) < 0.05, report
    assert report["normalized_score"] == pytest.approx((report["mean"] - report["random_return"]) / (expert - report["random_return"]))
    # dataset.json pins the exact data; config.yaml is the resolved recipe and reruns as one.
    ds = ildata.load(ROOT / "datasets" / "cartpole-expert")
    assert json.loads((out / "dataset.json").read_text())["fingerprint"] == ds.fingerprint
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["config"]["hidden_sizes"] == [32, 32] and resolved["config"]["ent_weight"] == 0.001
    assert load_recipe(out / "config.yaml").config == load_recipe(RECIPE).config
    with (out / "metrics.csv").open() as f:
        header = f.readline().strip().split(",")
    assert {"step", "loss", "neglogp", "entropy", "prob_true_act", "rollout_return_mean"} <= set(header)
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    # `ildata eval` on the run folder prints the same evaluation.
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "20", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["returns"] == report["returns"] and again["normalized_score"] == report["normalized_score"]
    # The saved policy is a plain callable obs -> action.
    policy = load_policy(out)
    obs = np.asarray(ds.transitions().obs)[:100]
    assert (policy(obs) == np.asarray(ds.transitions().acts)[:100]).mean() > 0.8
    assert policy(obs[0]) in (0, 1)


@pytest.mark.slow
def test_same_recipe_and_seed_give_identical_metrics(tmp_path: Path) -> None:
    short = [
        "--set",
        "config.n_gradient_steps=300",
        "--set",
        "config.log_interval=50",
        "--set",
        "config.rollout_interval=150",
        "--set",
        "config.rollout_episodes=2",
        "--set",
        "eval.episodes=2",
        "--quiet",
    ]
    csvs = []
    for name in ("a", "b"):
        assert main(["train", str(RECIPE), "--out", str(tmp_path / name), *short]) == 0
        csvs.append((tmp_path / name / "metrics.csv").read_text())
    assert csvs[0] == csvs[1] and len(csvs[0].splitlines()) == 7
    assert main(["train", str(RECIPE), "--out", str(tmp_path / "c"), *short, "--set", "seed=1"]) == 0
    assert (tmp_path / "c" / "metrics.csv").read_text() != csvs[0]


def write_recipe(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(RECIPE.read_text())
    data["dataset"] = str(ROOT / "datasets" / "cartpole-expert")
    for key, value in changes.items():
        node = data
        *parents, leaf = key.split("__")
        for part in parents:
            node = node[part]
        if value is None:
            node.pop(leaf)
        else:
            node[leaf] = value
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"config__n_step": 10}, "config.n_step: unknown key"),
        ({"epochs": 3}, "epochs: unknown key"),
        ({"config__batch_size": "big"}, "config.batch_size: expected int"),
        ({"config__learning_rate": True}, "config.learning_rate: expected float"),
        ({"config__hidden_sizes": [32, "x"]}, "config.hidden_sizes[1]: expected int"),
        ({"config__head": "gaussian"}, "config.head"),
        ({"config__backend": "jax"}, "config.backend: must be one of"),
        ({"config__n_gradient_steps": 0}, "config.n_gradient_steps: must be at least 1"),
        ({"config__n_steps": 10}, "config.n_steps was renamed to config.n_gradient_steps"),
        ({"config__standardise": True}, "config.standardise was renamed to config.normalize_obs"),
        ({"eval__episodes": 2.5}, "eval.episodes: expected int"),
        ({"algo": "no-such-algo"}, "algo: unknown algorithm 'no-such-algo'"),
        ({"algo": None}, "algo: required key is missing"),
        ({"dataset": "/nonexistent/data"}, "dataset: /nonexistent/data does not exist"),
        ({"env": "Pendulum-v1"}, "env: Pendulum-v1 has observation space"),
        ({"env": "NoSuchEnv-v9"}, "env:"),
    ],
)
def test_bad_recipe_is_one_line_naming_the_key_before_training(tmp_path: Path, capsys, changes: dict, needle: str) -> None:
    recipe = write_recipe(tmp_path, **changes)
    out = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ildata: error: {recipe}: ") and needle in err[0], err
    assert not out.exists() and not (tmp_path / "run.tmp").exists()


def test_set_overrides_are_typed_and_checked(tmp_path: Path, capsys) -> None:
    recipe = load_recipe(RECIPE, ["config.hidden_sizes=[64, 64]", "config.learning_rate=3e-4", "eval.episodes=5"])
    assert recipe.config.hidden_sizes == [64, 64] and recipe.config.learning_rate == 3e-4 and recipe.eval.episodes == 5
    assert main(["train", str(RECIPE), "--set", "config.hiden=[8]", "--out", str(tmp_path / "r")]) == 2
    assert "config.hiden: unknown key" in capsys.readouterr().err


def test_invalid_yaml_and_missing_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: bc\nconfig: [unclosed\n")
    assert main(["train", str(bad)]) == 2
    assert main(["train", str(tmp_path / "none.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "invalid YAML" in err[0] and "no such recipe file" in err[1]


def test_eval_policy_zip_and_random_with_dataset_references(tmp_path: Path, capsys) -> None:
    dataset = ROOT / "datasets" / "cartpole-expert"
    expert = EXPERT_ZIP
    assert main(["eval", "random", "--env", "CartPole-v1", "--episodes", "10", "--dataset", str(dataset), "--json"]) == 0
    random_report = json.loads(capsys.readouterr().out)
    assert abs(random_report["normalized_score"]) < 0.1
    assert main(["eval", str(expert), "--env", "seals/CartPole-v0", "--episodes", "3", "--dataset", str(dataset)]) == 0
    assert "normalised score 1.000" in capsys.readouterr().out
    assert main(["eval", str(tmp_path), "--env", "CartPole-v1"]) == 2
    assert "policy.json" in capsys.readouterr().err


def test_interrupted_run_leaves_no_run_folder(tmp_path: Path, monkeypatch) -> None:
    from algos import bc

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(bc.BC, "_save_state", boom)
    recipe = load_recipe(RECIPE, ["config.n_gradient_steps=10", "eval.episodes=1"])
    with pytest.raises(RuntimeError, match="interrupted"):
        run_recipe(recipe, out=tmp_path / "run", echo=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def test_renamed_nested_key_names_its_new_place(tmp_path: Path, capsys) -> None:
    density = ROOT / "recipes" / "density-cartpole.yaml"
    assert main(["train", str(density), "--set", "config.ppo_n_steps=64", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("config.ppo_n_steps was renamed to config.learner.rollout_steps"), err
    assert main(["train", str(density), "--set", "config.learner.n_steps=64", "--out", str(tmp_path / "r")]) == 2
    assert "config.learner.n_steps was renamed to config.learner.rollout_steps" in capsys.readouterr().err


def test_existing_run_folder_is_refused_with_the_shared_message(tmp_path: Path, capsys) -> None:
    from ildata.fsutil import ALREADY_EXISTS

    out = tmp_path / "run"
    out.mkdir()
    (out / "keep").write_text("mine")
    assert main(["train", str(RECIPE), "--out", str(out), "--set", "config.n_gradient_steps=10", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ildata: error: {out}: {ALREADY_EXISTS}"]
    assert [p.name for p in out.iterdir()] == ["keep"] and [p.name for p in tmp_path.iterdir()] == ["run"]


def test_resume_applies_to_checkpointing_algorithms_only(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    mce = ROOT / "recipes" / "mce-irl-gridworld.yaml"
    assert main(["train", str(mce), "--resume", str(out)]) == 2
    assert "--resume: algo mce_irl does not save checkpoints to resume from" in capsys.readouterr().err
    assert main(["train", str(RECIPE), "--resume", str(out)]) == 2
    assert "--resume: no interrupted run" in capsys.readouterr().err
    dagger = ROOT / "recipes" / "dagger-cartpole.yaml"
    assert main(["train", str(dagger), "--resume", str(out), "--out", str(out)]) == 2
    assert "--out and --overwrite do not apply" in capsys.readouterr().err
    assert main(["train", str(dagger), "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume: no interrupted run" in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_config_paths_resolve_against_the_recipe_file(tmp_path: Path) -> None:
    """`config.demonstrations` is a path like `dataset:`; `config.expert` only when it exists there."""
    (tmp_path / "sub").mkdir()
    recipe = tmp_path / "sub" / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"algo": "dagger", "env": "CartPole-v1", "config": {"demonstrations": "../demos", "expert": "../expert.zip"}})
    )
    parsed = load_recipe(recipe).config
    assert parsed.demonstrations == str(tmp_path / "demos") and parsed.expert == "../expert.zip"
    (tmp_path / "expert.zip").write_bytes(b"")
    assert load_recipe(recipe).config.expert == str(tmp_path / "expert.zip")
    assert load_recipe(recipe, ["config.expert=expert:cartpole-ppo"]).config.expert == "expert:cartpole-ppo"


def test_train_help_lists_every_algorithm_and_its_config(capsys) -> None:
    from algos.base import ALGORITHMS

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name, cls in ALGORITHMS.items():
        assert f"  {name} " in out and f"[{cls.__module__}.{cls.Config.__name__}]" in out
    assert "examples:" in out and "--resume" in out


SHORT = ["config.n_gradient_steps=40", "config.log_interval=5", "config.rollout_interval=0", "eval.episodes=2"]


def test_run_folder_is_printed_first_and_metrics_grow_as_training_goes(tmp_path: Path) -> None:
    lines: list[str] = []
    seen: list[list[str]] = []

    def echo(line: str) -> None:
        lines.append(line)
        if line.startswith("step "):  # the in-progress metrics.csv already has this row
            work = Path(lines[0].split("(training in ")[1].split(":")[0])
            seen.append((work / "metrics.csv").read_text().splitlines())

    out = tmp_path / "run"
    run_recipe(load_recipe(RECIPE, SHORT), out=out, echo=echo, progress="lines")
    assert lines[0].startswith(f"run folder: {out} (training in {out}.partial")
    steps = [int(line.split(":")[0].split()[1]) for line in lines if line.startswith("step ")]
    assert steps == [5, 10, 15, 20, 25, 30, 35, 40]  # 8 rows, all within the ten lines a run prints
    for step, rows in zip(steps, seen):
        assert rows[0].startswith("step,epoch,loss") and int(rows[-1].split(",")[0]) == step
    final = (out / "metrics.csv").read_text().splitlines()
    assert final == seen[-1] and len(final) == 9
    assert lines[-1] == f"run folder: {out}"


def test_console_prints_about_ten_lines_not_one_per_row(tmp_path: Path) -> None:
    lines: list[str] = []
    out = tmp_path / "run"
    run_recipe(load_recipe(RECIPE, ["config.n_gradient_steps=200", "config.log_interval=1", "eval.episodes=1"]), out=out, echo=lines.append)
    steps = [line for line in lines if line.startswith("step ")]
    assert 10 <= len(steps) <= 11 and steps[-1].startswith("step 200: loss ") and steps[-1].endswith("[100%]"), steps
    assert len((out / "metrics.csv").read_text().splitlines()) == 201


def test_seed_option_overrides_the_recipe_seed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    sets = [x for item in SHORT for x in ("--set", item)]
    assert main(["train", str(RECIPE), *sets, "--seed", "7", "--out", str(out), "--quiet"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 7
    assert json.loads((out / "algorithm.json").read_text())["seed"] == 7


def test_interrupted_bc_resumes_from_its_last_checkpoint_with_identical_results(tmp_path: Path, capsys, monkeypatch) -> None:
    import torch

    from algos.train import Console

    sets = [x for item in [*SHORT, "config.checkpoint_every=10"] for x in ("--set", item)]
    whole = tmp_path / "whole"
    assert main(["train", str(RECIPE), *sets, "--out", str(whole), "--quiet"]) == 0

    row = Console.row

    def interrupt_at_25(self: Console, step: int, metrics: dict[str, float]) -> None:
        if step == 25:
            raise KeyboardInterrupt
        row(self, step, metrics)

    out = tmp_path / "run"
    capsys.readouterr()
    with monkeypatch.context() as patch:
        patch.setattr(Console, "row", interrupt_at_25)
        assert main(["train", str(RECIPE), *sets, "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"the last checkpoint is kept in {out}.partial; continue with: ildata train {RECIPE}" in err
    assert f"--set config.checkpoint_every=10 --resume {out}" in err
    assert (tmp_path / "run.partial" / "checkpoint").is_dir() and not out.exists()
    # A different recipe is refused; the same one continues from step 20 and ends as if never stopped.
    assert main(["train", str(RECIPE), *sets, "--seed", "1", "--resume", str(out)]) == 2
    assert "--resume: seed is 0 in that run, 1 in the recipe" in capsys.readouterr().err
    assert main(["train", str(RECIPE), *sets, "--resume", str(out), "--quiet"]) == 0
    assert not (tmp_path / "run.partial").exists() and not (out / "checkpoint").exists()
    assert (out / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    a = torch.load(out / "policy" / "weights.pt", weights_only=True)
    b = torch.load(whole / "policy" / "weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_python_api_trains_without_a_recipe_file(tmp_path: Path) -> None:
    from algos import train
    from algos.bc import BCConfig
    from algos.mce_irl import MCEIRLConfig

    cfg = BCConfig(n_gradient_steps=30, log_interval=10, validation_fraction=0.25)
    run_dir = train.run(
        algo="bc",
        dataset=ROOT / "datasets" / "cartpole-expert",
        config=cfg,
        env="CartPole-v1",
        out=tmp_path / "r",
        eval_episodes=2,
        echo=lambda _: None,
    )
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val_loss" in header and "val_prob_true_act" in header
    assert load_recipe(run_dir / "config.yaml").config == cfg
    with pytest.raises(ildata.DataError, match="config: expected BCConfig for algo bc, got MCEIRLConfig"):
        train.run(algo="bc", dataset=ROOT / "datasets" / "cartpole-expert", config=MCEIRLConfig(), out=tmp_path / "x")
    with pytest.raises(ildata.DataError, match="dataset: required for algo bc"):
        train.run(algo="bc", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_curve_skips_single_dot_panels_and_marks_references(tmp_path: Path, monkeypatch) -> None:
    import matplotlib.axes

    from algos.train import plot_curves

    titles: list[str] = []
    lines: list[float] = []
    scales: list[str] = []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title", lambda self, t, **kw: titles.append(t))
    monkeypatch.setattr(matplotlib.axes.Axes, "axhline", lambda self, y, **kw: lines.append(y))
    monkeypatch.setattr(matplotlib.axes.Axes, "set_yscale", lambda self, s, **kw: scales.append(s))
    rows = [(1, {"grad_norm": 10.0, "rollout_return_mean": 20.0}), (2, {"grad_norm": 0.001, "rollout_return_mean": 300.0, "final": 1.0})]
    plot_curves(rows, tmp_path / "curve.png", "t", {"expert_return": 500.0, "random_return": 22.0})
    assert titles == ["grad_norm", "rollout_return_mean"]  # `final` was logged once: no panel
    assert lines == [500.0, 22.0] and scales == ["log"]
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_runs_filter_gymnasium_precision_warnings(recwarn) -> None:
    import gymnasium as gym

    from algos.train import quiet_third_party

    with quiet_third_party():
        gym.spaces.Box(np.zeros(2), np.ones(2), dtype=np.float32)  # float64 bounds on a float32 Box
    assert not [w for w in recwarn if "precision lowered" in str(w.message)]
    gym.spaces.Box(np.zeros(2), np.ones(2), dtype=np.float32)
    assert [w for w in recwarn if "precision lowered" in str(w.message)]  # only inside a run


def test_a_run_that_did_not_converge_says_so(tmp_path: Path, monkeypatch) -> None:
    from algos import bc

    fit = bc.BC.fit

    def fit_without_converging(self, *args, **kwargs):
        return {**fit(self, *args, **kwargs), "converged": 0.0}

    monkeypatch.setattr(bc.BC, "fit", fit_without_converging)
    lines: list[str] = []
    out = tmp_path / "run"
    run_recipe(load_recipe(RECIPE, SHORT), out=out, echo=lines.append)
    assert "bc stopped at its iteration limit without converging (its tolerances were not reached)" in lines
    header, *_, last = (out / "metrics.csv").read_text().splitlines()
    assert header.endswith(",converged") and last.endswith(",0.0")
    assert json.loads((out / "eval.json").read_text())["converged"] is False


def test_tensorboard_setting_logs_every_metric_as_it_is_in_metrics_csv(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    short = ["config.n_gradient_steps=200", "config.log_interval=50", "config.rollout_interval=100", "config.rollout_episodes=1"]
    sets = [a for s in [*short, "eval.episodes=1"] for a in ("--set", s)]
    assert main(["train", str(RECIPE), "--out", str(out), *sets, "--tensorboard", "--quiet"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["tensorboard"] is True
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    with (out / "metrics.csv").open() as f:
        header, *rows = [line.strip().split(",") for line in f]
    for column, name in enumerate(header[1:], start=1):
        logged = [(int(r[0]), float(r[column])) for r in rows if r[column]]
        scalars = [(e.step, e.value) for e in events.Scalars(name)]
        assert [s for s, _ in scalars] == [s for s, _ in logged], name
        assert np.allclose([v for _, v in scalars], [v for _, v in logged], rtol=1e-6), name
    # Without the setting there is no tensorboard folder.
    assert main(["train", str(RECIPE), "--out", str(tmp_path / "plain"), *sets, "--quiet"]) == 0
    assert not (tmp_path / "plain" / "tensorboard").exists()
