"""Run one command and report its wall time and resource use: the harness's process launcher.

Usage: python -I -S _launch.py RESULT_PATH COMMAND [ARG...]

Runs COMMAND with this process's environment and standard streams, reaps it with
``os.wait4`` and writes one JSON object to RESULT_PATH: ``wall`` (seconds, spawn to exit),
``user`` and ``sys`` (CPU seconds), ``max_rss`` (peak resident set, bytes), ``returncode``
(negative: killed by that signal), or ``error`` when COMMAND could not be started.

Why a launcher: Linux carries a process's peak RSS across ``exec`` from the memory it was
forked from, so a command started straight from a benchmark holding hundreds of MB would
report at least that much. Started from this small interpreter (``-S``: no site imports), a
command's figure is its own, with this process's ~10 MB as the floor. The launcher imports
only the standard library, so it starts in a few milliseconds, outside the measured time.
"""

import json
import os
import sys
import time


def main() -> int:
    result_path, cmd = sys.argv[1], sys.argv[2:]
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawnp(cmd[0], cmd, os.environ)
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - t0
        result = {"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime,
                  "max_rss": usage.ru_maxrss * 1024,  # Linux reports KiB
                  "returncode": os.waitstatus_to_exitcode(status)}
    except OSError as e:
        result = {"error": f"cannot run {cmd[0]!r}: {e.strerror or e}"}
    with open(result_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
