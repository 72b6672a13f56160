"""Errors users see: one line saying what was wrong, the value, and what to do.

`UserError` is bad input (an option, a file, a name); `InfraError` is the lab or the
machine failing (a build, a boot, a broken device), as tuxmake and KUnit tell them apart.
"""

from __future__ import annotations


class LkftError(Exception):
    """Base of every error pytest_lkft raises on purpose."""


class UserError(LkftError):
    """Bad input: an option, a path, a URL, a name."""


class InfraError(LkftError):
    """The infrastructure failed: build, download, boot, console."""


class DownloadError(InfraError):
    """A URL could not be fetched."""


class BootError(InfraError):
    """The kernel did not reach a shell."""


class DeviceBroken(InfraError):
    """The device died (panic, hang, lost console); its remaining tests are not run."""
