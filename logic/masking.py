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


def describe_invalid(exc: Exception) -> str:
    """Why a record failed validation, without the rejected values: pydantic's own message
    quotes each input (`input_value='bob@example.com'`), which would put contact points in
    the log."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return type(exc).__name__
    try:
        found = errors(include_input=False, include_url=False, include_context=False)
    except TypeError:  # an `errors` that is not pydantic's
        return type(exc).__name__
    parts = [f"{'.'.join(str(x) for x in e['loc']) or '(record)'}: {e['msg']}" for e in found]
    return "; ".join(parts[:5]) + (f"; … {len(parts) - 5} more" if len(parts) > 5 else "")
