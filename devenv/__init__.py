"""Development environment: a real Kafka broker, sample traffic, the demo.

Its third-party needs beyond a worker's are pyproject.toml's `dev` extra. Nothing a worker
runs imports devenv except the `clarion demo` command (lazily); on a worker installed
without the extra, importing devenv ends the process with one line that says so."""

from __future__ import annotations

from importlib.util import find_spec

# What devenv imports (some of it lazily) that only the `dev` extra installs.
DEV_ONLY = ("trustme", "testcontainers", "h2")
NEEDS_DEV_EXTRA = "the demo needs the dev extra: pip install -e '.[dev]'"


def require_dev_extra(modules: tuple[str, ...] = DEV_ONLY) -> None:
    """SystemExit with NEEDS_DEV_EXTRA when one of `modules` is not installed."""
    if any(find_spec(name) is None for name in modules):
        raise SystemExit(NEEDS_DEV_EXTRA)


require_dev_extra()
