"""``forecaster rollback``: point ``champion`` back at ``previous_champion`` (the version a retrain replaced); the
replaced champion becomes ``previous_champion``, so a second rollback undoes the first. A running ``forecaster
serve`` picks the change up at its next alias poll."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="SPEC", default="sim_intraday", help="experiment spec (name or path)")


def run(args: argparse.Namespace) -> int:
    from forecaster.config import load_spec
    from training.retrain import rollback
    from training.tracking import registered_model_name

    spec = load_spec(args.config)
    champion, previous = rollback(spec.name)
    print(f"{registered_model_name(spec.name)}: champion -> version {champion} (previous_champion -> {previous})")
    return 0
