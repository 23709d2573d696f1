"""The `clarion` console command: the Faust app's CLI (worker, agents, tables…) plus
Clarion's own commands (`clarion demo`, `clarion token`,
`clarion replay`)."""

from __future__ import annotations


def main() -> None:
    from streams.app import app

    app.main()


if __name__ == "__main__":
    main()
