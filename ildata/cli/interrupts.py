"""Ctrl-C ends `ildata` with one line on stderr and exit status 130, whenever it comes.

Python's own handling prints a traceback from wherever the interrupt landed (often deep inside
an import of torch), and a second Ctrl-C while the first unwinds adds another. Here instead:

- while `ildata` starts (its modules importing before `main` runs) or ends (after `main`
  returned): nothing needs cleaning up, so the line is printed and the process exits at once;
- while a command runs: the first Ctrl-C raises KeyboardInterrupt, so `finally` blocks clean up
  (temporary folders, a run's partial folder) and `main` prints the line, which a command may
  extend (`ildata train` says how to resume); a second Ctrl-C while that unwinds is ignored, and
  a third exits at once, so a cleanup that hangs can still be left;
- after Python's last exit handler: Python puts back the default disposition, which would end
  the process by the signal without a word; what is left of the exit cannot hang, so Ctrl-C is
  ignored there and the exit status stands.

The handler is installed when this module is imported by the `ildata` program itself (the
console script or `python -m ildata.cli`), which is the first thing `ildata.cli` does; `main`
called from Python installs it for the call only and puts the caller's handler back.
"""

from __future__ import annotations

# Only modules Python has loaded by the time it runs a program (and signal, atexit): the handler is
# installed, at the end of this module, before anything slow is imported.
import atexit
import os
import signal
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import FrameType

EXIT_INTERRUPTED = 130
LINE = "ildata: interrupted"


def launched_as_program() -> bool:
    """True in the `ildata` console script and in `python -m ildata.cli`, False when imported by other code."""
    argv = list(getattr(sys, "orig_argv", []))
    if "-m" in argv[1:]:
        index = argv.index("-m", 1)
        return argv[index + 1 : index + 2] == ["ildata.cli"]
    return os.path.basename(sys.argv[0]) == "ildata"


class InterruptHandler:
    """The SIGINT handler and what it has done so far (see the module docstring)."""

    def __init__(self) -> None:
        self.installed = False
        self.in_command = False
        self.presses = 0
        self.reported = False
        self._previous: object = None

    def install(self) -> bool:
        """Handle SIGINT from now on; False where Python allows no handler (outside the main thread)."""
        if self.installed:
            return False
        try:
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread
            return False
        self.installed = True
        return True

    def uninstall(self) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self.installed = False

    def report(self, detail: str = "") -> None:
        """Print the one line (`ildata: interrupted[: detail]`), once."""
        if self.reported:
            return
        self.reported = True
        try:
            sys.stderr.write(f"{LINE}: {detail}\n" if detail else f"{LINE}\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed: the exit status still says it
            pass

    def exit_now(self) -> None:
        """The line (unless printed already), then exit 130 without unwinding anything."""
        self.report()
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os._exit(EXIT_INTERRUPTED)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if not self.in_command:
            self.exit_now()
        self.presses += 1
        if self.presses == 1:
            raise KeyboardInterrupt
        if self.presses >= 3:
            self.exit_now()

    def begin_command(self) -> bool:
        """From here Ctrl-C raises KeyboardInterrupt once, then is ignored (see above); True if the
        handler was installed for this command only (`main` called from Python)."""
        installed_here = self.install()
        self.presses, self.reported = 0, False
        self.in_command = True  # last: `main` enters its `try` right after this returns
        return installed_here

    def end_command(self, installed_here: bool) -> None:
        self.in_command = False
        if installed_here:
            self.uninstall()


def _ignore_from_now_on() -> None:
    """The last exit handler: Python then resets SIGINT to its default, which would end the process
    by the signal, silently; what is left of the exit cannot hang, so Ctrl-C is ignored instead."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


INTERRUPTS = InterruptHandler()
if launched_as_program():
    INTERRUPTS.install()
    atexit.register(_ignore_from_now_on)  # registered first, so it runs last
