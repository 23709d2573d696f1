"""Each test module gets a fresh sandbox; nothing outlives the test that made it."""

from collections.abc import Iterator

import pytest

from devenv.sandbox import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb
