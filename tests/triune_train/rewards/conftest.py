"""Shared fixtures: reward services started as real subprocesses on free loopback ports."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # workers inherit sys.path; the service subprocess gets PYTHONPATH
    sys.path.insert(0, str(HERE))

from _reward_testkit import SERVICE_ARGS, TOKEN, Service  # noqa: E402


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A shared service: 2 workers, 1 s item timeout, small limits so that oversize tests are cheap."""
    s = Service(
        tmp_path_factory.mktemp("svc"), *SERVICE_ARGS, "--max-items", "64", "--max-body-bytes", "200000"
    )
    yield s.start()
    s.stop()


@pytest.fixture(scope="session")
def service_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = Service(tmp_path_factory.mktemp("svc_b"), *SERVICE_ARGS)
    yield s.start()
    s.stop()


@pytest.fixture(scope="session")
def token_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    s = Service(tmp_path_factory.mktemp("tok"), *SERVICE_ARGS, token=TOKEN)
    yield s.start()
    s.stop()
