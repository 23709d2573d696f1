"""Local provider sandbox: FCM, SendGrid and Twilio HTTP APIs on 127.0.0.1.

The real SDKs are pointed at it by configuration (see ``clients``), so tests,
benchmarks and the demo exercise real client code without real providers.
"""

from devenv.sandbox.faults import FaultRule
from devenv.sandbox.record import SendRecord
from devenv.sandbox.server import Sandbox

__all__ = ["FaultRule", "Sandbox", "SendRecord"]
