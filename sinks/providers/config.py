"""Provider settings, from ``CLARION_*`` environment variables (pydantic-settings).

Production leaves the URLs at their defaults; tests and the demo point them at the local
sandbox (see ``devenv.sandbox.env.provider_env``). A provider is configured when its
credentials are set; a half-configured provider is an error at startup, not at first send.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GOOGLE_FCM_URL = "https://fcm.googleapis.com"


class ProviderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLARION_", extra="ignore")

    # -- FCM (firebase-admin) -------------------------------------------------------------
    fcm_credentials_file: Path | None = Field(
        default=None, description="Service-account JSON for FCM; unset = FCM not configured."
    )
    fcm_url: str = Field(
        default=GOOGLE_FCM_URL, description="FCM API base URL (override only for the sandbox)."
    )
    fcm_address_kind: Literal["token", "fid"] = Field(
        default="token",
        description=(
            "What push target addresses for FCM are: registration tokens ('token', deprecated "
            "in firebase-admin 7.7 but what apps register today) or installation ids ('fid')."
        ),
    )

    # -- APNs (aioapns, token auth) -------------------------------------------------------
    apns_key_file: Path | None = Field(
        default=None, description="APNs auth key (.p8); unset = APNs not configured."
    )
    apns_key_id: str | None = Field(default=None, description="Key ID of the .p8 key.")
    apns_team_id: str | None = Field(default=None, description="Apple developer team ID.")
    apns_topic: str | None = Field(default=None, description="App bundle id (apns-topic).")
    apns_use_sandbox: bool = Field(
        default=False, description="Use Apple's development APNs host instead of production."
    )
    apns_url: str | None = Field(
        default=None, description="Override the APNs host, e.g. https://127.0.0.1:1234."
    )
    apns_ca_file: Path | None = Field(
        default=None, description="Extra CA (PEM) to trust for APNs, besides the system CAs."
    )

    # -- SendGrid ---------------------------------------------------------------------------
    sendgrid_api_key: SecretStr | None = Field(
        default=None, description="SendGrid API key; unset = email not configured."
    )
    sendgrid_url: str = Field(
        default="https://api.sendgrid.com", description="SendGrid API base URL."
    )
    sendgrid_webhook_public_key: str | None = Field(
        default=None,
        description="Event Webhook verification key (base64 DER, as SendGrid shows it).",
    )
    email_from: str = Field(
        default="notifications@example.com", description="From address of every email."
    )

    # -- Twilio -----------------------------------------------------------------------------
    twilio_account_sid: str | None = Field(
        default=None, description="Twilio account SID; unset = SMS not configured."
    )
    twilio_auth_token: SecretStr | None = Field(default=None, description="Twilio auth token.")
    twilio_url: str = Field(default="https://api.twilio.com", description="Twilio API base URL.")
    sms_from: str | None = Field(default=None, description="Sending number (E.164).")
    twilio_messaging_service_sid: str | None = Field(
        default=None, description="Messaging service to send from (instead of sms_from)."
    )
    twilio_status_callback_url: str | None = Field(
        default=None,
        description="Status callback URL; '?delivery_id=<id>' is appended for each message.",
    )

    # -- Webhook ----------------------------------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description=(
            "HMAC-SHA256 secret that signs outgoing webhooks (Clarion-Signature). Unset: the "
            "webhook channel is not configured and goes to the console outbox."
        ),
    )
    webhook_max_connections: int = Field(
        default=100, ge=1, description="Connection pool size of the webhook HTTP client."
    )
    webhook_max_keepalive: int = Field(
        default=20, ge=0, description="Idle keep-alive connections the webhook client keeps."
    )

    # -- All senders --------------------------------------------------------------------------
    send_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Upper bound of one send, retries included."
    )
    sync_threads: int = Field(
        default=16, ge=1, le=256, description="Threads for the synchronous SDK (sendgrid)."
    )

    @property
    def apns_configured(self) -> bool:
        return self.apns_key_file is not None

    @property
    def twilio_configured(self) -> bool:
        return self.twilio_account_sid is not None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.apns_configured:
            missing = [
                name
                for name in ("apns_key_id", "apns_team_id", "apns_topic")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(f"apns_key_file is set but {missing} are not")
        if self.twilio_configured:
            if self.twilio_auth_token is None:
                raise ValueError("twilio_account_sid is set but twilio_auth_token is not")
            if not (self.sms_from or self.twilio_messaging_service_sid):
                raise ValueError("Twilio needs sms_from or twilio_messaging_service_sid")
        return self
