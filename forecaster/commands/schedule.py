"""``forecaster schedule --every 1h``: the built-in scheduler, for a host without cron, systemd or Kubernetes.

Every period (aligned to the clock: ``--every 1h`` runs at each full hour, ``15m`` at :00, :15, ...) it runs
``forecaster retrain`` with the remaining arguments in a fresh process, so a crash or a leak in one run never
reaches the next, and logs its outcome: the decision line, or "busy" (exit 75: another retrain of the spec holds
its lock), or the failure with its exit status. A run that overruns the period delays the next tick rather than
overlapping it. SIGTERM or Ctrl-C stops the loop after the current run. The recipes for cron, systemd and
Kubernetes are in ``docs/scheduling/``.

    forecaster schedule --every 1h -- --config sim_intraday --if-drift
"""

from __future__ import annotations

import argparse
import math
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> float:
    """``30s``, ``15m``, ``1h``, ``1d`` (or a bare number of seconds) to seconds > 0."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"--every takes a period like 30s, 15m, 1h or 1d; got {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--every", type=parse_every, required=True, help="period: 30s, 15m, 1h, 1d")
    parser.add_argument("--max-runs", type=int, help="stop after this many runs (default: run until stopped)")
    parser.add_argument("--now", action="store_true", help="run once at start, then on the clock")
    parser.add_argument("retrain_args", nargs=argparse.REMAINDER, help="arguments of forecaster retrain, after --")


def next_tick(now: float, every: float) -> float:
    """The next multiple of ``every`` seconds since the epoch after ``now``."""
    return (math.floor(now / every) + 1) * every


def run(args: argparse.Namespace) -> int:
    from forecaster.errors import UsageError

    forwarded = [a for a in args.retrain_args if a != "--"]
    if args.max_runs is not None and args.max_runs < 1:
        raise UsageError("--max-runs must be ≥ 1")
    stopping = {"now": False}

    def stop(signum: int, _frame: object) -> None:
        stopping["now"] = True
        print(f"schedule: signal {signum}: stopping after the current run", flush=True)

    signal.signal(signal.SIGTERM, stop)
    command = [sys.executable, "-m", "forecaster.cli", "retrain", *forwarded]
    print(f"schedule: every {args.every:g} s: {' '.join(command[2:])}", flush=True)
    runs = 0
    due = time.time() if args.now else next_tick(time.time(), args.every)
    try:
        while not stopping["now"] and (args.max_runs is None or runs < args.max_runs):
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)  # SIGTERM interrupts nothing here: the loop checks the flag after the run
            if stopping["now"]:
                break
            started = datetime.now(UTC).isoformat(timespec="seconds")
            done = subprocess.run(command, capture_output=True, text=True)
            runs += 1
            print(f"schedule: run {runs} at {started}: {_outcome(done)}", flush=True)
            due = next_tick(max(time.time(), due), args.every)
    except KeyboardInterrupt:
        print("schedule: interrupted", flush=True)
    return 0


def _outcome(done: subprocess.CompletedProcess[str]) -> str:
    if done.returncode == 75:
        return "busy (another retrain of the spec holds its lock)"
    decision = next((line for line in done.stdout.splitlines() if line.startswith("decision: ")), None)
    if done.returncode == 0:
        return decision or "done"
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return f"failed (exit {done.returncode}): {tail}"
