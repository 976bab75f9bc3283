"""Fixtures of the interop suite: media files, a log book, and peers that are always stopped.

Not an RFC module.  Every peer a test starts goes through the ``peers``
fixture (:class:`~tests.interop.peers.harness.Peers`), whose teardown stops
them all, newest first, whatever the test did.  Every log file a peer writes
is registered in the test's log book; when a test fails, the tail of each one
is attached to its report as a section (``peer log: ...``).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest

from tests.interop.peers.harness import Peers
from tests.interop.peers.pcap import TestMedia, build_media
from tests.interop.peers.procs import LogBook, kill_leftovers

LOGBOOK = pytest.StashKey[LogBook]()
TOOLS = ("sipp", "kamailio", "baresip")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """An interop test that forgot its marker would run in the unit suite: refuse that."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents and item.get_closest_marker("interop") is None:
            raise pytest.UsageError(f"{item.nodeid}: interop tests need @pytest.mark.interop")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    book = item.stash.get(LOGBOOK, None)
    if book is not None and report.failed:
        for name, text in book.tails():
            report.sections.append((f"peer log: {name}", text))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Peers whose fixture teardown never ran (a killed event loop) are killed here."""
    leftovers = kill_leftovers()
    if leftovers:
        session.config.get_terminal_writer().line(f"interop: killed leftover {leftovers}")


@pytest.fixture
def logbook(request: pytest.FixtureRequest) -> LogBook:
    book = LogBook()
    request.node.stash[LOGBOOK] = book
    return book


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> TestMedia:
    """pcma.pcap, pcmu.pcap (3 s speech, 20 ms) and dtmf.pcap (1, 5, 9), built once."""
    missing = [tool for tool in TOOLS if shutil.which(tool, path="/usr/bin:/usr/sbin") is None]
    if missing:
        raise pytest.UsageError(f"interop tools missing: {', '.join(missing)}")
    return build_media(tmp_path_factory.mktemp("media"))


@pytest.fixture
async def peers(tmp_path: Path, logbook: LogBook) -> AsyncIterator[Peers]:
    """Starts peers on demand; stops every one of them at teardown."""
    harness = Peers(tmp_path, logbook)
    try:
        yield harness
    finally:
        await harness.close()
