"""The bisect helper: from a regression to the first bad commit (issue 12).

`selection` names the cases a bisection judges; `verdict` turns a step's results into
good, bad or skip (pure logic); `step` runs a step through the plugin, as a user runs
pytest; `git` drives the worktree and `git bisect`; `state` is where a bisection lives;
`run` is the bisection itself and `lkft bisect-step`; `known` starts one from two builds
of the store or of SQUAD; `report` prints the lines, the table and reproducer.sh.
Commands: `lkft bisect`, `lkft bisect-step` (`pytest_lkft.cli.bisect`). docs/bisect.md.
"""
