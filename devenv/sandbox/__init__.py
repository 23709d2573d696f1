"""Local provider sandbox: FCM, APNs, SendGrid, Twilio and a webhook consumer on 127.0.0.1.

The real SDKs are pointed at it by configuration (see ``sinks.providers.clients``), so
tests, benchmarks and the demo exercise real client code without real providers;
``env.provider_env`` gives a worker process the settings for it.
"""

from devenv.sandbox.faults import FaultRule
from devenv.sandbox.record import SendRecord
from devenv.sandbox.server import Sandbox

__all__ = ["FaultRule", "Sandbox", "SendRecord"]
