"""A provider that exists only in the tests: one module declaring a SPEC, registered by
adding its name to sinks/providers/registry.PROVIDER_MODULES and nothing else. It serves
SMS targets whose address starts with "fake:", next to Twilio."""

from __future__ import annotations

from pydantic import Field, SecretStr

from schemas.common import Channel
from schemas.notifications import Delivery
from sinks.providers.base import SendResult, sent
from sinks.providers.config import SenderSettings
from sinks.providers.spec import ProviderSpec

MODULE = __name__
SENT: list[Delivery] = []  # every delivery any FakeSender took, for the tests to read


class FakeSettings(SenderSettings):
    fake_api_key: SecretStr | None = Field(default=None)  # CLARION_FAKE_API_KEY
    pace_fake_per_s: float = Field(default=3.0, gt=0)  # CLARION_PACE_FAKE_PER_S


class FakeSender:
    provider = "fake"

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    async def send(self, delivery: Delivery) -> SendResult:
        SENT.append(delivery)
        return sent(f"fake-{delivery.delivery_id}")

    async def aclose(self) -> None:
        return None


def _build(cfg: FakeSettings) -> FakeSender:
    assert cfg.fake_api_key is not None
    return FakeSender(cfg.fake_api_key.get_secret_value())


SPEC = ProviderSpec(
    name="fake",
    channel=Channel.SMS,
    settings=FakeSettings,
    configured=lambda cfg: cfg.fake_api_key is not None,
    pace_per_s=lambda cfg: cfg.pace_fake_per_s,
    build=_build,
    picks=lambda delivery: delivery.target.address.startswith("fake:"),
)
