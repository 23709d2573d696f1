"""The `clarion` console command: the Faust app's CLI (worker, agents, tables…) plus
Clarion's own commands (`clarion demo`, `clarion token`, `clarion gateway`,
`clarion replay`).

Clarion's own commands need the settings only: they run without building the worker's app
(streams/commands.py). Every other command gets the app, built on first use (streams/app.py).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

import click


def subcommand(args: Sequence[str]) -> str | None:
    """The command name in `args` (what follows `clarion` and its global options)."""
    from faust.cli.faust import cli

    takes_value = {
        name
        for param in cli.params
        if isinstance(param, click.Option) and not param.is_flag and not param.count
        for name in param.opts
    }
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            return next(rest, None)
        if arg.startswith("-"):
            if arg in takes_value:
                next(rest, None)  # the option's value
            continue
        return arg
    return None


def main() -> None:
    from streams import commands  # registers Clarion's commands on Faust's CLI

    if subcommand(sys.argv[1:]) in commands.APP_FREE:
        from faust.cli.faust import cli

        cli()  # no app: Faust's CLI with a plain Command needs none
    else:
        from streams.app import app

        tune_gc(app.settings.gc_threshold)
        use_loop(app.settings.event_loop)
        app.main()


def use_loop(name: str) -> None:
    """Run the worker on `name`'s event loop: mode (under Faust) makes its loop through the
    policy this sets."""
    if name == "uvloop":
        import mode.loop

        mode.loop.use("uvloop")


def tune_gc(threshold: int) -> None:
    """Collect young objects every `threshold` allocations instead of CPython's 700 (0:
    leave it); the older generations keep their ratios."""
    if threshold > 0:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)


if __name__ == "__main__":
    main()
