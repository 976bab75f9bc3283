"""Fixtures of the page tests: a logged-in site on a temporary settings file, its
database, and a stand-in gateway on its control socket (site_support, gateway_support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.store import Store
from tests.unit.webui.gateway_support import FakeGateway
from tests.unit.webui.site_support import Site, make_site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
def db(site: Site) -> Iterator[Store]:
    store = Store.open(site.app.extensions["linegram"].settings.database)
    yield store
    store.close()


@pytest.fixture
def gateway(site: Site, db: Store) -> Iterator[FakeGateway]:
    settings = site.app.extensions["linegram"].settings
    fake = FakeGateway(settings.control_socket, settings.database).start()
    yield fake
    fake.stop()
