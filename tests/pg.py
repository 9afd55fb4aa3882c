"""The PostgreSQL server the tests use: the one `.ci/postgres` starts (LSTMCAST_TEST_POSTGRES).

Outside CI, tests that need it are skipped with the reason when no server is given; in CI
(LSTMCAST_CI=1) a missing server fails them instead, so CI cannot pass without running them.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest

PASSWORD_VAR = (
    "LSTMCAST_TEST_PGPASSWORD"  # the URLs the tests pass carry ${LSTMCAST_TEST_PGPASSWORD}, never the password
)


@dataclass(frozen=True)
class Server:
    user: str
    password: str
    host: str
    port: int
    database: str

    def url(self, password: str = "${" + PASSWORD_VAR + "}") -> str:
        """A URL as a crontab would hold it: the password as ${VAR}, expanded by lstmcast when connecting."""
        return f"postgresql://{self.user}:{password}@{self.host}:{self.port}/{self.database}"

    def engine(self):  # the tests' own connection, to set up tables and count rows
        import sqlalchemy as sa

        return sa.create_engine(
            sa.URL.create("postgresql+psycopg", self.user, self.password, self.host, self.port, self.database)
        )


def server() -> Server:
    """The test server, or skip (fail in CI) when none was started."""
    url = os.environ.get("LSTMCAST_TEST_POSTGRES")
    if not url:
        if os.environ.get("LSTMCAST_CI") == "1":
            pytest.fail("LSTMCAST_CI=1 but LSTMCAST_TEST_POSTGRES is not set: .ci/run must start PostgreSQL")
        pytest.skip("no PostgreSQL server: run `. .ci/postgres` first (it sets LSTMCAST_TEST_POSTGRES)")
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return Server(u.username, u.password, u.host, u.port or 5432, u.database)


def table_name(prefix: str) -> str:
    """A table name no other test (or earlier run against the same server) uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
