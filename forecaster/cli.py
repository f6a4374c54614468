"""The ``forecaster`` command. Sub-commands import their modules lazily so ``forecaster --help`` is instant.

Exit codes (DESIGN section 7): 0 ok, 2 bad input or usage (message on stderr), 1 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE = 0, 1, 2

# name -> (module in forecaster.commands, one-line help). Each module has add_arguments(parser) and run(args).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "simulate a market and print a summary of it (the pipeline grows with later releases)"),
    "simulate": ("simulate", "write a simulated market: bars, trades, option chain, IV index and truth"),
    "validate": ("validate", "check market-data and portfolio files against the data contracts"),
    "features": ("features", "compute the causal feature table of a market (and, apart, its targets)"),
    "greeks": ("greeks", "a book's Greeks in quote currency by position and expiry bucket, and its margin"),
    "drift": ("drift", "the distribution of a book's Greeks, P&L and margin at t+h, and their drift from now"),
    "train": ("train", "walk-forward fit and evaluation of the spec's models; register the best in MLflow"),
    "evaluate": ("evaluate", "walk-forward evaluation of the spec's models: metrics per horizon, DM tests, MLflow"),
    "tune": ("tune", "tune a model's hyper-parameters with Optuna (TPE, pruning), each trial a nested MLflow run"),
    "compare": ("compare", "the models of a tracked run side by side (MLflow), and a report with their plots"),
    "backtest": ("backtest", "hedge and margin policies stepped through a simulated market; cost-risk frontiers"),
    "serve": ("serve", "the HTTP service: forecasts and a book's drift from the registered champion model"),
    "rebalance": ("rebalance", "the service's reference client: a desk trading a simulated market through its API"),
    "retrain": ("retrain", "the scheduled job: train a challenger, gate it against the champion, promote or keep"),
    "rollback": ("rollback", "point the champion alias back at the previous champion"),
    "schedule": ("schedule", "run forecaster retrain on a clock (every 1h, ...) when no cron/systemd/k8s is at hand"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors: exit 2 with the message on stderr
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="forecaster",
        description="Forecast how an options book's Greeks and margin will drift, and act early.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text)
    return parser


def _command_module(name: str):
    return importlib.import_module(f"forecaster.commands.{COMMANDS[name][0]}")


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace | None, int]:
    """Parse once to find the command, let it add its own arguments (lazy import), then parse fully.

    Returns (args, 0), or (None, exit code) when argparse exits (``--help``: 0, usage errors: 2).
    """
    try:
        sub_action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        # the first word that names a command: add its arguments before parsing, so `COMMAND --help` lists them
        command = next((word for word in argv if not word.startswith("-")), None)
        if command in COMMANDS:
            _command_module(command).add_arguments(sub_action.choices[command])
        known, _ = parser.parse_known_args(argv)
        if known.command is None:
            parser.print_help()
            return None, EXIT_USAGE if argv else EXIT_OK
        return parser.parse_args(argv), EXIT_OK
    except SystemExit as exc:
        return None, int(exc.code or 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, code = _parse(build_parser(), argv)
    if args is None:
        return code
    module = _command_module(args.command)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from forecaster.errors import ForecasterError

    try:
        return int(module.run(args) or EXIT_OK)
    except ForecasterError as exc:
        print(f"forecaster {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception as exc:  # internal error: say so, keep the traceback for the report
        traceback.print_exc(file=sys.stderr)
        print(f"forecaster {args.command}: internal error: {exc!r}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
