"""``provider_env``: the CLARION_* variables that point a worker's senders at a sandbox."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from devenv.sandbox.clients import apns_signing_key, service_account_info
from devenv.sandbox.fcm import TOKEN_PATH
from devenv.sandbox.server import Sandbox

SMS_FROM = "+15550000000"
APNS_TOPIC = "com.example.clarion"


def provider_env(
    sandbox: Sandbox | Mapping[str, str],
    workdir: Path,
    *,
    twilio_status_callback_url: str | None = None,
) -> dict[str, str]:
    """Write throwaway credentials into ``workdir`` and return the environment for all five
    channels (push via FCM and APNs, email, SMS, webhook).

    ``sandbox`` is a running ``Sandbox`` or the ``urls()`` JSON that
    ``python -m devenv.sandbox`` prints (for a sandbox in another process). The Twilio
    status callback defaults to a sandbox URL nobody calls: it is there so each recorded
    SMS carries its delivery id (``SendRecord.delivery_id``); pass the worker's real
    callback endpoint instead when it has one.
    """
    urls = sandbox.urls() if isinstance(sandbox, Sandbox) else dict(sandbox)
    workdir.mkdir(parents=True, exist_ok=True)
    account = workdir / "fcm-service-account.json"
    account.write_text(json.dumps(service_account_info(urls["fcm"] + TOKEN_PATH)))
    key = workdir / "apns-key.p8"
    key.write_text(apns_signing_key())
    env = {
        "CLARION_FCM_CREDENTIALS_FILE": str(account),
        "CLARION_FCM_URL": urls["fcm"],
        "CLARION_APNS_KEY_FILE": str(key),
        "CLARION_APNS_KEY_ID": "SANDBOXKEY",
        "CLARION_APNS_TEAM_ID": "SANDBOXTEAM",
        "CLARION_APNS_TOPIC": APNS_TOPIC,
        "CLARION_APNS_USE_SANDBOX": "true",
        "CLARION_APNS_URL": urls["apns"],
        "CLARION_APNS_CA_FILE": urls["apns_ca_file"],
        "CLARION_SENDGRID_API_KEY": "SG.sandbox",
        "CLARION_SENDGRID_URL": urls["sendgrid"],
        "CLARION_SENDGRID_WEBHOOK_PUBLIC_KEY": urls["sendgrid_webhook_public_key"],
        "CLARION_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "CLARION_TWILIO_AUTH_TOKEN": "sandbox",
        "CLARION_TWILIO_URL": urls["twilio"],
        "CLARION_SMS_FROM": SMS_FROM,
        "CLARION_TWILIO_STATUS_CALLBACK_URL": twilio_status_callback_url
        or f"{urls['twilio']}/_sandbox/twilio-status",
    }
    if urls.get("webhook_secret"):
        env["CLARION_WEBHOOK_SECRET"] = urls["webhook_secret"]
    return env
