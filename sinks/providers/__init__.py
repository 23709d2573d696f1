"""Production provider senders: one ``Delivery`` through the real SDKs, every outcome classified.

Pure async code (no Faust). ``build_senders(ProviderSettings())`` gives one ``Sender`` per
configured channel; ``Sender.send`` never raises, it returns a ``SendResult``.
"""

from sinks.providers.base import Outcome, Sender, SendResult
from sinks.providers.config import ProviderSettings
from sinks.providers.factory import build_senders, close_senders

__all__ = ["Outcome", "ProviderSettings", "SendResult", "Sender", "build_senders", "close_senders"]
