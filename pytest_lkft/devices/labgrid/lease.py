"""Places leased from a labgrid coordinator, through labgrid's own gRPC client session.

A `PlaceLease` reserves a place matching a device's tags, waits for the coordinator to
allocate one, acquires it and releases it (labgrid-client from a signal handler).
`Coordinator` is this process's session with a coordinator; labgrid is imported only
when one is first needed.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import Any

from pytest_lkft.devices.labgrid.client import labgrid_client
from pytest_lkft.devices.labgrid.registry import LeaseRecord, LeaseRegistry
from pytest_lkft.errors import InfraError, LkftError

POLL_INTERVAL = 0.2  # seconds between polls of a waiting reservation
RESERVATION_WAITING, RESERVATION_ALLOCATED = 0, 1  # labgrid's ReservationState values


class Coordinator:
    """This process's session with a labgrid coordinator, over labgrid's own gRPC client.

    The first one is also the session labgrid's `RemotePlace` uses, so places acquired
    here are seen acquired there at once. Calls run the session's event loop; while a
    signal handler interrupts one, `busy` is true and callers use labgrid-client instead.
    """

    _connected: dict[str, Coordinator] = {}

    def __init__(self, address: str, session: Any) -> None:
        self.address = address
        self.session = session

    @classmethod
    def connect(cls, address: str) -> Coordinator:
        """The session with `address`, started on first use; one-line InfraError if down."""
        if address not in cls._connected:
            cls._connected[address] = cls(address, _start_session(address))
        return cls._connected[address]

    @property
    def busy(self) -> bool:
        """True while a call is running (a signal handler interrupted it)."""
        return bool(self.session.loop.is_running())

    def call(self, method: str, **fields: Any) -> Any:
        """Send one coordinator request, `method` with its fields; its response."""
        import grpc  # type: ignore[import-untyped]
        from labgrid.remote.generated import (  # type: ignore[import-untyped]
            labgrid_coordinator_pb2 as pb2,
        )

        request = getattr(pb2, f"{method}Request")(**fields)
        try:
            return self.session.loop.run_until_complete(getattr(self.session.stub, method)(request))
        except grpc.aio.AioRpcError as error:
            raise InfraError(f"labgrid coordinator at {self.address}: {method} failed: "
                             f"{error.details()}") from None

    def sync(self) -> None:
        """Wait until the session has every update the coordinator sent so far."""
        self.session.loop.run_until_complete(self.session.sync_with_coordinator())

    def sleep(self, seconds: float) -> None:
        """Wait, letting the session take the coordinator's updates meanwhile."""
        import asyncio

        self.session.loop.run_until_complete(asyncio.sleep(seconds))

    def tagged_places(self, tags: dict[str, str]) -> list[str]:
        """The places that have all `tags`."""
        return sorted(name for name, place in self.session.places.items()
                      if tags.items() <= dict(place.tags).items())


def _start_session(address: str) -> Any:
    """Start labgrid's client session, shared with labgrid's RemotePlace when it has none."""
    from labgrid.resource.remote import RemotePlaceManager  # type: ignore[import-untyped]

    manager = RemotePlaceManager.get()
    if manager.session is not None:
        if manager.url == address:
            return manager.session
        from labgrid.remote.client import start_session  # type: ignore[import-untyped]

        return _or_down(address, lambda: start_session(address, extra={}))
    manager.url, manager.env = address, None
    _or_down(address, manager._start)
    return manager.session


def _or_down(address: str, start: Any) -> Any:
    try:
        return start()
    except Exception:  # grpc and labgrid errors alike: nothing answers there
        raise InfraError(f"cannot reach the labgrid coordinator at {address}; start "
                         "labgrid-coordinator there or pass --lkft-coordinator ADDRESS") from None


@dataclass
class PlaceLease:
    """One place of the lab held by this process: reserved, then acquired, then released.

    Lifecycle: `acquire(timeout)` reserves a place matching `tags`, waits until the
    coordinator allocates one and acquires it; `release()` releases it and cancels the
    reservation, whatever state it got to (safe to call twice, and from a signal handler).
    With a `registry`, the lease is on record from its reservation to its release, so
    another process can release it should this one be killed (`release_stale`).
    """

    address: str
    tags: list[str]
    token: str = ""
    place: str = ""
    allocated: str = ""  # allocated to the reservation, maybe acquired (interrupted)
    registry: LeaseRegistry | None = None
    target: Any = None  # the place's labgrid target, kept by the board between suite runs

    def acquire(self, timeout: float) -> str:
        """Reserve, wait at most `timeout` seconds, acquire; the place's name."""
        coordinator = Coordinator.connect(self.address)
        wanted = dict(tag.split("=", 1) for tag in self.tags)
        if not coordinator.tagged_places(wanted):
            raise InfraError(f"no place of the lab at {self.address} has the tags "
                             f"{' '.join(self.tags)}; tag one (labgrid-client -p PLACE "
                             "set-tags) or fix the lab file's tags")
        filters = {"main": _pb2().Reservation.Filter(filter=wanted)}
        response = coordinator.call("CreateReservation", filters=filters, prio=0.0)
        self.token = str(response.reservation.token)
        try:
            self._record()
            self.allocated = self._wait(coordinator, timeout)  # ours to release from here on
            coordinator.call("AcquirePlace", placename=self.allocated)
            self._record(self.allocated)
            coordinator.sync()
        except BaseException:
            self.release()
            raise
        self.place, self.allocated = self.allocated, ""
        return self.place

    def _record(self, place: str = "") -> None:
        if self.registry is not None:
            self.registry.record(LeaseRecord(self.address, self.token, place))

    def _wait(self, coordinator: Coordinator, timeout: float) -> str:
        """Poll the reservation until a place is allocated; the place."""
        deadline = time.monotonic() + timeout
        while True:
            reservation = coordinator.call("PollReservation", token=self.token).reservation
            if reservation.state == RESERVATION_ALLOCATED:
                return str(reservation.allocations["main"])
            if reservation.state != RESERVATION_WAITING:
                raise InfraError(f"the reservation for {' '.join(self.tags)} ended "
                                 f"unallocated; see labgrid-client -x {self.address} "
                                 "reservations")
            if time.monotonic() > deadline:
                raise InfraError(f"no place tagged {' '.join(self.tags)} became free within "
                                 f"{timeout:g} s; free one (labgrid-client -x {self.address} "
                                 "who) or raise --lkft-place-timeout")
            coordinator.sleep(POLL_INTERVAL)

    def release(self) -> None:
        """Release the place and cancel the reservation; errors are not raised."""
        place, token = self.place or self.allocated, self.token
        self.place = self.allocated = self.token = ""
        self.target = None  # its drivers are closed by labgrid at exit
        coordinator = Coordinator._connected.get(self.address)
        released = False
        if coordinator is not None and not coordinator.busy:
            try:
                self._release_by_session(coordinator, place, token)
                released = True
            except Exception:  # noqa: BLE001  (an interrupted call broke the session)
                pass
        if not released:
            self._release_by_client(place, token)
        if self.registry is not None and token:
            self.registry.forget(token)

    @staticmethod
    def _release_by_session(coordinator: Coordinator, place: str, token: str) -> None:
        for method, fields in (("ReleasePlace", {"placename": place}),
                               ("CancelReservation", {"token": token})):
            if next(iter(fields.values())):
                try:
                    coordinator.call(method, **fields)
                except LkftError:
                    pass  # not acquired (any more), or the coordinator is gone

    def _release_by_client(self, place: str, token: str) -> None:
        """Release through labgrid-client: a signal interrupted this process's session."""
        if token and not place:  # interrupted while acquiring: the token names the place
            place = f"+{token}"
        commands: list[tuple[str, ...]] = []
        if place:
            commands.append(("-p", place, "release"))
        if token:
            commands.append(("cancel-reservation", token))
        for args in commands:
            try:
                labgrid_client(self.address, *args)
            except (LkftError, subprocess.TimeoutExpired):
                pass  # the coordinator is gone: it forgets everything anyway


def release_stale(registry: LeaseRegistry, address: str) -> list[LeaseRecord]:
    """Release what processes of this host that are gone left held on `address`.

    A recorded place is released only while it is still acquired for the recorded
    reservation (so not once someone else acquired it since); the reservation is
    cancelled and the record removed. Returns the records that were handled.
    """
    stale = registry.stale(address)
    if not stale:
        return []  # the usual case: no labgrid session needed
    coordinator = Coordinator.connect(address)
    coordinator.sync()
    for record in stale:
        place = ""  # release the place only if the dead process still holds it
        known = coordinator.session.places.get(record.place) if record.place else None
        if known is not None and known.acquired and known.reservation == record.token:
            place = record.place
        PlaceLease(address, [], token=record.token, place=place, registry=registry).release()
    return stale


def _pb2() -> Any:
    from labgrid.remote.generated import labgrid_coordinator_pb2

    return labgrid_coordinator_pb2


def wait_for_session_view(place: str, timeout: float) -> None:
    """Let this process's labgrid session see `place` acquired (labgrid-client acquired it).

    labgrid keeps one coordinator session per process and updates its copy of the places
    only while its event loop runs; a second place acquired later (two lab devices in one
    process) would otherwise look "not acquired" to it.
    """
    import asyncio

    from labgrid.resource.remote import RemotePlaceManager

    manager = RemotePlaceManager.get()
    deadline = time.monotonic() + timeout
    while manager.session is not None and time.monotonic() < deadline:
        known = manager.session.places.get(place)
        if known is not None and known.acquired:
            return
        manager.loop.run_until_complete(asyncio.sleep(0.1))
