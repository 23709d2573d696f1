"""Mask contact points for logs and operator views: enough to recognise, not to use."""

from __future__ import annotations


def mask_address(address: str) -> str:
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if address.startswith("+"):
        return f"{address[:3]}{'*' * max(len(address) - 6, 3)}{address[-3:]}"
    if address.startswith(("http://", "https://")):
        scheme, _, rest = address.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/***"
    if len(address) <= 12:
        return address[:2] + "***"
    return f"{address[:4]}…{address[-4:]}"
