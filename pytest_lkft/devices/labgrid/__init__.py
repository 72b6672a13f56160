"""Boards in a labgrid lab: lab files, places leased from the coordinator, a board device.

- `labfile`: a lab file (`lab/*.yaml`) maps device names to the tags of the places that
  run them, their labgrid drivers and how they boot.
- `lease`: a `PlaceLease` reserves, waits for and acquires one matching place through
  labgrid's own coordinator session (`Coordinator`), and releases it.
- `client`: labgrid-client subprocesses, for a signal handler and the lab's tools.
- `serial`: the serial console through labgrid's console driver, as a `Console`.
- `board`: `LabgridDevice` stages the kernel, powers the board and reaches its shell.

labgrid is imported only when a place is leased or a board boots, so lab files load
without it.
"""

from __future__ import annotations

from pytest_lkft.devices.labgrid.board import LabgridDevice
from pytest_lkft.devices.labgrid.client import finish_running_clients, labgrid_client, labgrid_tool
from pytest_lkft.devices.labgrid.labfile import BootSpec, LabDevice, load_lab
from pytest_lkft.devices.labgrid.lease import Coordinator, PlaceLease

__all__ = ["BootSpec", "Coordinator", "LabDevice", "LabgridDevice", "PlaceLease",
           "finish_running_clients", "labgrid_client", "labgrid_tool", "load_lab"]
