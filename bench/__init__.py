"""ansz's benchmarks, on one harness (:mod:`bench.harness`).

Run from the repository root, in the project's environment::

    python -m bench --list                 # what there is
    python -m bench speed                  # the speed targets, in one run
    python -m bench scoreboard --write     # regenerate BENCHMARKS.md's scoreboard

Every benchmark prints markdown tables stamped with the commit, the command and the load
average; ``--write`` also puts them into their section of BENCHMARKS.md.

Adding a benchmark: write a module
``bench/NAME.py`` with

* ``DESCRIPTION``: one line for ``--list``;
* ``RUNS`` and ``WARMUP``: its default timed and warm-up runs per case;
* ``add_arguments(parser)``: its own options (the common ones are added for it);
* ``space_needed(args) -> int`` (optional): bytes of temporary files, to pick a tmpfs;
* ``TITLE``: the heading of its report;
* ``section(args) -> (name, title)`` (optional): the BENCHMARKS.md section ``--write`` fills
  and its heading, when they depend on the options (default: NAME and TITLE);
* ``run(session, args) -> list[harness.Table]``: measure through ``session.interleave`` and
  :func:`harness.run_command`, and return the tables;

and add it to :data:`BENCHMARKS` (and to :data:`SCOREBOARD` if BENCHMARKS.md should carry it).
"""

#: name -> module, in the order ``--list`` shows them.
BENCHMARKS = {
    "speed": "bench.speed",
    "corpus": "bench.corpus",
    "levels": "bench.levels",
    "memory": "bench.memory",
    "codec": "bench.codec",
    "coders": "bench.coders",
    "modelling": "bench.modelling",
    "stats": "bench.stats_accuracy",
    "remote": "bench.remote",
    "delta": "bench.delta",
}

#: The benchmarks whose tables make BENCHMARKS.md's scoreboard, run in this order by
#: ``python -m bench scoreboard``.
SCOREBOARD = ("speed", "corpus", "memory", "stats", "remote")
