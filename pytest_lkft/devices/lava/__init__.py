"""LAVA labs as devices: each suite run is one LAVA job, its cases read back from the job.

- `client`: LAVA's REST API (submit, follow, logs, test cases, cancel), with retries.
- `specs`: `lava:<name>` device names -> LAVA device type, job template, QEMU twin.
- `jobs`: job definitions from the templates under pytest_lkft/data/lava/.
- `publish`: artifacts as URLs (local files published for the cache server; KissCache).
- `joblog`: the job log read as it grows (console, commands' output, boot facts).
- `job`: one submitted job, followed in a thread.
- `device`: `LavaDevice`, the Device of a suite run, answered from its finished job.
- `session`: a process's lab: jobs in flight, cancelling, the artifact server.

Nothing here imports pytest; this package module imports nothing (the plugin imports
`specs` at start-up and the rest only when a LAVA device is used).
"""

