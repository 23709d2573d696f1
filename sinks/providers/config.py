"""Provider settings, from ``CLARION_*`` environment variables (pydantic-settings).

Each provider module declares its own settings class (a ``SenderSettings``: fields named
after the provider, e.g. ``fcm_url`` = ``CLARION_FCM_URL``); ``ProviderSettings`` is the
class that merges every registered provider's (``registry.settings_class``), built on first
use so importing this module loads no SDK. Production leaves the URLs at their defaults;
tests and the demo point them at the local sandbox (see ``devenv.sandbox.env.provider_env``).
A provider is configured when its credentials are set; a half-configured provider is an
error at startup, not at first send.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from sinks.providers.spec import ProviderSpec


class SenderSettings(BaseSettings):
    """What every sender shares; the base of each provider's settings class."""

    model_config = SettingsConfigDict(env_prefix="CLARION_", extra="ignore")
    # The providers whose settings the merged class holds (set by registry.settings_class).
    specs: ClassVar[tuple[ProviderSpec[Any], ...]] = ()

    send_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Upper bound of one send, retries included."
    )
    sync_threads: int = Field(
        default=16, ge=1, le=256, description="Threads for the synchronous SDK (sendgrid)."
    )


def __getattr__(name: str) -> Any:
    # `ProviderSettings` stays importable from here (tests, benchmarks, the sandbox README);
    # built lazily because it imports every provider module, and with it their SDKs.
    if name == "ProviderSettings":
        from sinks.providers.registry import settings_class

        return settings_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
