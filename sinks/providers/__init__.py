"""Production provider senders: one ``Delivery`` through the real SDKs, every outcome classified.

Pure async code (no Faust). Each provider is one module declaring a ``ProviderSpec``
(``spec.py``), listed once in ``registry.PROVIDER_MODULES``. ``build_senders(ProviderSettings())``
gives one ``Sender`` per configured channel; ``Sender.send`` never raises, it returns a
``SendResult``.
"""

from typing import Any

from sinks.providers.base import Outcome, Sender, SendResult
from sinks.providers.factory import build_senders, close_senders

__all__ = ["Outcome", "ProviderSettings", "SendResult", "Sender", "build_senders", "close_senders"]


def __getattr__(name: str) -> Any:
    # Built on first use: it imports every provider module (and their SDKs).
    if name == "ProviderSettings":
        from sinks.providers.registry import settings_class

        return settings_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
