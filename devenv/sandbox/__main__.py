"""``python -m devenv.sandbox``: run the sandbox until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from types import FrameType

from devenv.sandbox.server import Sandbox


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Local provider sandbox (FCM, APNs, SendGrid, Twilio, webhooks)"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    args = parser.parse_args(argv)

    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with Sandbox(args.host, args.port) as sandbox:
        # One JSON line first, so scripts can read the URLs from stdout.
        print(json.dumps(sandbox.urls()), flush=True)
        # wait() with a timeout so signals are handled promptly on every platform.
        while not done.wait(0.5):
            pass


if __name__ == "__main__":
    main()
