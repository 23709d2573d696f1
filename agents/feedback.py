"""feedback: outcomes a provider reports after accepting a send (SendGrid's Event Webhook):
a bounce removes the address and dead-letters the delivery, a spam report or unsubscribe
opts the user out of email, a delivery confirmation becomes a `delivered` receipt.
A dead-lettered bounce counts as the sinks' dead letters do (streams/deadletter.delivery).

Feedback names no lane, so in a lane-split deployment only the group serving the home lane
acts on it (logic/ownership.py): one receipt, one dead letter, one contact update."""

from __future__ import annotations

from typing import TYPE_CHECKING

import faust

from logic.ownership import owns_laneless
from logic.provider_feedback import feedback_reason
from logic.receipts import for_feedback
from schemas.common import Channel
from schemas.control import FeedbackKind, ProviderFeedback
from streams import deadletter, receipts
from tables.profile_updates import disable_channel, remove_address

if TYPE_CHECKING:
    from streams.clarion_app import ClarionApp
    from streams.context import StageContext


def install(app: ClarionApp, ctx: StageContext) -> None:
    topics = ctx.topics

    @app.agent(topics.feedback, name="feedback", concurrency=1)
    async def feedback(stream: faust.StreamT[ProviderFeedback]) -> None:
        owner = owns_laneless(app.settings.served_lanes)
        async for event in stream.events():
            if not owner:
                continue  # the home lane's group acts on it
            f: ProviderFeedback = event.value
            reason = feedback_reason(f)
            if f.kind is FeedbackKind.BOUNCED:
                await remove_address(ctx, f.recipient_id, f.address, reason)
            if f.kind is FeedbackKind.COMPLAINED:
                await disable_channel(ctx, f.recipient_id, Channel.EMAIL, reason)
            receipt = for_feedback(f)
            if f.kind in (FeedbackKind.BOUNCED, FeedbackKind.FAILED):
                # The feedback record is what is dead-lettered (the delivery's bytes are long
                # gone), through the sinks' path: same headers, receipt and metrics.
                await deadletter.delivery(
                    ctx,
                    event.message,
                    receipt,
                    detail=f"the provider reported {f.kind.value} after accepting the send",
                    provider=f.provider,
                    attempts=None if f.attempt is None else f.attempt + 1,
                )
            else:
                await (await receipts.send(ctx, receipt))
