"""The provider registry (sinks/providers/registry.py): every provider module is one file with
a SPEC, listed once; settings, senders, pacers and labels all come from that list."""

from __future__ import annotations

import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import sinks.providers
from schemas.common import Channel
from schemas.notifications import Delivery
from sinks.providers import registry
from sinks.providers.factory import RoutingSender, build_senders
from sinks.providers.spec import ProviderSpec
from tests import fake_provider
from tests.factories import delivery_bytes

# The package's modules that are machinery, not providers.
NOT_PROVIDERS = {"base", "clients", "config", "factory", "registry", "spec"}


def a_delivery(channel: str, address: str, platform: str | None = None) -> Delivery:
    return Delivery.model_validate_json(delivery_bytes(channel, "u1", address, platform=platform))


@pytest.fixture
def with_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The registry with the fake provider's module appended: the one edit adding one takes."""
    for key in ("CLARION_FAKE_API_KEY", "CLARION_PACE_FAKE_PER_S"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(
        registry, "PROVIDER_MODULES", (*registry.PROVIDER_MODULES, fake_provider.MODULE)
    )
    fake_provider.SENT.clear()
    yield
    fake_provider.SENT.clear()


def test_every_provider_module_is_registered_with_a_spec() -> None:
    files = {
        m.name
        for m in pkgutil.iter_modules([str(Path(sinks.providers.__file__).parent)])
        if m.name not in NOT_PROVIDERS
    }
    registered = {name.rsplit(".", 1)[1] for name in registry.PROVIDER_MODULES}
    assert files == registered
    specs = registry.load_specs()
    assert all(isinstance(s, ProviderSpec) for s in specs)
    assert [s.name for s in specs] == ["fcm", "apns", "sendgrid", "twilio", "webhook"]
    cls = registry.settings_class()
    assert cls.specs == specs
    # Each provider's pace is a field of the merged settings (CLARION_PACE_<NAME>_PER_S).
    assert {f"pace_{s.name}_per_s" for s in specs} <= set(cls.model_fields)


def test_env_names_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARION_PACE_TWILIO_PER_S", "7")
    monkeypatch.setenv("CLARION_FCM_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("CLARION_EMAIL_FROM", "x@example.com")
    cfg = registry.settings_class()()
    assert registry.pacers(cfg)["twilio"].rate == 7.0
    assert (cfg.fcm_url, cfg.email_from) == ("http://127.0.0.1:1", "x@example.com")  # type: ignore[attr-defined]
    assert registry.pacers(cfg)["fcm"].rate == 10_000.0  # the default


def test_a_module_without_a_spec_is_refused() -> None:
    with pytest.raises(TypeError, match="SPEC"):
        registry.load_specs(("sinks.providers.base",))


def test_push_labels_as_before() -> None:
    specs = registry.load_specs()
    both = {"fcm", "apns"}
    assert registry.provider_of(specs, a_delivery("push", "t", "apns"), both) == "apns"
    assert registry.provider_of(specs, a_delivery("push", "t", "fcm"), set()) == "fcm"
    # No platform: counted as the channel's first provider's, as before.
    assert registry.provider_of(specs, a_delivery("push", "t", None), both) == "fcm"
    assert registry.provider_of(specs, a_delivery("email", "a@b.c"), both) == "sendgrid"
    assert registry.provider_of(specs, a_delivery("in_app", "u1"), both) == "in_app"


async def test_a_registered_fake_provider_is_built_paced_and_picked(
    with_fake: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLARION_FAKE_API_KEY", "k")
    monkeypatch.setenv("CLARION_PACE_FAKE_PER_S", "42")
    cls = registry.settings_class()
    assert [s.name for s in cls.specs][-1] == "fake"
    cfg = cls()
    assert cfg.fake_api_key is not None  # type: ignore[attr-defined]
    # The sinks' pacers (sinks/deliver.py install) and labels.
    assert registry.pacers(cfg)["fake"].rate == 42.0
    assert registry.configured(cfg) == {"fake"}
    fake = a_delivery("sms", "fake:+15550001")
    assert registry.provider_of(cfg.specs, fake, registry.configured(cfg)) == "fake"
    # The factory: SMS now has two providers, only the fake is configured.
    senders = build_senders(cfg)
    assert set(senders) == {Channel.SMS}
    assert isinstance(senders[Channel.SMS], RoutingSender)
    result = await senders[Channel.SMS].send(fake)
    assert result.sent and fake_provider.SENT == [fake]
    # A plain number is Twilio's, which is not configured here.
    other = await senders[Channel.SMS].send(a_delivery("sms", "+15550002"))
    assert other.reason == "twilio:not_configured"


def test_without_the_line_the_fake_is_unknown() -> None:
    assert "fake" not in {s.name for s in registry.settings_class().specs}
