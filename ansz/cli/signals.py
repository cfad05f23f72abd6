"""How the ``ansz`` command stops on SIGINT, SIGTERM and SIGHUP.

A stop signal raises :class:`Terminated` (a KeyboardInterrupt) in the main thread, so that
the temporary output is removed on the way out and the command exits with 128 + the signal
number. Python can lose that exception: C code that clears errors, a ``__del__`` or a
callback whose exceptions are "ignored", code that catches it. So the handler also records
the signal (:func:`received`), and the run checks it where it may stop
(:func:`stop_if_signalled`: between inputs, after each chunk); exceptions that cannot
propagate are delivered again (:func:`redeliver_swallowed_interrupts`); and a watchdog
thread ends the process :data:`STOP_DEADLINE` seconds after the signal if it is still
running (:func:`watch_for_a_stuck_stop`), removing the temporary files of the outputs in
progress (:func:`writing`) first.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (and SIGINT in the command's own process), raised in the main
    thread so that temporary outputs are removed on the way out, as for Ctrl-C; exits with
    128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum


#: The stop signal whose handler has run in this process, 0 if none.
_stop_signal = 0


def received() -> int:
    """The stop signal whose handler has run in this run, 0 if none."""
    return _stop_signal


def reset() -> None:
    """A new run: no stop signal received yet."""
    global _stop_signal
    _stop_signal = 0


def raise_terminated(signum: int, frame: Any) -> None:
    """The handler of the stop signals: remember the first, raise :class:`Terminated`."""
    global _stop_signal
    _stop_signal = _stop_signal or signum
    raise Terminated(signum)


def stop_if_signalled() -> None:
    """Raise the stop signal's exception again if its handler has run and yet the run goes
    on: the exception was discarded on its way (C code that clears errors, a callback
    whose exceptions are ignored). Called where the run may stop: between inputs, after
    each chunk."""
    if _stop_signal:
        raise Terminated(_stop_signal)


def interrupted_status(e: BaseException) -> int:
    """The exit status for a KeyboardInterrupt: 128 + its signal (SIGINT for Ctrl-C)."""
    return getattr(e, "exit_code", 128 + signal.SIGINT)


def take_over(own_process: bool, handled: list[int]) -> None:
    """Install the stop handlers; each signal given one is appended to ``handled`` at once
    (for :func:`end_of_run`, even if a signal interrupts this set-up). In the command's own
    process also SIGINT's, the hooks for exceptions that cannot propagate and the watchdog;
    a SIGHUP ignored by nohup stays ignored."""
    if own_process:
        sys.unraisablehook = redeliver_swallowed_interrupts(sys.unraisablehook)
        sys.excepthook = quiet_interrupts(sys.excepthook)
        watch_for_a_stuck_stop()
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, raise_terminated)  # remembered, as these:
            handled.append(signal.SIGINT)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_IGN:  # nohup's SIGHUP stays ignored
            signal.signal(sig, raise_terminated)
            handled.append(sig)


def end_of_run(handled: list[int]) -> None:
    """The command's own process, once the run is over (outputs published or removed).

    A signal from now on ends the process by its default action (the shell still sees 128 +
    its number) instead of raising in the interpreter's exit. And the exit would collect
    garbage over numba's object graph (millions of objects): 0.25-0.35 s of every run here;
    frozen objects are skipped, the exit is otherwise unchanged (atexit, flushing, teardown).
    """
    import gc

    for sig in handled:
        signal.signal(sig, signal.SIG_DFL)
    gc.freeze()


def redeliver_swallowed_interrupts(previous: Callable[[Any], Any]) -> Callable[[Any], None]:
    """A ``sys.unraisablehook``. A signal's exception raised where Python cannot propagate it
    (in a ``__del__``, a weakref or ctypes callback: numba loading kernels runs many) is
    "ignored": printed with a traceback and dropped, and the run would go on to exit 0.
    This hook drops the noise instead and has the same signal delivered to the main thread
    again (:func:`_thread.interrupt_main` simulates its arrival), so that it stops the run at
    the next point where it can. Other unraisable exceptions go to ``previous``.

    The new delivery comes from a helper thread once the hook has returned: delivered
    inside the hook, the handler's exception would be swallowed again. The helper waits for
    the flag that the hook clears as its last statement (no signal is handled between that
    and its return), and it needs the main thread to let go of the GIL first, which the main
    thread does only where it checks for signals."""
    import _thread
    import threading

    inside = [False]

    def deliver(signum: int) -> None:
        while inside[0]:
            time.sleep(0.001)
        _thread.interrupt_main(signum)

    def hook(unraisable: Any) -> None:
        inside[0] = True
        exc_type = unraisable.exc_type
        if isinstance(exc_type, type) and issubclass(exc_type, KeyboardInterrupt):
            signum = getattr(unraisable.exc_value, "signum", signal.SIGINT)
            try:
                threading.Thread(target=deliver, args=(signum,), daemon=True,
                                 name="ansz-signal").start()
            except RuntimeError:  # the interpreter is exiting: nothing left to stop
                pass
        else:
            previous(unraisable)
        inside[0] = False

    return hook


def quiet_interrupts(previous: Callable[..., Any]) -> Callable[..., None]:
    """A ``sys.excepthook`` that prints nothing for a signal's exception. C code that
    cannot propagate an exception prints it with PyErr_Print, which calls this hook (numba
    does so, then raises ImportError, when a signal lands while it imports a C extension):
    the run stops all the same, by :func:`stop_if_signalled`."""

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        if not (isinstance(exc_type, type) and issubclass(exc_type, KeyboardInterrupt)):
            previous(exc_type, exc, tb)

    return hook


#: Output files being written now (see :func:`watch_for_a_stuck_stop`).
_OUTPUTS_IN_PROGRESS: list[str] = []


@contextmanager
def writing(dst: Any) -> Iterator[None]:
    """Record ``dst`` (a path; anything else is ignored) as an output being written, for
    the watchdog to clean up after if the run does not stop."""
    path = dst if isinstance(dst, str) else None
    if path is not None:
        _OUTPUTS_IN_PROGRESS.append(path)
    try:
        yield
    finally:
        if path is not None:
            _OUTPUTS_IN_PROGRESS.remove(path)


#: Seconds a run may take to stop after SIGINT/SIGTERM/SIGHUP before it is ended anyway.
STOP_DEADLINE = 2.0


def watch_for_a_stuck_stop(deadline: float = STOP_DEADLINE) -> None:
    """For the command's own process: a run must stop within ``deadline`` seconds of a
    signal, wherever the signal lands. Normally its exception unwinds the main thread, which
    removes the temporary output and exits in milliseconds. But the main thread handles a
    signal only between bytecodes, so a long call into compiled code (numba compiling
    kernels: seconds) delays it; code that discards exceptions can drop it; and an
    exception raised while waiting for a module that a worker thread imports can leave the
    import lock held, and the exit waits for that worker for ever.

    A daemon thread learns of the signal at once, from the wakeup file descriptor that the
    C-level handler writes to. If the process still runs ``deadline`` seconds later, the
    thread removes the temporary files of the outputs in progress and ends the process
    with status 128 + the signal number."""
    import threading

    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def watch() -> None:
        stops = {int(signal.SIGINT), int(signal.SIGTERM), int(signal.SIGHUP)}
        signum = 0
        while signum not in stops:
            data = os.read(r, 64)
            signum = next((n for n in data if n in stops), 0)
        time.sleep(deadline)
        try:
            remove_temporary_outputs()
        finally:
            os._exit(128 + signum)

    threading.Thread(target=watch, daemon=True, name="ansz-stop-watch").start()


#: The temporary names of :func:`ansz._io.atomic_output`: ``.NAME.XXXXXXXX.tmp`` (tempfile's
#: random part). Written out here: importing ansz._io would slow ``ansz --help`` (hashlib).
_TEMPORARY_NAME = re.compile(r"\..*\.[a-z0-9_]{8}\.tmp", re.DOTALL)


def remove_temporary_outputs() -> None:
    """Remove the temporary files of the outputs in progress: in each output's directory,
    the files named like ``atomic_output``'s temporary files that this process holds open
    for writing (a file it does not hold open so is another writer's, or an input)."""
    held = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            with open(f"/proc/self/fdinfo/{name}") as info:
                flags = next(int(line.split()[1], 8) for line in info
                             if line.startswith("flags:"))
            st = os.fstat(int(name))
        except (OSError, ValueError, StopIteration):
            continue
        if (flags & os.O_ACCMODE) != os.O_RDONLY and stat.S_ISREG(st.st_mode):
            held.add((st.st_dev, st.st_ino))
    for dst in list(_OUTPUTS_IN_PROGRESS):
        try:
            with os.scandir(os.path.dirname(os.path.abspath(dst))) as entries:
                for entry in entries:
                    if not _TEMPORARY_NAME.fullmatch(entry.name):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) in held:
                        os.unlink(entry.path)
        except OSError:
            continue
