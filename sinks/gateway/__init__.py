"""`clarion gateway`: a process that only holds in-app client connections (SSE).

It is not a Faust worker and joins no consumer group. It tells the workers who is connected
(`presence` topic: ONLINE/OFFLINE per user, a LEASE per partition renewed every third of
CLARION_GATEWAY_LEASE_S) and reads the in-app items for its users from its own partition of
`gateway.deliveries`. Connection servers scale apart from the processing workers.
"""

from sinks.gateway.server import run_gateway, serve

__all__ = ["run_gateway", "serve"]
