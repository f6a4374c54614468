"""Time and peak memory of the feature pipeline on a simulated year of 1-minute bars and its trades.

Three fresh processes run one after the other (peak memory is per process):

1. **simulate** the spec's market (``experiments/sim_intraday.yaml``: bars, trades, IV index; no option chain,
   which no feature reads) to Parquet in a temporary directory. Not part of the pipeline's timings.
2. **pipeline**: load bars, trades and IV index with the ``forecaster.market`` loaders (timed apart), then
   ``build_features`` with the spec's ``features:`` section (all groups; windows 60, 1440, 10080, 43200), then
   each group alone and ``aggregate_trades`` alone, for the per-group table and trades/s.
3. **naive**: the same columns written the straightforward way, ``Series.rolling(W).apply(func, raw=True)`` per
   window statistic and plain pandas ``resample`` for the per-bar trade totals. It is far too slow for a year, so
   it runs on the first ``--naive-days`` of the same market and its time is extrapolated linearly to the year by
   the number of windows each step evaluates (n − W + 1 for a window of W bars, n for row-local steps, trades for
   the aggregation). The pipeline is also run on that prefix, and every naive column is compared with it.

    python bench/bench_features.py                            # 365 days (about a minute on 2 cores)
    python bench/bench_features.py --days 40 --naive-days 31   # quick look
    python bench/bench_features.py --json bench_features.json  # also write the results as JSON

Targets (printed, not asserted): ≥ 1M trades/s aggregated, load + features of the year ≤ 30 s, peak memory of the
pipeline process ≤ 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

SPEC = "sim_intraday"
TARGET_TRADES_PER_S = 1_000_000
TARGET_YEAR_S = 30.0
TARGET_PEAK_MB = 4_096.0  # 4 GiB
AGREEMENT = 1e-9  # largest |naive − pipeline| allowed, relative to the largest |value| of the column
BARS_PER_DAY = 1_440  # the spec's 1-minute bars

FloatArray = npt.NDArray[np.float64]
State = dict[str, pd.Series]


# ---------------------------------------------------------------- memory and time of a child process


def reset_peak() -> bool:
    """Restart the kernel's peak-RSS counter of this process (Linux ``clear_refs``); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_mb() -> float:
    """Peak resident memory in MiB since the last :func:`reset_peak` (else since the process started)."""
    return _status_mb("VmHWM") or process_peak_mb()


def resident_mb() -> float:
    """Resident memory now in MiB (NaN where ``/proc`` is missing)."""
    return _status_mb("VmRSS") or math.nan


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def process_peak_mb() -> float:
    """Peak resident memory of the whole process in MiB (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# ---------------------------------------------------------------- stage 1: simulate


def stage_simulate(days: float, seed: int | None, out: Path) -> dict[str, Any]:
    from forecaster.config import load_spec
    from forecaster.market.simulator import sim_config_from_spec, simulate

    spec = load_spec(SPEC)
    spec.override("simulator.days", days)
    if seed is not None:
        spec.override("simulator.seed", seed)
    config = sim_config_from_spec(spec.values, where=spec.path)
    wall, market = timed(lambda: simulate(config, out_dir=out, with_chain=False))
    return {
        "wall_s": wall,
        "peak_rss_mb": process_peak_mb(),
        "bars": len(market.bars),
        "trades": market.n_trades,
        "seed": config.seed,
    }


# ---------------------------------------------------------------- stage 2: the pipeline


def load_market(folder: Path) -> tuple[dict[str, float], Any]:
    """Load the simulated files with the project's loaders, timing each; returns (seconds per file, MarketData)."""
    from features.market import market_data
    from forecaster import market as md
    from forecaster.config import load_spec

    spec = load_spec(SPEC)
    seconds: dict[str, float] = {}
    seconds["bars"], bars = timed(lambda: md.load_bars(folder / "bars.parquet").data)
    seconds["trades"], trades = timed(lambda: md.load_trades(folder / "trades.parquet").data)
    iv_units = spec.get("data.iv_units", "auto")
    seconds["iv"], iv = timed(lambda: md.load_iv_index(folder / "iv_index.parquet", iv_units=iv_units).data)
    days = float(spec.get("data.annualization_days", 365))
    data = market_data(bars, freq=spec.get("data.freq"), annualization_days=days, trades=trades, iv=iv)
    return seconds, data


def feature_spec() -> Any:
    from features.pipeline import feature_spec_from_spec
    from forecaster.config import load_spec

    spec = load_spec(SPEC)
    return feature_spec_from_spec(spec.values, where=spec.path)


def group_seconds(data: Any, spec: Any) -> dict[str, float]:
    """Each group's compute alone, with a fresh context (so each pays for its own returns and anchor blocks)."""
    from features.base import Context
    from features.pipeline import group, resolve

    run, _ = resolve(spec, data)
    return {name: timed(lambda n=name: group(n).compute(Context(data), spec.windows, spec.params))[0] for name in run}


def stage_pipeline(folder: Path) -> dict[str, Any]:
    from features.flowagg import aggregate_trades
    from features.pipeline import build_features, fingerprint

    spec = feature_spec()
    exact_peaks = reset_peak()
    load_s, data = load_market(folder)
    load_peak, before_features = peak_mb(), resident_mb()
    reset_peak()
    features_s, table = timed(lambda: build_features(data, spec))
    features_peak = peak_mb()
    process_peak = max(load_peak, features_peak, process_peak_mb())  # clear_refs also resets ru_maxrss
    columns = {name: len(cols) for name, cols in table.groups.items()}
    del table
    aggregation_s, _ = timed(lambda: aggregate_trades(data.trades, data.index, data.freq))
    fingerprint_s, _ = timed(lambda: fingerprint(spec, data))
    return {
        "bars": len(data.index),
        "trades": len(data.trades),
        "columns": columns,
        "load_s": load_s,
        "load_peak_rss_mb": load_peak,
        "features_s": features_s,
        "features_peak_rss_mb": features_peak,
        "features_rss_before_mb": before_features,
        "peak_rss_mb": process_peak,
        "stage_peaks_exact": exact_peaks,
        "aggregation_s": aggregation_s,
        "fingerprint_s": fingerprint_s,
        "groups_s": group_seconds(data, spec),
    }


# ---------------------------------------------------------------- stage 3: the naive pandas baseline


def roll(x: pd.Series, window: int, func: Callable[[FloatArray], float]) -> pd.Series:
    """``func`` of every full window of ``window`` rows (NaN where a window holds a NaN): the naive way."""
    return x.rolling(window).apply(func, raw=True)


def sum_sq(x: FloatArray) -> float:
    return float(np.sum(x * x))


def sum_sq_pos(x: FloatArray) -> float:
    up = x[x > 0]
    return float(np.sum(up * up))


def sum_sq_neg(x: FloatArray) -> float:
    down = x[x < 0]
    return float(np.sum(down * down))


def bipower(x: FloatArray) -> float:
    """(π/2) Σ |r_i| |r_{i−1}| over a window of W + 1 returns (the first is the lag of the second)."""
    return float(np.pi / 2 * np.sum(np.abs(x[1:] * x[:-1])))


def jump(x: FloatArray) -> float:
    """max(rv − bv, 0) over a window of W + 1 returns."""
    return max(sum_sq(x[1:]) - bipower(x), 0.0)


def skew(x: FloatArray) -> float:
    x2 = x * x
    rv = np.sum(x2)
    return 0.0 if rv == 0 else float(np.sqrt(x.size) * np.sum(x2 * x) / rv**1.5)


def kurt(x: FloatArray) -> float:
    x2 = x * x
    rv = np.sum(x2)
    return 0.0 if rv == 0 else float(x.size * np.sum(x2 * x2) / rv**2)


def sample_var(x: FloatArray) -> float:
    return float(np.var(x, ddof=1))


def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den, 0 where den is 0 (an empty window), NaN where either is NaN."""
    return (num / den).where(den != 0, 0.0).where(num.notna())


@dataclass(frozen=True)
class Prefix:
    """The first bars of the market and everything up to their end, as plain pandas."""

    bars: pd.DataFrame
    trades: pd.DataFrame
    iv: pd.Series
    freq: pd.Timedelta
    bar_years: float


@dataclass(frozen=True)
class Step:
    """One timed step of a naive group; ``fn`` returns series added to the group's state.

    ``span``: rows per evaluation (0 for a row-local step, W for a window of W bars); with ``per_trade`` the step
    scales with the trades instead. Both set how its time extrapolates to the year.
    """

    label: str
    span: int
    fn: Callable[[State], State]
    per_trade: bool = False


def log_returns(bars: pd.DataFrame) -> pd.Series:
    return np.log(bars["close"]).diff()


def realized_terms(p: Prefix, _: State) -> State:
    o, h, low, c = (p.bars[k] for k in ("open", "high", "low", "close"))
    log_hl, body = np.log(h / low), np.log(c / o)
    return {
        "_r": log_returns(p.bars),
        "_log_hl": log_hl,
        "_gk": 0.5 * log_hl**2 - (2 * np.log(2) - 1) * body**2,
        "_rs": np.log(h / c) * np.log(h / o) + np.log(low / c) * np.log(low / o),
        "_gap": np.log(o / c.shift(1)),
        "_body": body,
    }


def realized_window(s: State, w: int) -> State:
    r = s["_r"]
    out = {"rv": roll(r, w, sum_sq), "ret": roll(r, w, np.sum), "rsp": roll(r, w, sum_sq_pos)}
    out["rsn"] = roll(r, w, sum_sq_neg)
    if w >= 2:
        out |= {"bv": roll(r, w + 1, bipower), "jump": roll(r, w + 1, jump)}
        out |= {"rskew": roll(r, w, skew), "rkurt": roll(r, w, kurt)}
    out["parkinson"] = roll(s["_log_hl"], w, sum_sq) / (4 * np.log(2))
    out |= {"gk": roll(s["_gk"], w, np.sum), "rs": roll(s["_rs"], w, np.sum)}
    if w >= 2:
        k = 0.34 / (1.34 + (w + 1) / (w - 1))
        var_o, var_c = roll(s["_gap"], w, sample_var), roll(s["_body"], w, sample_var)
        out["yz"] = w * (var_o + k * var_c + (1 - k) * out["rs"] / w)
    return {f"{name}_{w}": values for name, values in out.items()}


def implied_terms(p: Prefix, _: State) -> State:
    return {"iv": p.iv.reindex(p.bars.index, method="ffill"), "_r": log_returns(p.bars)}


def implied_window(s: State, w: int, bar_years: float) -> State:
    iv = s["iv"]
    return {f"iv_chg_{w}": iv - iv.shift(w), f"vrp_{w}": iv * iv * (w * bar_years) - roll(s["_r"], w, sum_sq)}


def iv_percentile(s: State, days: int, step: int) -> State:
    def mid_rank(x: FloatArray) -> float:
        past, now = x[:-1:step], x[-1]  # the same time of day on each of the previous ``days`` days
        return float((np.sum(past < now) + 0.5 * np.sum(past == now)) / days)

    return {f"iv_pct_{days}": roll(s["iv"], days * step + 1, mid_rank)}


def volume_terms(p: Prefix, _: State) -> State:
    return {
        "_volume": p.bars["volume"],
        "_dollars": p.bars["close"] * p.bars["volume"],
        "_abs_r": log_returns(p.bars).abs(),
    }


def volume_window(s: State, w: int) -> State:
    v, d = roll(s["_volume"], w, np.sum), roll(s["_dollars"], w, np.sum)
    before = v.shift(w)
    return {
        f"volume_{w}": v,
        f"dollar_volume_{w}": d,
        f"amihud_{w}": ratio(roll(s["_abs_r"], w, np.sum), d),
        f"volume_chg_{w}": ratio(v - before, v + before),
    }


def flow_terms(p: Prefix, _: State) -> State:
    """Per-bar totals by side with ``resample``: the bar ending at t holds the trades in (t − freq, t]."""
    out: State = {}
    for side in ("buy", "sell", "unknown"):
        amount = p.trades.loc[p.trades["side"] == side, "amount"]
        bins = amount.resample(p.freq, closed="right", label="right")
        out[f"_{side}"] = bins.sum().reindex(p.bars.index, fill_value=0.0)
        out[f"_{side}_n"] = bins.count().reindex(p.bars.index, fill_value=0).astype(float)
    out["_n"] = out.pop("_buy_n") + out.pop("_sell_n") + out.pop("_unknown_n")
    return out


def flow_window(s: State, w: int, bar_minutes: float) -> State:
    b, sell = roll(s["_buy"], w, np.sum), roll(s["_sell"], w, np.sum)
    u, n = roll(s["_unknown"], w, np.sum), roll(s["_n"], w, np.sum)
    churn = roll((s["_buy"] - s["_sell"]).abs(), w, np.sum)
    imbalance = ratio(b - sell, b + sell)
    return {
        f"imbalance_{w}": imbalance,
        f"trades_{w}": n,
        f"intensity_{w}": n / (w * bar_minutes),
        f"avg_size_{w}": ratio(b + sell + u, n),
        f"vpin_{w}": ratio(churn, b + sell),
        f"imbalance_chg_{w}": imbalance - imbalance.shift(w),
        f"intensity_chg_{w}": ratio(n - n.shift(w), n + n.shift(w)),
    }


def calendar_columns(p: Prefix, _: State) -> State:
    index = p.bars.index
    hours = pd.Series(index.hour + index.minute / 60 + index.second / 3600, index=index)
    days = pd.Series(index.day_of_week, index=index) + hours / 24
    return {
        "hour_sin": np.sin(2 * np.pi * hours / 24),
        "hour_cos": np.cos(2 * np.pi * hours / 24),
        "dow_sin": np.sin(2 * np.pi * days / 7),
        "dow_cos": np.cos(2 * np.pi * days / 7),
    }


def naive_steps(p: Prefix, windows: tuple[int, ...], params: Mapping[str, Any]) -> dict[str, list[Step]]:
    """The naive groups, each a list of timed steps, in the pipeline's group order."""
    minutes = p.freq / pd.Timedelta(minutes=1)
    days, step = int(params.get("iv_percentile_days", 30)), int(pd.Timedelta(days=1) / p.freq)
    return {
        "realized": [
            Step("per-bar terms", 0, partial(realized_terms, p)),
            *(Step(f"W={w}", w, partial(realized_window, w=w)) for w in windows),
        ],
        "implied": [
            Step("as-of IV", 0, partial(implied_terms, p)),
            *(Step(f"W={w}", w, partial(implied_window, w=w, bar_years=p.bar_years)) for w in windows),
            Step(f"iv_pct_{days}", days * step + 1, partial(iv_percentile, days=days, step=step)),
        ],
        "volume": [
            Step("per-bar terms", 0, partial(volume_terms, p)),
            *(Step(f"W={w}", w, partial(volume_window, w=w)) for w in windows),
        ],
        "flow": [
            Step("aggregation", 0, partial(flow_terms, p), per_trade=True),
            *(Step(f"W={w}", w, partial(flow_window, w=w, bar_minutes=minutes)) for w in windows),
        ],
        "calendar": [Step("sin/cos", 0, partial(calendar_columns, p))],
    }


def evaluations(rows: int, span: int) -> int:
    """How many times a step of ``span`` rows runs on ``rows`` bars (row-local: once per row)."""
    return rows if span == 0 else max(rows - span + 1, 0)


def run_naive_group(
    steps: list[Step], rows: int, trades: int, year_rows: int, year_trades: int
) -> tuple[State, list[dict[str, Any]]]:
    """Run the steps that fit in ``rows`` bars; returns the columns and one timing record per step."""
    state: State = {}
    records = []
    for s in steps:
        fits = s.span + 2 <= rows  # + 2: a window of returns with its lag (bipower) needs W + 2 bars
        record: dict[str, Any] = {"step": s.label, "span": s.span, "measured": fits}
        if fits:
            wall, out = timed(partial(s.fn, state))
            state |= out
            scale = year_trades / trades if s.per_trade else evaluations(year_rows, s.span) / evaluations(rows, s.span)
            record |= {"prefix_s": wall, "extrapolated_s": wall * scale}
        records.append(record)
    return {k: v for k, v in state.items() if not k.startswith("_")}, records


def compare(naive: State, frame: pd.DataFrame) -> dict[str, Any]:
    """max |naive − pipeline| / max |pipeline| per column, and the rows where only one of them is NaN."""
    worst, worst_column, nan_mismatch = 0.0, "", 0
    for name, values in naive.items():
        got, expected = values.to_numpy(dtype=float), frame[name].to_numpy(dtype=float)
        nan_mismatch += int(np.sum(np.isnan(got) != np.isnan(expected)))
        both = np.isfinite(got) & np.isfinite(expected)
        if not both.any():
            continue
        scale = np.max(np.abs(expected[both])) or 1.0
        diff = float(np.max(np.abs(got[both] - expected[both])) / scale)
        if diff >= worst:
            worst, worst_column = diff, name
    return {"max_rel_diff": worst, "worst_column": worst_column, "nan_mismatch": nan_mismatch}


def stage_naive(folder: Path, naive_days: float) -> dict[str, Any]:
    from features.pipeline import build_features

    spec = feature_spec()
    _, data = load_market(folder)
    rows = min(round(naive_days * BARS_PER_DAY), len(data.index))
    cut = data.until(data.index[rows - 1])
    pipeline = build_features(cut, spec).frame
    prefix = Prefix(cut.bars, cut.trades, cut.iv, cut.freq, cut.bar_years)
    year_rows, year_trades = len(data.index), len(data.trades)  # the whole simulated span
    groups = {}
    for name, steps in naive_steps(prefix, spec.windows, spec.params).items():
        if name not in spec.groups:
            continue
        columns, records = run_naive_group(steps, rows, len(cut.trades), year_rows, year_trades)
        groups[name] = {"steps": records, "columns": len(columns), **compare(columns, pipeline)}
    return {"bars": rows, "trades": len(cut.trades), "groups": groups}


# ---------------------------------------------------------------- the parent: children, table, JSON


def run_stage(*args: str) -> dict[str, Any]:
    """Run one stage in a fresh process; its last stdout line is its JSON result."""
    res = subprocess.run([sys.executable, __file__, "--stage", *args], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"the {args[0]} stage failed (exit {res.returncode}):\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def group_rows(pipe: dict[str, Any], naive: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per group (plus the trade aggregation): pipeline against naive, in seconds for all the days."""
    bars, trades = pipe["bars"], pipe["trades"]
    rows = []
    for name, seconds in pipe["groups_s"].items():
        g = naive["groups"].get(name, {"steps": [], "columns": 0, "max_rel_diff": math.nan})
        naive_s = sum(s["extrapolated_s"] for s in g["steps"] if s["measured"])
        rows.append(_row(name, pipe["columns"][name], g["columns"], seconds, naive_s, bars, trades, g))
        if name == "flow":
            agg = next(s for s in g["steps"] if s["step"] == "aggregation")
            rows.append(
                _row("aggregation", 0, 0, pipe["aggregation_s"], agg.get("extrapolated_s", math.nan), bars, trades)
            )
    return rows


def _row(
    name: str,
    columns: int,
    naive_columns: int,
    wall: float,
    naive_s: float,
    bars: int,
    trades: int,
    g: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    g = g or {}
    return {
        "group": name,
        "columns": columns,
        "naive_columns": naive_columns,
        "pipeline_s": wall,
        "bars_per_s": bars / wall,
        "trades_per_s": trades / wall,
        "naive_s": naive_s,
        "naive_bars_per_s": bars / naive_s if naive_s else math.nan,
        "speedup": naive_s / wall,
        "max_rel_diff": g.get("max_rel_diff", math.nan),
        "worst_column": g.get("worst_column", ""),
        "nan_mismatch": g.get("nan_mismatch", 0),
    }


def summarize(args: argparse.Namespace, sim: dict, pipe: dict, naive: dict) -> dict[str, Any]:
    import pyarrow

    load_total = sum(pipe["load_s"].values())
    year_s = load_total + pipe["features_s"]
    rows = group_rows(pipe, naive)
    groups = [r for r in rows if r["group"] != "aggregation"]
    skipped = list(dict.fromkeys(s["step"] for g in naive["groups"].values() for s in g["steps"] if not s["measured"]))
    agg_rate = pipe["trades"] / pipe["aggregation_s"]
    targets = {
        "trades_per_s_aggregated": agg_rate >= TARGET_TRADES_PER_S,
        "year_s": year_s <= TARGET_YEAR_S,
        "peak_rss_mb": pipe["peak_rss_mb"] <= TARGET_PEAK_MB,
    }
    return {
        "days": args.days,
        "seed": sim["seed"],
        "spec": f"experiments/{SPEC}.yaml",
        "bars": pipe["bars"],
        "trades": pipe["trades"],
        "columns": sum(pipe["columns"].values()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "pyarrow": pyarrow.__version__,
            "arch": platform.machine(),
        },
        "simulate": sim,
        "pipeline": {
            "load_s": pipe["load_s"],
            "load_total_s": load_total,
            "load_peak_rss_mb": pipe["load_peak_rss_mb"],
            "features_s": pipe["features_s"],
            "features_peak_rss_mb": pipe["features_peak_rss_mb"],
            "features_rss_before_mb": pipe["features_rss_before_mb"],
            "fingerprint_s": pipe["fingerprint_s"],
            "aggregation_s": pipe["aggregation_s"],
            "aggregation_trades_per_s": agg_rate,
            "features_bars_per_s": pipe["bars"] / pipe["features_s"],
            "year_s": year_s,
            "year_bars_per_s": pipe["bars"] / year_s,
            "year_trades_per_s": pipe["trades"] / year_s,
            "peak_rss_mb": pipe["peak_rss_mb"],
            "stage_peaks_exact": pipe["stage_peaks_exact"],
        },
        "naive": {
            "days": naive["bars"] / BARS_PER_DAY,
            "bars": naive["bars"],
            "trades": naive["trades"],
            "skipped_steps": skipped,
            "extrapolated_s": sum(r["naive_s"] for r in groups),
            "groups": naive["groups"],
        },
        "groups": rows,
        "agree": all(r["max_rel_diff"] <= AGREEMENT and r["nan_mismatch"] == 0 for r in groups),
        "targets": {"trades_per_s": TARGET_TRADES_PER_S, "year_s": TARGET_YEAR_S, "peak_rss_mb": TARGET_PEAK_MB},
        "targets_met": targets,
    }


def print_report(r: dict[str, Any]) -> None:
    m, n, sim = r["machine"], r["naive"], r["simulate"]
    print(
        f"features of {r['days']:g} days of 1-minute bars: {r['bars']:,} bars, {r['trades']:,} trades -> "
        f"{r['columns']} columns ({r['spec']}, seed {r['seed']}); {m['cpus']} cpus, python {m['python']}, "
        f"numpy {m['numpy']}, pandas {m['pandas']}, pyarrow {m['pyarrow']}, {m['arch']}"
    )
    print(f"simulated first, in its own process: {sim['wall_s']:.1f} s, peak {sim['peak_rss_mb']:,.0f} MB (untimed)")
    _print_pipeline(r)
    print(
        f"\nnaive: measured on the first {n['days']:g} days ({n['bars']:,} bars, {n['trades']:,} trades), then "
        f"extrapolated linearly to all {r['days']:g} days by windows evaluated (n - W + 1 for a window of W bars, n "
        "for row-local steps, trades for the aggregation)"
    )
    if n["skipped_steps"]:
        print(f"naive: not measured (longer than the prefix): {', '.join(n['skipped_steps'])}; its time is a floor")
    _print_groups(r)
    agree = "yes" if r["agree"] else "NO"
    print(f"naive columns agree with the pipeline on the prefix (<= {AGREEMENT:g}, same NaN rows): {agree}")
    _print_targets(r)


def _print_pipeline(r: dict[str, Any]) -> None:
    p = r["pipeline"]
    header = f"{'pipeline (one run)':<30}{'wall s':>9}{'bars/s':>12}{'trades/s':>14}{'peak MB':>9}"
    print(f"\n{header}\n{'-' * len(header)}")
    for name, seconds in p["load_s"].items():
        print(f"{'load ' + name:<30}{seconds:>9.2f}")
    print(f"{'load (all)':<30}{p['load_total_s']:>9.2f}{'':>12}{'':>14}{p['load_peak_rss_mb']:>9,.0f}")
    print(
        f"{'build_features':<30}{p['features_s']:>9.2f}{p['features_bars_per_s']:>12,.0f}{'':>14}"
        f"{p['features_peak_rss_mb']:>9,.0f}"
    )
    print(f"{'  of which fingerprint':<30}{p['fingerprint_s']:>9.2f}")
    print(f"{'aggregate_trades alone':<30}{p['aggregation_s']:>9.2f}{'':>12}{p['aggregation_trades_per_s']:>14,.0f}")
    print(
        f"{'load + build_features':<30}{p['year_s']:>9.2f}{p['year_bars_per_s']:>12,.0f}"
        f"{p['year_trades_per_s']:>14,.0f}{p['peak_rss_mb']:>9,.0f}"
    )


def _print_groups(r: dict[str, Any]) -> None:
    header = (
        f"{'group':<16}{'columns':>8}{'pipeline s':>11}{'bars/s':>12}{'naive s':>10}{'bars/s':>12}"
        f"{'x naive':>9}{'max rel diff':>14}"
    )
    print(f"\nper group, all {r['days']:g} days: pipeline (each group alone) vs naive pandas rolling apply")
    print(f"{header}\n{'-' * len(header)}")
    for g in r["groups"]:
        aggregation = g["group"] == "aggregation"
        columns = f"{g['columns']}" if g["naive_columns"] == g["columns"] else f"{g['naive_columns']}/{g['columns']}"
        print(
            f"{'  aggregation' if aggregation else g['group']:<16}{'' if aggregation else columns:>8}"
            f"{g['pipeline_s']:>11.2f}{g['bars_per_s']:>12,.0f}{g['naive_s']:>10.1f}{g['naive_bars_per_s']:>12,.0f}"
            f"{g['speedup']:>9.1f}{'' if aggregation else format(g['max_rel_diff'], '.1e'):>14}".rstrip()
        )
    p, n = r["pipeline"], r["naive"]
    naive_s = n["extrapolated_s"]
    print(
        f"{'all (build_features)':<24}{p['features_s']:>11.2f}{p['features_bars_per_s']:>12,.0f}"
        f"{naive_s:>10.1f}{r['bars'] / naive_s:>12,.0f}{naive_s / p['features_s']:>9.1f}"
    )
    agg = next(g for g in r["groups"] if g["group"] == "aggregation")
    print(
        f"trade aggregation: aggregate_trades {agg['trades_per_s']:,.0f} trades/s, naive resample "
        f"{r['trades'] / agg['naive_s']:,.0f} trades/s"
    )


def _print_targets(r: dict[str, Any]) -> None:
    p, t, met = r["pipeline"], r["targets"], r["targets_met"]

    def word(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(
        f"target >= {t['trades_per_s']:,} trades/s aggregated: {word(met['trades_per_s_aggregated'])} "
        f"({p['aggregation_trades_per_s']:,.0f}/s)"
    )
    size = "" if r["days"] == 365 else f"; the target is for a year, this run is {r['days']:g} days"
    print(f"target year (load + features) <= {t['year_s']:g} s: {word(met['year_s'])} ({p['year_s']:.1f} s{size})")
    print(
        f"target peak memory <= {t['peak_rss_mb']:,.0f} MB: {word(met['peak_rss_mb'])} ({p['peak_rss_mb']:,.0f} MB; "
        f"loading {p['load_peak_rss_mb']:,.0f}; build_features {p['features_peak_rss_mb']:,.0f}, of which "
        f"{p['features_rss_before_mb']:,.0f} resident before it: the loaded inputs)"
    )


def stage_main(argv: list[str]) -> None:
    stage, *rest = argv
    if stage == "simulate":
        out = stage_simulate(float(rest[0]), None if rest[1] == "-" else int(rest[1]), Path(rest[2]))
    elif stage == "pipeline":
        out = stage_pipeline(Path(rest[0]))
    elif stage == "naive":
        out = stage_naive(Path(rest[0]), float(rest[1]))
    else:
        raise SystemExit(f"unknown stage {stage!r}; stages: simulate, pipeline, naive")
    print(json.dumps(out))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--stage"]:
        return stage_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=365.0, help="days of 1-minute bars to simulate")
    parser.add_argument(
        "--naive-days", type=float, default=31.0, help="days the naive baseline runs on (31: every window fits)"
    )
    parser.add_argument("--seed", type=int, default=None, help="simulator seed (default: the spec's)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results here")
    args = parser.parse_args(argv)
    for name in ("days", "naive_days"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be a positive number of days; got {getattr(args, name)}")
    if args.naive_days > args.days:
        parser.error(f"--naive-days must be at most --days ({args.days:g}); got {args.naive_days:g}")
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        sim = run_stage("simulate", str(args.days), "-" if args.seed is None else str(args.seed), tmp)
        pipe = run_stage("pipeline", tmp)
        naive = run_stage("naive", tmp, str(args.naive_days))
    result = summarize(args, sim, pipe, naive)
    print_report(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
