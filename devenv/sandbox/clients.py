"""How each real SDK is pointed at the sandbox: configuration, not stubs.

* sendgrid: ``SendGridAPIClient(api_key=..., host=url)`` -- a documented argument.
* twilio: ``client.api.base_url = url`` -- the public ``base_url`` attribute of the
  ``Api`` domain (twilio's ``Domain.__init__(twilio, base_url)``); every request
  URI is built from it. ``edge``/``region`` must stay unset, or twilio rewrites
  the host into ``api.<edge>.<region>.twilio.com``.
* firebase-admin: ``token_uri`` in the service-account JSON is standard config.
  The FCM send URL, however, is the hard-coded class attribute
  ``_MessagingService.FCM_URL`` with no emulator/env override (checked in
  firebase-admin 7.7), so a minimal subclass overrides only that URL (its
  ``_fcm_url``) and is registered as the app's messaging service.
* aioapns: no host option, and its proxy option is broken on Python 3.11, so a
  minimal subclass of its protocol class overrides only ``APNS_SERVER`` and
  ``APNS_PORT``; the sandbox CA is trusted via its ``ssl_context`` argument.

SDK imports are local so importing the sandbox itself never needs the SDKs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import firebase_admin
    from sendgrid import SendGridAPIClient
    from twilio.rest import Client as TwilioClient


def sendgrid_client(base_url: str, api_key: str = "SG.sandbox") -> SendGridAPIClient:
    from sendgrid import SendGridAPIClient

    return SendGridAPIClient(api_key=api_key, host=base_url)


def twilio_client(
    base_url: str, account_sid: str = "AC" + "0" * 32, auth_token: str = "sandbox"
) -> TwilioClient:
    from twilio.rest import Client

    client = Client(account_sid, auth_token)
    client.api.base_url = base_url
    return client


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
    """Initialise a firebase app whose messaging service sends to ``base_url``."""
    import firebase_admin
    from firebase_admin import _utils, credentials, messaging
    from google.oauth2 import service_account as google_service_account

    if not isinstance(service_account, dict):
        service_account = json.loads(Path(service_account).read_text())

    class LoopbackOnlyCredentials(google_service_account.Credentials):  # type: ignore[misc]
        # After each token refresh google-auth looks up a "regional access boundary" at
        # iamcredentials.googleapis.com in a background thread. A sandbox credential must
        # never leave loopback, so this one says no lookup is needed; the token exchange
        # itself (against the sandbox's token_uri) stays the SDK's own.
        def _is_regional_access_boundary_lookup_required(self) -> bool:
            return False

    certificate = credentials.Certificate(service_account)
    certificate._g_credential = LoopbackOnlyCredentials.from_service_account_info(
        service_account, scopes=credentials._scopes
    )
    app = firebase_admin.initialize_app(certificate, name=name)

    fcm_url = f"{base_url.rstrip('/')}/v1/projects/{{0}}/messages:send"

    class SandboxMessagingService(messaging._MessagingService):
        # Only the URL differs; auth, encoding, retries and error mapping are the SDK's.
        # (Overriding the FCM_URL class attribute is not enough: __init__ reads
        # ``_MessagingService.FCM_URL`` by explicit class name.)
        def __init__(self, app: firebase_admin.App) -> None:
            super().__init__(app)
            self._fcm_url = fcm_url.format(self._project_id)

    # Same per-app lazy cache ``messaging.send(app=...)`` reads: registering first
    # makes every messaging call on this app use the subclass.
    _utils.get_app_service(app, messaging._MESSAGING_ATTRIBUTE, SandboxMessagingService)
    return app


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
    import ssl
    from urllib.parse import urlsplit

    from aioapns import APNs
    from aioapns.connection import APNsDevelopmentClientProtocol

    url = urlsplit(apns_url)
    if url.hostname is None or url.port is None:
        raise ValueError(f"need https://host:port, got {apns_url!r}")
    # Declared types: mypy does not carry narrowing into the class body below.
    host: str = url.hostname
    port: int = url.port

    class SandboxAPNsProtocol(APNsDevelopmentClientProtocol):
        # Only where to connect differs; HTTP/2, JWT auth and parsing are aioapns'.
        APNS_SERVER = host
        APNS_PORT = port

    client = APNs(
        key=key or apns_signing_key(),
        key_id=key_id,
        team_id=team_id,
        topic=topic,
        use_sandbox=True,
        ssl_context=ssl.create_default_context(cafile=str(ca_file)),
    )
    # The pool reads protocol_class (an instance attribute) for every new connection.
    client.pool.protocol_class = SandboxAPNsProtocol
    return client
