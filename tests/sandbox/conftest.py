"""Sandboxes for the tests, and provider settings that point senders at them.

``sandbox`` is fresh per test. The sender tests share one sandbox per module (``sb``, reset
before each test), because building real SDK clients (TLS contexts, key parsing) costs
more than the sends themselves.
"""

from collections.abc import Iterator, Mapping

import pytest

from devenv.sandbox import Sandbox
from devenv.sandbox.env import provider_env
from sinks.providers import ProviderSettings
from tests.sandbox.deliveries import SEND_TIMEOUT_S


def settings_from(env: Mapping[str, str], **overrides: object) -> ProviderSettings:
    """ProviderSettings from CLARION_* variables, without touching os.environ."""
    fields: dict[str, object] = {k.removeprefix("CLARION_").lower(): v for k, v in env.items()}
    return ProviderSettings(**{**fields, "send_timeout_s": SEND_TIMEOUT_S, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def shared_env(shared_sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return provider_env(shared_sandbox, tmp_path_factory.mktemp("providers"))


@pytest.fixture(scope="module")
def cfg(shared_env: dict[str, str]) -> ProviderSettings:
    return settings_from(shared_env)


@pytest.fixture
def sb(shared_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The module's sandbox, with no faults, sends, load figures or event webhook left from
    other tests."""
    secret = shared_sandbox.webhook_secret
    shared_sandbox.clear_faults()
    shared_sandbox.clear_sends()
    shared_sandbox.reset_load()
    shared_sandbox.sendgrid_event_webhook_url = None
    yield shared_sandbox
    shared_sandbox.webhook_secret = secret
