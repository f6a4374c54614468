"""``forecaster compare``: the models of a tracked run side by side, and a report with their plots.

It reads the spec's MLflow experiment (``training.tracking``): the latest finished parent run (``--run-id`` picks
another; a model's child run id picks its parent), and every child run's metrics. It prints one row per model with
the columns ``qlike/rv/h*``, ``coverage90/rv/h*``, ``dm_p/rv/h*`` and ``oracle_gap/rv/h*`` (horizons increasing),
the best value of each column marked ``*``:

- ``qlike`` and ``oracle_gap``: the lowest;
- ``coverage90``: the closest to 0.90;
- ``dm_p``: the lowest p-value among the models better than HAR (``dm_stat`` < 0); none marked when no model is;
- the oracle (family ``oracle``) is shown but never marked: it is the physical limit, not a candidate.

``--out report.md`` (or ``.html``) writes the table and embeds the run's PNG plots, downloaded into the folder
``<report name>_files/`` next to the report (one sub-folder per model, ``all`` for the parent's). ``--json PATH``
writes ``{"spec", "tracking_uri", "run_id", "run_name", "start_time", "git_commit", "data_fingerprint", "columns",
"models": {NAME: {"family", "run_id", "metrics": {COLUMN: number | null}}}, "best": {COLUMN: NAME | null},
"report", "warnings"}`` (one warning per null metric).

No run of the spec (no tracking database, no experiment, no finished run): exit code 2, with the advice to run
``forecaster train`` first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from forecaster.config import load_spec
from forecaster.errors import UsageError

PREFIXES = ("qlike", "coverage90", "dm_p", "oracle_gap")
COVERAGE_TARGET = 0.90
REPORT_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}
PARENT_FOLDER = "all"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="SPEC", help="experiment spec (YAML path or name); default sim_intraday")
    parser.add_argument("--run-id", metavar="ID", help="the parent run to show (default: the spec's latest)")
    parser.add_argument("--out", type=Path, metavar="REPORT", help="write a report: report.md or report.html")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the comparison as JSON")


def run(args: argparse.Namespace) -> int:
    if args.out is not None and args.out.suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(f"--out must end in .md or .html; got {args.out}")
    spec = load_spec(args.config)
    comparison = collect(spec.name, args.run_id)
    print(format_table(comparison))
    if args.out is not None:
        write_report(comparison, args.out)
        print(f"report written to {args.out}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_jsonable(comparison, args.out), indent=2, allow_nan=False))
    return 0


# ---------------------------------------------------------------------------------------------------- reading


def _no_run(spec_name: str, where: str) -> UsageError:
    return UsageError(
        f"no tracked run of spec {spec_name!r} ({where}). Run `forecaster train --config {spec_name}` first "
        "(or point MLFLOW_TRACKING_URI at the store that holds it)"
    )


def collect(spec_name: str, run_id: str | None = None) -> dict[str, Any]:
    """The parent run (latest finished of the spec's experiment, or ``run_id``) and its model runs' metrics."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.tracking import RUN_TYPE_COMMAND, sqlite_path, tracking_uri

    uri = tracking_uri()
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise _no_run(spec_name, f"there is no tracking database at {db}")
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    if run_id is not None:
        try:
            parent = client.get_run(run_id)
        except MlflowException:
            raise UsageError(f"run {run_id!r} is not in the tracking store {uri}; check the id (MLflow UI)") from None
        if "mlflow.parentRunId" in parent.data.tags:
            parent = client.get_run(parent.data.tags["mlflow.parentRunId"])
    else:
        experiment = mlflow.get_experiment_by_name(spec_name)
        if experiment is None:
            raise _no_run(spec_name, f"no experiment {spec_name!r} in {uri}")
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.run_type = '{RUN_TYPE_COMMAND}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            raise _no_run(spec_name, f"experiment {spec_name!r} in {uri} has no finished run")
        parent = runs[0]
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    children = [c for c in children if "model_name" in c.data.tags]
    if not children:
        raise UsageError(
            f"run {parent.info.run_id} ({parent.info.run_name}) has no model runs to compare; pick a train or "
            "evaluate run (--run-id), or run `forecaster train` again"
        )
    children.sort(key=lambda c: c.data.tags["model_name"])
    models = {
        c.data.tags["model_name"]: {
            "family": c.data.tags.get("model_family", "unknown"),
            "run_id": c.info.run_id,
            "all_metrics": dict(c.data.metrics),
        }
        for c in children
    }
    columns = _columns([m["all_metrics"] for m in models.values()])
    for entry in models.values():
        entry["metrics"] = {column: entry["all_metrics"].get(column) for column in columns}
    tags = parent.data.tags
    started = dt.datetime.fromtimestamp(parent.info.start_time / 1000, tz=dt.UTC)
    return {
        "spec": spec_name,
        "tracking_uri": uri,
        "run_id": parent.info.run_id,
        "run_name": parent.info.run_name,
        "start_time": started.isoformat(timespec="seconds"),
        "git_commit": tags.get("git_commit", "unknown"),
        "data_fingerprint": tags.get("data_fingerprint", "unknown"),
        "columns": columns,
        "models": models,
        "best": best_per_column(models, columns),
    }


def _columns(metric_sets: list[dict[str, float]]) -> list[str]:
    """The shown columns present in any run: prefix-major, horizons increasing."""
    found: dict[str, set[int]] = {prefix: set() for prefix in PREFIXES}
    for metrics in metric_sets:
        for name in metrics:
            match = re.fullmatch(r"([a-z0-9_]+)/rv/h(\d+)", name)
            if match and match.group(1) in found:
                found[match.group(1)].add(int(match.group(2)))
    return [f"{prefix}/rv/h{h}" for prefix in PREFIXES for h in sorted(found[prefix])]


def best_per_column(models: dict[str, dict[str, Any]], columns: list[str]) -> dict[str, str | None]:
    """The best model of each column (module docstring: the rule per metric), None when no model qualifies."""
    best: dict[str, str | None] = {}
    for column in columns:
        prefix, _, horizon = column.split("/")
        scores: dict[str, float] = {}
        for name, entry in models.items():
            value = entry["metrics"].get(column)
            if entry["family"] == "oracle" or value is None or not math.isfinite(value):
                continue
            if prefix == "coverage90":
                scores[name] = abs(value - COVERAGE_TARGET)
            elif prefix == "dm_p":
                stat = entry["all_metrics"].get(f"dm_stat/rv/{horizon}")
                if stat is not None and stat < 0:
                    scores[name] = value
            else:
                scores[name] = value
        best[column] = min(scores, key=scores.__getitem__) if scores else None
    return best


# ---------------------------------------------------------------------------------------------------- output


def _cell(value: float | None, column: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4f}" if column.startswith("qlike") else f"{value:.3f}"


def format_table(comparison: dict[str, Any]) -> str:
    """The side-by-side table as text: one row per model, ``*`` after each column's best value."""
    columns = comparison["columns"]
    header = ["model", "family", *columns]
    rows = []
    for name, entry in comparison["models"].items():
        cells = [name, entry["family"]]
        for column in columns:
            mark = "*" if comparison["best"].get(column) == name else ""
            cells.append(_cell(entry["metrics"].get(column), column) + mark)
        rows.append(cells)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        f"run {comparison['run_name']!r} ({comparison['run_id']}), started {comparison['start_time']}, "
        f"spec {comparison['spec']}",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(
        "* best: lowest qlike and oracle_gap, coverage90 closest to 0.90, lowest dm_p among models better than HAR "
        "(dm_stat < 0); the oracle is never marked"
    )
    return "\n".join(lines)


def download_plots(comparison: dict[str, Any], folder: Path) -> dict[str, list[Path]]:
    """Download the PNG artifacts of the parent (``all``) and of each model run into ``folder/<model>/``."""
    from mlflow import MlflowClient

    client = MlflowClient()
    runs = {PARENT_FOLDER: comparison["run_id"], **{n: e["run_id"] for n, e in comparison["models"].items()}}
    out: dict[str, list[Path]] = {}
    for label, run_id in runs.items():
        pngs = sorted((a.path for a in _list_all(client, run_id, "plots") if a.path.endswith(".png")), key=_natural)
        if not pngs:
            continue
        target = folder / re.sub(r"[^A-Za-z0-9._-]", "_", label)
        target.mkdir(parents=True, exist_ok=True)
        out[label] = [Path(client.download_artifacts(run_id, path, str(target))) for path in pngs]
    return out


def _natural(text: str) -> list[Any]:
    """Sort key with numbers compared as numbers (``h60`` before ``h240``)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _list_all(client: Any, run_id: str, path: str) -> list[Any]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found.extend(_list_all(client, run_id, item.path) if item.is_dir else [item])
    return found


def write_report(comparison: dict[str, Any], out: Path) -> Path:
    """Write the Markdown or HTML report (by the suffix of ``out``) with the plots next to it."""
    out = Path(out).resolve()  # the downloaded plots come back as absolute paths; links are made relative to out
    out.parent.mkdir(parents=True, exist_ok=True)
    files = out.parent / f"{out.stem}_files"
    plots = download_plots(comparison, files)
    kind = REPORT_SUFFIXES[out.suffix.lower()]
    text = _markdown(comparison, plots, out.parent) if kind == "markdown" else _html(comparison, plots, out.parent)
    out.write_text(text)
    return out


def _title(comparison: dict[str, Any]) -> tuple[str, str]:
    return (
        f"Model comparison: {comparison['spec']}",
        f"Run {comparison['run_name']} ({comparison['run_id']}), started {comparison['start_time']}; git commit "
        f"{comparison['git_commit']}; data fingerprint {comparison['data_fingerprint']}; tracking store "
        f"{comparison['tracking_uri']}.",
    )


def _legend() -> str:
    return (
        "Best per column in bold: lowest qlike and oracle_gap, coverage90 closest to 0.90, lowest dm_p among the "
        "models better than HAR (dm_stat < 0). The oracle is the physical limit and is never marked."
    )


def _markdown(comparison: dict[str, Any], plots: dict[str, list[Path]], root: Path) -> str:
    title, subtitle = _title(comparison)
    columns = comparison["columns"]
    lines = [f"# {title}", "", subtitle, "", "| model | family | " + " | ".join(columns) + " |"]
    lines.append("|" + "---|" * (len(columns) + 2))
    for name, entry in comparison["models"].items():
        cells = []
        for column in columns:
            text = _cell(entry["metrics"].get(column), column)
            cells.append(f"**{text}**" if comparison["best"].get(column) == name else text)
        lines.append(f"| {name} | {entry['family']} | " + " | ".join(cells) + " |")
    lines += ["", _legend(), "", "## Plots"]
    for label, paths in plots.items():
        lines += ["", f"### {'all models' if label == PARENT_FOLDER else label}", ""]
        for p in paths:
            lines += [f"![{label} {p.stem}]({p.relative_to(root).as_posix()})", ""]
    if not plots:
        lines += ["", "The run has no plots (it was logged with plots off)."]
    return "\n".join(lines) + "\n"


def _html(comparison: dict[str, Any], plots: dict[str, list[Path]], root: Path) -> str:
    title, subtitle = _title(comparison)
    columns = comparison["columns"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["model", "family", *columns])
    body = []
    for name, entry in comparison["models"].items():
        cells = [f"<td>{html.escape(name)}</td>", f"<td>{html.escape(entry['family'])}</td>"]
        for column in columns:
            text = html.escape(_cell(entry["metrics"].get(column), column))
            cells.append(f"<td><b>{text}</b></td>" if comparison["best"].get(column) == name else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p>",
        f"<table><tr>{head}</tr>{''.join(body)}</table><p>{html.escape(_legend())}</p><h2>Plots</h2>",
    ]
    for label, paths in plots.items():
        parts.append(f"<h3>{html.escape('all models' if label == PARENT_FOLDER else label)}</h3>")
        parts += [
            f"<img src='{html.escape(p.relative_to(root).as_posix())}' alt='{html.escape(p.stem)}'>" for p in paths
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _jsonable(comparison: dict[str, Any], report: Path | None) -> dict[str, Any]:
    def number(value: float | None) -> float | None:
        return None if value is None or not math.isfinite(value) else float(value)

    out = {k: v for k, v in comparison.items() if k != "models"}
    out["models"] = {
        name: {
            "family": entry["family"],
            "run_id": entry["run_id"],
            "metrics": {c: number(v) for c, v in entry["metrics"].items()},
        }
        for name, entry in comparison["models"].items()
    }
    out["report"] = None if report is None else str(report)
    out["warnings"] = [
        f"{name} has no {column} (null)"
        for name, entry in out["models"].items()
        for column, value in entry["metrics"].items()
        if value is None
    ]
    return out
