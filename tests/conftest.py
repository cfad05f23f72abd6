"""The suite's pytest wiring: long runs only with ANSZ_SLOW_TESTS=1.

By default the suite stays within a few minutes on two cores and still fuzzes, briefly:
hypothesis tests run the example counts they state (``helpers.fuzz``), damage loops their
default trials. With ANSZ_SLOW_TESTS=1 in the environment (as python-zstandard gates its
long runs with ZSTD_SLOW_TESTS) hypothesis runs many times more examples, and the tests
marked ``slow`` run too; otherwise those are skipped, saying how to run them. The shared
helpers themselves are in tests/helpers.py.

The suite may be started with SIGINT ignored (a background job of a non-interactive shell
starts so); the commands it starts would inherit that and, as ``nohup`` asks, go on
through the SIGINT the signal tests send them. So SIGINT gets Python's usual handler here,
which the commands it starts see as the default action.
"""

from __future__ import annotations

import signal

import pytest
from helpers import SLOW, SLOW_FACTOR


def pytest_configure(config: pytest.Config) -> None:
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config: pytest.Config) -> str:
    if SLOW:
        return f"ANSZ_SLOW_TESTS: slow tests run, hypothesis runs {SLOW_FACTOR}x the examples"
    return "ANSZ_SLOW_TESTS unset: slow tests skipped, brief fuzzing"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SLOW:
        return
    skip = pytest.mark.skip(reason="a long run: set ANSZ_SLOW_TESTS=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
