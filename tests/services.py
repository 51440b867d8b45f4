"""Real services for the backend tests: a private PostgreSQL cluster and a moto S3 server.

Loaded as a pytest plugin (``pytest_plugins = ("tests.services",)``), so the
session fixtures below start each service once per run, on 127.0.0.1 and a
free port, and stop it at the end. PostgreSQL runs from the installed server
binaries as the ``postgres`` user (it refuses root) in a throwaway directory.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import need
from tests.servers import free_port

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin folder, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class Postgres:
    """A throwaway cluster owned by the ``postgres`` user, listening on 127.0.0.1."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        # NOTE: not under pytest's tmp_path: its parents are 0700 root, which
        # the postgres user cannot enter.
        self.dir = Path(tempfile.mkdtemp(prefix="casvault-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start(self) -> None:
        """initdb and start (fsync off: the data is thrown away)."""
        shutil.chown(self.dir, "postgres")
        self._as_postgres(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )
        self.resume()

    def resume(self) -> None:
        """Start the server over its existing data (after :meth:`halt`)."""
        options = (
            f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )

    def halt(self) -> None:
        """Stop the server at once, keeping its data (PostgreSQL going away under a running app)."""
        self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for a database of this cluster."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def create_database(self) -> str:
        """A new empty database; returns its DSN."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        """Stop the server and remove its files."""
        try:
            self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class MotoS3:
    """moto's S3 protocol server in a thread on 127.0.0.1."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> None:
        """Start serving."""
        self.server.start()

    def stop(self) -> None:
        """Stop serving."""
        self.server.stop()

    def client(self):
        """A boto3 client for this server."""
        from casvault.backends.s3 import make_client

        return make_client(self.endpoint)

    def create_bucket(self) -> str:
        """A new empty bucket; returns its name."""
        name = "t-" + uuid.uuid4().hex[:20]
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's PostgreSQL cluster (fails in CI when it cannot run)."""
    bindir = postgres_bin()
    need(bindir is not None, "postgresql server binaries (/usr/lib/postgresql/*/bin)")
    need(os.geteuid() == 0 and shutil.which("runuser") is not None, "root and runuser to start postgresql")
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError:
        need(False, "psycopg")
    server = Postgres(bindir)
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        server.stop()
        pytest.fail(f"postgresql did not start: {exc.stderr.decode(errors='replace')[-500:]}")
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(postgres: Postgres) -> str:
    """A fresh database for one test."""
    return postgres.create_database()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3]:
    """The session's S3 protocol server, with dummy credentials in the environment."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ModuleNotFoundError as exc:
        need(False, f"moto[server] and boto3 ({exc.name})")
    # NOTE: moto's werkzeug logs one line per request; failures should show ours.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    server = MotoS3()
    server.start()
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_server: MotoS3) -> str:
    """A fresh bucket for one test."""
    return s3_server.create_bucket()
