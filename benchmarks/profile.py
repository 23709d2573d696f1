"""Where a worker's CPU goes, per pipeline stage: py-spy samples the worker process during a
benchmark's measured phase, and each sample is charged to the innermost Clarion stage on its
stack (the rules below), or to "Faust, aiokafka, event loop" when no stage is on it.

py-spy is a sampling profiler (a dev dependency); `benchmarks.throughput --profile` uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

# (stage, frame pattern), innermost match wins. A frame reads "function (path:line)".
STAGE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (stage, re.compile(pattern))
    for stage, pattern in (
        # py-spy names functions by their qualified name: "install.<locals>._one (path:line)".
        ("ingest", r"\b(?:_one|_ingest|apply) \(.*agents/ingest\.py"),
        ("route", r"\b(?:one|route|route_one) \(.*agents/route\.py"),
        ("digest fold", r"\bgather \(.*agents/digest\.py"),
        ("digest flush (ticks)", r"\b(?:on_tick|send_ticks|flush_due) \(.*agents/digest\.py"),
        ("emit (plan, receipts, deliveries)", r"\bemit \(.*agents/emit\.py"),
        ("in-app sink", r"\(.*sinks/inapp\.py"),
        ("outbox sink", r"\(.*sinks/outbox\.py"),
        ("provider sink", r"\(.*sinks/deliver\.py"),
        ("other agents", r"\(.*agents/(?!ingest|route|digest|emit)\w+\.py"),
    )
)
OUTSIDE = "Faust, aiokafka, event loop (no stage on the stack)"
_FRAME = re.compile(r"^(.*) (\d+)$")


def py_spy() -> str | None:
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


@contextlib.asynccontextmanager
async def sampling(pid: int, out: Path, rate: int = 250) -> AsyncIterator[Path]:
    """py-spy records `pid` (raw collapsed stacks, GIL-holding samples only) until the
    block ends; yields the output path."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    proc = await asyncio.create_subprocess_exec(
        exe, "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate), "--gil",
        "--output", str(out), "--nonblocking",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield out
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def stage_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        for stage, pattern in STAGE_RULES:
            if pattern.search(frame):
                return stage
    return OUTSIDE


def stage_shares(raw: Path) -> dict[str, float]:
    """Each stage's share of the samples in a py-spy raw file (sums to 1)."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        match = _FRAME.match(line.strip())
        if match:
            counts[stage_of(match.group(1))] += int(match.group(2))
    total = sum(counts.values()) or 1
    return {stage: n / total for stage, n in counts.most_common()}
