"""The push channel: one delivery goes to FCM or APNs by ``target.platform``."""

from __future__ import annotations

from schemas.notifications import Delivery
from sinks.providers.base import Sender, SendResult, permanent


class PushSender:
    provider = "push"

    def __init__(self, fcm: Sender | None = None, apns: Sender | None = None) -> None:
        self.senders: dict[str, Sender | None] = {"fcm": fcm, "apns": apns}

    async def send(self, delivery: Delivery) -> SendResult:
        platform = delivery.target.platform
        if platform is None:
            return permanent("push:no_platform", "push target has no platform (fcm|apns)")
        sender = self.senders.get(platform)
        if sender is None:
            return permanent(f"{platform}:not_configured", f"no {platform} credentials set")
        return await sender.send(delivery)

    async def aclose(self) -> None:
        for sender in self.senders.values():
            if sender is not None:
                await sender.aclose()
