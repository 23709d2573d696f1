"""Build the senders the settings configure: ``build_senders(ProviderSettings())``."""

from __future__ import annotations

from schemas.common import Channel
from sinks.providers.base import Sender
from sinks.providers.config import ProviderSettings


def build_senders(cfg: ProviderSettings) -> dict[Channel, Sender]:
    """One sender per configured channel; unconfigured channels are absent.

    Push is present when FCM or APNs is configured (a push for the other platform is then a
    PERMANENT ``<platform>:not_configured``). Webhook is present when its signing secret
    (CLARION_WEBHOOK_SECRET) is set.
    Call ``aclose()`` on each sender at shutdown.
    """
    from sinks.providers.push import PushSender
    from sinks.providers.webhook import WebhookSender

    timeout = cfg.send_timeout_s
    senders: dict[Channel, Sender] = {}
    fcm: Sender | None = None
    apns: Sender | None = None
    if cfg.fcm_credentials_file is not None:
        from sinks.providers.fcm import FcmSender

        fcm = FcmSender(
            cfg.fcm_credentials_file,
            base_url=cfg.fcm_url,
            timeout_s=timeout,
            address_kind=cfg.fcm_address_kind,
        )
    if cfg.apns_key_file is not None:
        from sinks.providers.apns import ApnsSender

        # The settings validator guarantees the rest of the APNs fields.
        assert cfg.apns_key_id and cfg.apns_team_id and cfg.apns_topic
        apns = ApnsSender(
            key_file=cfg.apns_key_file,
            key_id=cfg.apns_key_id,
            team_id=cfg.apns_team_id,
            topic=cfg.apns_topic,
            use_sandbox=cfg.apns_use_sandbox,
            apns_url=cfg.apns_url,
            ca_file=cfg.apns_ca_file,
            timeout_s=timeout,
        )
    if fcm is not None or apns is not None:
        senders[Channel.PUSH] = PushSender(fcm=fcm, apns=apns)
    if cfg.sendgrid_api_key is not None:
        from sinks.providers.sendgrid import SendGridSender

        senders[Channel.EMAIL] = SendGridSender(
            api_key=cfg.sendgrid_api_key.get_secret_value(),
            email_from=cfg.email_from,
            base_url=cfg.sendgrid_url,
            timeout_s=timeout,
            threads=cfg.sync_threads,
        )
    if cfg.twilio_account_sid is not None and cfg.twilio_auth_token is not None:
        from sinks.providers.twilio import TwilioSender

        senders[Channel.SMS] = TwilioSender(
            account_sid=cfg.twilio_account_sid,
            auth_token=cfg.twilio_auth_token.get_secret_value(),
            sms_from=cfg.sms_from,
            messaging_service_sid=cfg.twilio_messaging_service_sid,
            status_callback_url=cfg.twilio_status_callback_url,
            base_url=cfg.twilio_url,
            timeout_s=timeout,
        )
    if cfg.webhook_secret is not None:
        senders[Channel.WEBHOOK] = WebhookSender(
            secret=cfg.webhook_secret.get_secret_value(),
            timeout_s=timeout,
            max_connections=cfg.webhook_max_connections,
            max_keepalive=cfg.webhook_max_keepalive,
        )
    return senders


async def close_senders(senders: dict[Channel, Sender]) -> None:
    for sender in senders.values():
        await sender.aclose()
