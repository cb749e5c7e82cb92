"""`hookyard bench`: the benchmark, split by job.

- `cli`: the command's options and a run of the chosen scenarios in rounds;
- `scenarios`: what each scenario runs and measures;
- `workload`: realistic, signed deliveries of the four providers, mixed;
- `replay`: those deliveries as raw requests in a file for `bench/replay.lua`;
- `sources`: the sources files of the servers under test, and their secrets;
- `wrk`: running wrk and reading its report;
- `processes`, `cpu`, `databases`: servers as subprocesses, their CPU use, fresh databases
  and the inbox counts read during a run;
- `profiling`: py-spy on every process of a server, summarised;
- `results`, `report`: the figures, the tables, the goals, the JSON output.

Only `cli` is imported with the `hookyard` command; the rest loads when a bench runs.
"""

from hookyard.bench.cli import add_parser, main, run

__all__ = ["add_parser", "main", "run"]
