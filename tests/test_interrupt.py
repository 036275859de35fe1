"""Ctrl-C ends `ildata` with exactly one line on stderr and exit 130, whenever it comes: while the
program imports, while a command loads, during training, and a second Ctrl-C while the first is
handled. An interrupted training run's line says how to resume it, or that nothing can be.

Every case is a real `ildata` process sent SIGINT. Start-up cases run the console script's own
two lines (`from ildata.cli import main; sys.exit(main())`) with `ready` printed between them, so
the signal is timed from a known point: the handler is installed by the first line of
`ildata.cli`; before that the interpreter is starting (site-packages, .pth files) and importing
the package, milliseconds in which no program code can run, whatever the program.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "recipes/bc-cartpole.yaml"
DATASET = "datasets/cartpole-expert"
# What the `ildata` console script does, saying when its import is done (and maybe pausing there).
CONSOLE_SCRIPT = (
    "import sys, time; sys.argv[0] = 'ildata'; from ildata.cli import main; print('ready', flush=True); {pause}sys.exit(main())"
)


def _interrupted(command: list[str], ready: Callable[[subprocess.Popen[str]], None], presses: int = 1) -> tuple[int, list[str]]:
    """Start `command`, wait for `ready(process)`, send `presses` SIGINTs 10 ms apart; (rc, stderr lines)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready(process)
        for press in range(presses):
            if press:
                time.sleep(0.01)
            process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, [line for line in err.splitlines() if line.strip()]


def _after_start(delay: float) -> Callable[[subprocess.Popen[str]], None]:
    def ready(process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        time.sleep(delay)

    return ready


def _when_exists(path: Path) -> Callable[[subprocess.Popen[str]], None]:
    def ready(process: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 60
        while not path.exists():
            assert process.poll() is None, "the run ended before it was interrupted"
            assert time.monotonic() < deadline, f"{path} never appeared"
            time.sleep(0.02)

    return ready


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.4])
def test_interrupt_while_starting_is_one_line(tmp_path: Path, delay: float) -> None:
    command = [sys.executable, "-c", CONSOLE_SCRIPT.format(pause=""), "train", RECIPE, "--out", str(tmp_path / "run")]
    rc, err = _interrupted(command, _after_start(delay))
    assert rc == 130 and len(err) == 1, err
    assert err[0] in ("ildata: interrupted", "ildata: interrupted: nothing to resume (training had not started)"), err
    assert list(tmp_path.iterdir()) == []


def test_interrupt_between_import_and_main_is_one_line() -> None:
    """Outside `main` (the CLI imported, the command not started) there is nothing to clean up."""
    command = [sys.executable, "-c", CONSOLE_SCRIPT.format(pause="time.sleep(30); "), "inspect", DATASET]
    rc, err = _interrupted(command, _after_start(0.05), presses=2)
    assert rc == 130 and err == ["ildata: interrupted"], err


def test_two_quick_interrupts_while_starting_are_one_line(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "ildata.cli", "train", RECIPE, "--out", str(tmp_path / "run")]
    rc, err = _interrupted(command, lambda _: time.sleep(0.6), presses=2)
    assert rc == 130 and len(err) == 1 and err[0].startswith("ildata: interrupted"), err


def test_interrupt_before_the_first_checkpoint_says_nothing_can_be_resumed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    sets = ["--set", "config.checkpoint_every=100000", "--set", "config.n_gradient_steps=200000"]
    command = [sys.executable, "-m", "ildata.cli", "train", RECIPE, *sets, "--out", str(run), "--progress", "lines"]
    rc, err = _interrupted(command, _when_exists(tmp_path / "run.partial" / "metrics.csv"), presses=2)
    assert rc == 130 and err == ["ildata: interrupted: nothing to resume (stopped before the first checkpoint)"], err
    assert list(tmp_path.iterdir()) == []  # the partial folder held nothing to resume from: removed


def test_interrupt_after_a_checkpoint_says_how_to_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    sets = ["--set", "config.checkpoint_every=10", "--set", "config.n_gradient_steps=200000"]
    command = [sys.executable, "-m", "ildata.cli", "train", RECIPE, *sets, "--out", str(run), "--progress", "lines"]
    rc, err = _interrupted(command, _when_exists(tmp_path / "run.partial" / "checkpoint"), presses=2)
    assert rc == 130 and len(err) == 1, err
    assert err[0] == (
        f"ildata: interrupted: the last checkpoint is kept in {run}.partial; "
        f"continue with: ildata train {RECIPE} {' '.join(sets)} --resume {run}"
    )
    assert (tmp_path / "run.partial" / "checkpoint").is_dir() and not run.exists()


@pytest.mark.parametrize("delay", [0.1, 0.3])
def test_interrupted_inspect_is_one_line(tmp_path: Path, delay: float) -> None:
    # With --plots, inspect runs for seconds (matplotlib), so the signal always finds it working.
    command = [sys.executable, "-c", CONSOLE_SCRIPT.format(pause=""), "inspect", DATASET, "--plots", str(tmp_path / "plots")]
    rc, err = _interrupted(command, _after_start(delay))
    assert rc == 130 and err == ["ildata: interrupted"], err


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX signals")
def test_interrupt_handler_is_only_installed_for_the_program() -> None:
    """Importing the CLI from other code (tests, notebooks) leaves Python's own Ctrl-C handling alone."""
    code = "import signal, ildata.cli; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr


def test_interrupted_sweep_says_the_same_command_continues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from algos import sweep
    from ildata.cli import main

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run_sweep", interrupted)
    out = tmp_path / "sweep"
    assert main(["sweep", str(ROOT / RECIPE), "--seeds", "0", "--out", str(out)]) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"ildata: interrupted: finished runs and checkpoints are kept in {out}; the same command continues the sweep"]
