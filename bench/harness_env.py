"""The environment the benchmarks run pytest-lkft in, as a user's shell has it.

- Plugin autoload is off, pytest-lkft and xdist are loaded with `-p`: other plugins
  installed beside them (labgrid's, hypothesis') cost start-up time that is not ours.
- `PYTHONDONTWRITEBYTECODE` is dropped: with it set (as on the development machines),
  every pytest process compiles pytest_lkft's modules from source again (0.04 s a process
  here), which a user's installation does once. The benchmarks' warm-up run writes them.
"""

from __future__ import annotations

import os


def harness_env(**extra: str) -> dict[str, str]:
    """os.environ for a timed pytest-lkft run, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **extra}
