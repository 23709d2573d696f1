"""Real SDK clients pointed at the sandbox: configuration, not stubs.

How a base URL is applied to each SDK is production code's business and lives in
``sinks.providers.clients`` (one implementation); this module adds only sandbox
conveniences: throwaway credentials (a service-account JSON whose ``token_uri`` is the
sandbox's token endpoint, a P-256 key shaped like an APNs .p8) and defaults.

SDK imports are local so importing the sandbox itself never needs the SDKs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sinks.providers import clients as providers

if TYPE_CHECKING:
    import firebase_admin
    from sendgrid import SendGridAPIClient
    from twilio.rest import Client as TwilioClient


def sendgrid_client(base_url: str, api_key: str = "SG.sandbox") -> SendGridAPIClient:
    return providers.sendgrid_client(base_url, api_key)


def twilio_client(
    base_url: str, account_sid: str = "AC" + "0" * 32, auth_token: str = "sandbox"
) -> TwilioClient:
    return providers.twilio_client(base_url, account_sid, auth_token)


def service_account_info(token_uri: str, project_id: str = "clarion-sandbox") -> dict[str, Any]:
    """A service-account JSON with a fresh RSA key, trusted only by the sandbox."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "sandbox",
        "private_key": pem,
        "client_email": f"sandbox@{project_id}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


def fcm_app(
    base_url: str, service_account: dict[str, Any] | str | Path, name: str = "clarion-sandbox"
) -> firebase_admin.App:
    """A firebase app whose messaging service sends to ``base_url`` (SDK retry defaults)."""
    return providers.fcm_app(service_account, base_url=base_url, name=name)


def apns_signing_key() -> str:
    """A fresh P-256 key (PEM), shaped like an APNs .p8 auth key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def apns_client(
    apns_url: str,
    ca_file: str | Path,
    topic: str = "com.example.clarion",
    key: str | None = None,
    key_id: str = "SANDBOXKEY",
    team_id: str = "SANDBOXTEAM",
) -> Any:
    """An aioapns client (token auth, ``use_sandbox=True``) sending to ``apns_url``.

    Must be called with a running loop (aioapns grabs it in its constructor).
    """
    return providers.apns_client(
        key=key or apns_signing_key(),
        key_id=key_id,
        team_id=team_id,
        topic=topic,
        use_sandbox=True,
        apns_url=apns_url,
        ca_file=ca_file,
    )
