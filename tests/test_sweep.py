"""`ildata sweep`: a small BC sweep on a local Ray (2 CPUs, one node, nothing off the machine), resume, failures, equality
with a run alone, the summary's numbers, a Ray Tune search, and bad input refused before Ray starts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support import REPO

from algos import sweep as sw
from ildata.cli import main

RECIPE = REPO / "recipes" / "bc-cartpole.yaml"
# A few seconds per run: 60 gradient steps, no rollouts during training, one evaluation episode.
TINY = [
    "config.n_gradient_steps=60",
    "config.log_interval=20",
    "config.rollout_interval=0",
    "config.checkpoint_every=20",
    "eval.episodes=1",
]
SETS = [arg for item in TINY for arg in ("--set", item)]


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One local Ray for the module (2 CPUs, no dashboard); the sweeps use it as it is."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    assert sw.start_ray(2, None)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def swept(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """Seeds 0-2 x env CartPole-v1 (trains) / Pendulum-v1 (fails: its spaces are not the data's)."""
    out = tmp_path_factory.mktemp("sweep") / "bc"
    args = ["sweep", str(RECIPE), "--seeds", "0-2", "--grid", "env=CartPole-v1,Pendulum-v1", *SETS, "--out", str(out), "--json"]
    return out, main(args)


def _read(path: Path) -> str:
    return path.read_text()


def test_sweep_runs_every_combination_and_reports_failures(swept: tuple[Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    out, code = swept
    assert code == 1  # two configurations, one of which fails on every seed
    for seed in range(3):
        run = out / "env=CartPole-v1" / f"seed-{seed}"
        assert sw.is_finished(run) and (run / "eval.json").is_file()
        assert not (out / "env=Pendulum-v1" / f"seed-{seed}").exists()
    summary = json.loads((out / "summary.json").read_text())
    failed = summary["failed_runs"]
    assert sorted(f["seed"] for f in failed) == [0, 1, 2]
    assert all(f["config"] == "env=Pendulum-v1" and "\n" not in f["error"] and "Pendulum-v1" in f["error"] for f in failed)
    for name in ("summary.md", "scores.png", "curves.png", "sweep.json"):
        assert (out / name).is_file()
    assert json.loads((out / "sweep.json").read_text())["seeds"] == [0, 1, 2]


def test_summary_matches_numpy(swept: tuple[Path, int]) -> None:
    out, _ = swept
    summary = json.loads((out / "summary.json").read_text())
    row = next(c for c in summary["configs"] if c["config"] == "env=CartPole-v1")
    scores = np.array([json.loads((out / "env=CartPole-v1" / f"seed-{s}" / "eval.json").read_text())["normalized_score"] for s in range(3)])
    walls = [json.loads((out / "env=CartPole-v1" / f"seed-{s}" / "eval.json").read_text())["train_seconds"] for s in range(3)]
    assert row["seeds"] == [0, 1, 2] and row["scores"] == pytest.approx(list(scores))
    assert row["score_mean"] == pytest.approx(scores.mean())
    assert row["score_iqm"] == pytest.approx(np.sort(scores).mean())  # 3 seeds: int(0.75) = 0 cut per side
    assert row["wall_s"] == pytest.approx(np.mean(walls))
    assert row["env_steps"] is None  # BC takes no env steps
    low, high = row["score_ci95"]
    assert scores.min() <= low <= row["score_iqm"] <= high <= scores.max()
    empty = next(c for c in summary["configs"] if c["config"] == "env=Pendulum-v1")
    assert empty["seeds"] == [] and empty["unfinished_seeds"] == [0, 1, 2] and empty["score_mean"] is None


def test_iqm_and_interval_against_numpy() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0.6, 0.2, size=10)
    ordered = np.sort(values)
    assert float(sw.iqm(values)) == pytest.approx(ordered[2:8].mean())  # 10 seeds: 2 cut from each end
    # The percentile bootstrap of the IQM, computed directly: resample seeds, IQM each, percentiles.
    samples = np.sort(rng.choice(values, size=(50_000, 10), replace=True), axis=1)[:, 2:8].mean(axis=1)
    expected = np.percentile(samples, [2.5, 97.5])
    interval = sw.iqm_interval(values)
    assert interval is not None
    assert interval == pytest.approx(tuple(expected), abs=0.01)
    assert sw.iqm_interval(values[:1]) is None
    assert sw.iqm_interval(np.full(4, 0.5)) == (0.5, 0.5)


def test_sweep_run_equals_the_run_alone(swept: tuple[Path, int], tmp_path: Path) -> None:
    from algos.recipe import load_recipe
    from algos.train import run_recipe

    out, _ = swept
    recipe = load_recipe(RECIPE, [*TINY, "env=CartPole-v1", "seed=1"])
    alone = run_recipe(recipe, out=tmp_path / "alone", echo=lambda _: None, progress="lines")
    swept_run = out / "env=CartPole-v1" / "seed-1"
    assert _read(alone / "metrics.csv") == _read(swept_run / "metrics.csv")
    assert json.loads(_read(alone / "eval.json"))["returns"] == json.loads(_read(swept_run / "eval.json"))["returns"]


def test_rerun_skips_finished_and_restarts_unfinished(swept: tuple[Path, int], capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = swept
    config = out / "env=CartPole-v1"
    (config / "seed-0" / "kept.txt").write_text("a finished run is not touched")
    before = _read(config / "seed-2" / "metrics.csv")
    shutil.rmtree(config / "seed-2")  # killed mid-run: no finished folder, a partial one without a checkpoint
    (config / "seed-2.partial").mkdir()
    (config / "seed-2.partial" / "metrics.csv").write_text("step\n")
    capsys.readouterr()
    code = main(["sweep", str(RECIPE), "--seeds", "0-2", "--grid", "env=CartPole-v1,Pendulum-v1", *SETS, "--out", str(out)])
    output = capsys.readouterr()
    assert code == 1  # the Pendulum runs fail again
    assert "2 of 6 runs already finished: skipped" in output.out
    assert "env=CartPole-v1/seed-2: ran" in output.out
    assert "seed-0: ran" not in output.out and "seed-1: ran" not in output.out
    assert (config / "seed-0" / "kept.txt").is_file()
    assert not (config / "seed-2.partial").exists()
    assert _read(config / "seed-2" / "metrics.csv") == before
    assert output.err.count("failed:") == 3 and all(len(line) > 0 for line in output.err.splitlines())


def test_interrupted_resumable_run_resumes_from_its_checkpoint(ray_local: None, tmp_path: Path) -> None:
    from algos.recipe import load_recipe
    from algos.train import RunInterrupted, partial_dir, run_recipe

    sweep = sw.plan_sweep(RECIPE, seeds=[0], grid={}, overrides=TINY, out=tmp_path / "sweep")
    sw.claim_folder(sweep)
    spec = sweep.runs[0]
    recipe = load_recipe(RECIPE, list(spec.overrides))
    lines: list[str] = []

    def interrupt_at_step_40(line: str) -> None:  # Ctrl-C after the checkpoint at step 20
        lines.append(line)
        if line.startswith("step 40"):
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        run_recipe(recipe, out=spec.run_dir, echo=interrupt_at_step_40, progress="lines")
    assert (partial_dir(spec.run_dir) / "checkpoint").is_dir()
    results, _ = sw.run_sweep(sweep, echo=lambda _: None)
    assert [r.status for r in results] == ["resumed"]
    alone = run_recipe(recipe, out=tmp_path / "alone", echo=lambda _: None, progress="lines")
    assert _read(spec.run_dir / "metrics.csv") == _read(alone / "metrics.csv")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grid", "config.no_such_key=1,2"], "--grid config.no_such_key=1: config.no_such_key: unknown key"),
        (["--grid", "config.batch_size=32,abc"], "config.batch_size: expected int"),
        (["--grid", "config.batch_size"], "--grid config.batch_size: expected KEY=VALUE1,VALUE2"),
        (["--grid", "seed=1,2"], "seeds are given with --seeds"),
        (["--seeds", "3-1"], "--seeds 3-1: the range 3-1 is empty"),
        (["--seeds", "a"], "--seeds a: expected seeds like 0-9"),
        (["--seeds", "0,0"], "a seed is repeated"),
        (["--set", "config.nope=1"], "config.nope: unknown key"),
        (["--cpus", "0"], "--cpus: must be at least 1"),
        (["--search", "config.learning_rate=loguniform:0:1"], "--search config.learning_rate=loguniform:0:1: loguniform needs 0 < LOW"),
        (["--search", "config.learning_rate=normal:0:1"], "unknown distribution 'normal' (one of uniform, loguniform, randint, choice)"),
        (["--search", "config.learning_rate=uniform:1"], "expected uniform:LOW:HIGH"),
        (["--search", "config.batch_size=randint:64:32"], "randint needs LOW < HIGH, got 64 and 32"),
        (["--search", "config.batch_size=randint:1.5:3"], "randint bounds must be integers"),
        (["--search", "config.batch_size=choice:32,32"], "a choice value is repeated"),
        (["--search", "config.batch_size"], "--search config.batch_size: expected KEY=DISTRIBUTION:ARGS"),
        (["--search", "config.batch_size=choice:32,abc"], "--search config.batch_size=choice:32,abc: config.batch_size: expected int"),
        (["--search", "config.nope=uniform:0:1"], "config.nope: unknown key"),
        (["--search", "config.batch_size=choice:32", "--grid", "env=CartPole-v1"], "--search and --grid together"),
        (["--search", "config.batch_size=choice:32", "--samples", "0"], "--samples: must be at least 1"),
        (["--samples", "3"], "--samples: only applies to a search (--search)"),
    ],
)
def test_bad_input_is_one_line_before_anything_runs(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sweep"
    code = main(["sweep", str(RECIPE), *extra, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_rerun_with_other_arguments_is_refused_but_more_seeds_are_added(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep"
    sweep = sw.plan_sweep(RECIPE, seeds=[0, 1], grid={}, overrides=TINY, out=out)
    sw.claim_folder(sweep)
    code = main(["sweep", str(RECIPE), "--seeds", "0-1", *SETS, "--set", "config.batch_size=16", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "this folder holds another sweep (set is " in err
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]
    # Seeds are runs of their own: asking for others adds them, and sweep.json lists them all.
    sw.claim_folder(sw.plan_sweep(RECIPE, seeds=[2, 3], grid={}, overrides=TINY, out=out))
    assert json.loads((out / "sweep.json").read_text())["seeds"] == [0, 1, 2, 3]
    missing = main(["sweep", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "x")])
    assert missing == 2 and "no such recipe file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- search
SPACE = {"config.learning_rate": "loguniform:1e-4:1e-2", "config.batch_size": "choice:32,64"}


@pytest.fixture(scope="module")
def searched(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """Ray Tune samples 3 configurations (learning rate, batch size), each run for seed 0."""
    out = tmp_path_factory.mktemp("search") / "bc"
    space = [arg for key, spec in SPACE.items() for arg in ("--search", f"{key}={spec}")]
    return out, main(["sweep", str(RECIPE), "--seeds", "0", *space, "--samples", "3", *SETS, "--out", str(out), "--json"])


def test_search_samples_inside_the_ranges_and_marks_the_best(searched: tuple[Path, int]) -> None:
    out, code = searched
    assert code == 0
    configurations = json.loads((out / "sweep.json").read_text())["configurations"]
    assert len(configurations) == 3
    for c in configurations:
        assert list(c) == list(SPACE)
        assert 1e-4 <= float(c["config.learning_rate"]) <= 1e-2 and c["config.batch_size"] in ("32", "64")
    assert len({tuple(c.values()) for c in configurations}) == 3
    summary = json.loads((out / "summary.json").read_text())
    scores = {}
    for c in summary["configs"]:
        assert c["assignment"] in configurations and c["seeds"] == [0]
        report = json.loads((out / c["config"] / "seed-0" / "eval.json").read_text())
        scores[c["config"]] = report["normalized_score"]
        assert c["objective"] == pytest.approx(report["normalized_score"])
    best = max(scores, key=lambda label: scores[label])
    assert summary["search"]["best"] == best and summary["search"]["best_objective"] == pytest.approx(scores[best])
    assert [c["config"] for c in summary["configs"] if c["best"]] == [best]
    assert f"| {best} (best) |" in (out / "summary.md").read_text()


def test_search_runs_use_the_sampled_values(searched: tuple[Path, int]) -> None:
    import yaml

    out, _ = searched
    for c in json.loads((out / "summary.json").read_text())["configs"]:
        config = yaml.safe_load((out / c["config"] / "seed-0" / "config.yaml").read_text())["config"]
        assert config["learning_rate"] == pytest.approx(float(c["assignment"]["config.learning_rate"]))
        assert config["batch_size"] == int(c["assignment"]["config.batch_size"])


def test_search_is_reproducible_and_a_rerun_resumes_the_recorded_samples(
    searched: tuple[Path, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = searched
    recorded = [tuple(c.items()) for c in json.loads((out / "sweep.json").read_text())["configurations"]]
    search = sw.Search(SPACE, samples=3, seed=0)
    again = sw.plan_sweep(RECIPE, seeds=[0], grid={}, overrides=TINY, out=tmp_path / "fresh", search=search)
    assert again.configurations == recorded  # sampled anew, same seed: the same configurations
    other = sw.plan_sweep(RECIPE, seeds=[0], grid={}, overrides=TINY, out=tmp_path / "other", search=sw.Search(SPACE, 3, seed=1))
    assert other.configurations != recorded

    def no_sampling(_: sw.Search) -> list[sw.Assignment]:
        raise AssertionError("a rerun must take the configurations sweep.json recorded")

    monkeypatch.setattr(sw.plan, "sample_configurations", no_sampling)
    space = [arg for key, spec in SPACE.items() for arg in ("--search", f"{key}={spec}")]
    capsys.readouterr()
    code = main(["sweep", str(RECIPE), "--seeds", "0", *space, "--samples", "3", *SETS, "--out", str(out)])
    output = capsys.readouterr().out
    assert code == 0 and "3 of 3 runs already finished: skipped" in output and "(best)" in output


def test_search_metric_from_metrics_csv(searched: tuple[Path, int]) -> None:
    """--metric loss --mode min: each run's last logged loss, the lowest mean wins."""
    out, _ = searched
    sweep = sw.plan_sweep(RECIPE, seeds=[0], grid={}, overrides=TINY, out=out, search=sw.Search(SPACE, 3, metric="loss", mode="min"))
    summary = sw.summarize(sweep)
    losses = {}
    for c in summary["configs"]:
        column = sw.read_metrics(out / c["config"] / "seed-0")["loss"]
        losses[c["config"]] = column[np.isfinite(column)][-1]
        assert c["objective"] == pytest.approx(losses[c["config"]])
    assert summary["search"]["best"] == min(losses, key=lambda label: losses[label])
    assert sw.summary_columns(summary)[-1] == "loss mean"
