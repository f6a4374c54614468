"""``forecaster validate`` end to end: malformed inputs exit 2 naming file, row and column; good ones summarize."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from forecaster.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
TRADES = (FIXTURES / "deribit_trades.csv").read_text()
CHAIN = (FIXTURES / "deribit_options_chain.csv").read_text()
BARS = """timestamp,open,high,low,close,volume
2024-01-02,100,105,99,104,1000
2024-01-03,104,106,101,102,1200
2024-01-04,102,103,98,99,900
2024-01-05,99,101,97,100,1100
2024-01-08,100,102,99.5,101,950
"""
VIX = "DATE,OPEN,HIGH,LOW,CLOSE\n2024-01-02,13.21,14.23,13.1,13.2\n2024-01-03,13.38,14.22,13.36,14.04\n"
VIX += "2024-01-04,13.76,14.1,13.51,14.13\n"
BOOK = """positions:
  - instrument: option
    underlying: BTC
    option_type: call
    strike: 100000
    expiry: 2025-03-28T08:00:00Z
    quantity: -10
  - {instrument: option, underlying: BTC, option_type: put, strike: 90000, expiry: 2025-01-31T08:00:00Z, quantity: 5}
  - {instrument: perp, underlying: BTC, quantity: 2.5}
collateral: 250000
"""
AS_OF = ("--as-of", "2025-01-15T00:00:00Z")


def bars_with(row: int, line: str) -> str:
    lines = BARS.splitlines()
    lines[row] = line
    return "\n".join(lines) + "\n"


def chain_with(row: int, column: str, value: str) -> str:
    lines = CHAIN.splitlines()
    cells = lines[row].split(",")
    cells[lines[0].split(",").index(column)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Case:
    """A malformed file, the flag that passes it, and what the error line must name."""

    id: str
    flag: str
    name: str
    text: str
    rule: str
    row: int | None = None
    column: str | None = None
    value: str | None = None
    extra: tuple[str, ...] = ()


ISO_BARS = BARS.replace("2024-01-02,", "2024-01-02T00:00:00+00:00,").replace(
    "2024-01-03,", "2024-01-03T00:00:00+00:00,"
)
ISO_BARS = ISO_BARS.replace("2024-01-04,", "2024-01-04T00:00:00+00:00,").replace(
    "2024-01-05,", "2024-01-05T02:00:00+02:00,"
)
ISO_BARS = ISO_BARS.replace("2024-01-08,", "2024-01-08T00:00:00+00:00,")

CASES = [
    Case(
        "missing-column",
        "--bars",
        "bars.csv",
        "".join(f"{r.rsplit(',', 1)[0]}\n" for r in BARS.splitlines()),
        "required column 'volume'",
        column="volume",
    ),
    Case(
        "nan",
        "--bars",
        "bars.csv",
        bars_with(3, "2024-01-04,102,103,98,,900"),
        "'close' must be a finite number",
        3,
        "close",
        "nan",
    ),
    Case(
        "inf",
        "--bars",
        "bars.csv",
        bars_with(2, "2024-01-03,104,inf,101,102,1200"),
        "'high' must be a finite",
        2,
        "high",
        "inf",
    ),
    Case("zero-price", "--bars", "bars.csv", bars_with(4, "2024-01-05,0,101,97,100,1100"), "(0, inf)", 4, "open", "0"),
    Case(
        "negative-price",
        "--bars",
        "bars.csv",
        bars_with(3, "2024-01-04,102,103,-98,99,900"),
        "(0, inf)",
        3,
        "low",
        "-98",
    ),
    Case(
        "high-below-low",
        "--bars",
        "bars.csv",
        bars_with(2, "2024-01-03,104,100,101,102,1200"),
        "high must be ≥ max(open, close)",
        2,
        "high",
        "100",
    ),
    Case(
        "text-price",
        "--bars",
        "bars.csv",
        bars_with(2, "2024-01-03,104,106,101,abc,1200"),
        "'close' must be a number",
        2,
        "close",
        "'abc'",
    ),
    Case(
        "negative-volume",
        "--bars",
        "bars.csv",
        bars_with(5, "2024-01-08,100,102,99.5,101,-950"),
        "'volume' must be a finite number in [0, inf)",
        5,
        "volume",
        "-950",
    ),
    Case(
        "unsorted",
        "--bars",
        "bars.csv",
        bars_with(3, "2024-01-02,102,103,98,99,900"),
        "increasing order",
        3,
        "timestamp",
        "'2024-01-02'",
    ),
    Case(
        "duplicate",
        "--bars",
        "bars.csv",
        bars_with(3, "2024-01-03,102,103,98,99,900"),
        "must be unique",
        3,
        "timestamp",
        "'2024-01-03'",
    ),
    Case(
        "mixed-time-zones",
        "--bars",
        "bars.csv",
        ISO_BARS,
        "one time zone per file",
        4,
        "timestamp",
        "'2024-01-05T02:00:00+02:00'",
    ),
    Case(
        "unparseable-timestamp",
        "--bars",
        "bars.csv",
        bars_with(2, "2024-02-30,104,106,101,102,1200"),
        "parseable",
        2,
        "timestamp",
        "'2024-02-30'",
    ),
    Case("empty-file", "--bars", "bars.csv", "", "must not be empty"),
    Case("header-only", "--bars", "bars.csv", BARS.splitlines()[0] + "\n", "header only"),
    Case("semicolon-delimiter", "--bars", "bars.csv", BARS.replace(",", ";"), "delimiter looks wrong"),
    Case("tab-delimiter", "--bars", "bars.tsv", BARS.replace(",", "\t"), "delimiter looks wrong"),
    Case("iv-zero", "--iv-index", "vix.csv", VIX.replace("14.04", "0"), "in (0, 500] in percent", 2, "CLOSE", "0"),
    Case(
        "iv-900-percent",
        "--iv-index",
        "vix.csv",
        VIX.replace("14.13", "900"),
        "in (0, 500] in percent",
        3,
        "CLOSE",
        "900",
    ),
    Case(
        "non-numeric-strike",
        "--options",
        "chain.csv",
        chain_with(5, "strike_price", "95k"),
        "'strike_price' must be a number",
        5,
        "strike_price",
        "'95k'",
    ),
    Case(
        "mark-iv-zero",
        "--options",
        "chain.csv",
        chain_with(7, "mark_iv", "0"),
        "'mark_iv' must be a finite",
        7,
        "mark_iv",
        "0",
    ),
    Case(
        "expired-in-chain",
        "--options",
        "chain.csv",
        chain_with(4, "expiration", "1735603200000000"),
        "must not have expired",
        4,
        "expiration",
        "1735603200000000",
    ),
    Case(
        "bad-side",
        "--trades",
        "trades.csv",
        TRADES.replace(",sell,93512.0,", ",short,93512.0,"),
        "'side' must be one of buy, sell, unknown",
        3,
        "side",
        "'short'",
    ),
    Case(
        "zero-amount",
        "--trades",
        "trades.csv",
        TRADES.replace(",sell,93512.0,10", ",sell,93512.0,0"),
        "'amount' must be a finite number in (0, inf)",
        3,
        "amount",
        "0",
    ),
    Case(
        "mixed-epoch-units",
        "--trades",
        "trades.csv",
        TRADES.replace("1735689600085331,", "1735689600085,", 1),
        "one unit",
        3,
        "timestamp",
        "1735689600085",
    ),
    Case(
        "expired-option-in-portfolio",
        "--portfolio",
        "book.yaml",
        BOOK,
        "expired option in a live portfolio",
        2,
        "expiry",
        extra=("--as-of", "2025-02-01T00:00:00Z"),
    ),
    Case(
        "unknown-portfolio-key",
        "--portfolio",
        "book.yaml",
        BOOK.replace("option_type: call", "optiontype: call"),
        "unknown key 'optiontype'",
        1,
        "optiontype",
        extra=AS_OF,
    ),
    Case(
        "option-without-strike",
        "--portfolio",
        "book.yaml",
        BOOK.replace("    strike: 100000\n", ""),
        "an option position needs 'strike'",
        1,
        "strike",
        extra=AS_OF,
    ),
    Case(
        "perp-with-strike",
        "--portfolio",
        "book.json",
        json.dumps(
            {"positions": [{"instrument": "perp", "underlying": "BTC", "quantity": 1, "strike": 5}], "collateral": 1}
        ),
        "a perp position must not have 'strike'",
        1,
        "strike",
        "5",
        extra=AS_OF,
    ),
]


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("forecaster validate: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_case_table_is_broad():
    assert len({c.id for c in CASES}) == len(CASES) >= 15


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_exits_2_naming_file_row_and_column(case, tmp_path, capsys, untouched):
    path = tmp_path / case.name
    path.write_text(case.text)
    untouched(path)
    summary = tmp_path / "out" / "summary.json"

    code = main(["validate", case.flag, str(path), "--json", str(summary), *case.extra])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""  # nothing printed as success
    assert not summary.exists() and not summary.parent.exists()
    error = error_line(captured.err)
    assert "Traceback" not in captured.err
    assert str(path) in error and case.rule in error and "Fix: " in error
    if case.row is not None:
        line = f" (line {case.row + 1})" if path.suffix in {".csv", ".tsv"} else ""
        assert f"row {case.row}{line}," in error
    if case.column is not None:
        assert f"column '{case.column}'" in error
    if case.value == "nan":
        assert ": empty or NaN breaks rule" in error
    elif case.value is not None:
        assert f"value {case.value} " in error or f"value {case.value}." in error or f"value {case.value}:" in error


def test_malformed_input_through_a_real_process(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text(bars_with(3, "2024-01-04,102,103,-98,99,900"))
    process = subprocess.run(
        [sys.executable, "-m", "forecaster.cli", "validate", "--bars", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert process.returncode == 2 and process.stdout == ""
    error = error_line(process.stderr)
    assert str(path) in error and "row 3 (line 4)" in error and "column 'low'" in error and "value -98" in error


def test_wrong_delimiter_through_a_real_process(tmp_path):
    path = tmp_path / "trades.csv"
    path.write_text(TRADES.replace(",", ";"))
    process = subprocess.run(
        [sys.executable, "-m", "forecaster.cli", "validate", "--trades", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2 and process.stdout == ""
    assert str(path) in error_line(process.stderr) and "delimiter looks wrong" in process.stderr


def test_all_good_files_summarize_and_write_json(tmp_path, capsys, untouched):
    files = {"bars.csv": BARS, "trades.csv": TRADES, "chain.csv": CHAIN, "vix.csv": VIX, "book.yaml": BOOK}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        untouched(tmp_path / name)
    summary = tmp_path / "out" / "summary.json"
    code = main(
        [
            "validate",
            "--bars",
            str(tmp_path / "bars.csv"),
            "--trades",
            str(tmp_path / "trades.csv"),
            "--options",
            str(tmp_path / "chain.csv"),
            "--iv-index",
            str(tmp_path / "vix.csv"),
            "--portfolio",
            str(tmp_path / "book.yaml"),
            *AS_OF,
            "--json",
            str(summary),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for kind in ("bars", "trades", "option chain", "IV index", "portfolio"):
        assert f"{kind}: " in out
    assert "5 rows" in out and "18 rows" in out and "24 rows" in out and "3 positions" in out
    assert "microseconds" in out and "percent" in out
    report = json.loads(summary.read_text())
    assert report["ok"] is True
    assert [f["kind"] for f in report["files"]] == ["bars", "trades", "option chain", "IV index", "portfolio"]
    bars = report["files"][0]
    assert set(bars) == {"kind", "path", "rows", "start", "end", "columns", "notes", "repairs"}
    assert (bars["rows"], bars["start"], bars["repairs"]) == (5, "2024-01-02T00:00:00+00:00", [])
    assert report["files"][4]["positions"] == {"option": 2, "perp": 1}


def test_repair_flag_reports_changes_with_counts(tmp_path, capsys, untouched):
    path = tmp_path / "bars.csv"
    path.write_text(BARS + "2024-01-08,100,102,99.5,101,951\n2024-01-05,0,101,97,100,1100\n")
    untouched(path)
    summary = tmp_path / "summary.json"
    assert main(["validate", "--bars", str(path), "--repair", "--json", str(summary)]) == 0
    out = capsys.readouterr().out
    assert "repair: dropped rows: 1" in out and "kept the last of each: 1" in out
    repairs = json.loads(summary.read_text())["files"][0]["repairs"]
    assert [(r["count"], r["rows_sample"]) for r in repairs] == [(1, [7]), (1, [5])]


def test_without_files_is_a_usage_error(capsys):
    assert main(["validate", "--repair"]) == 2
    captured = capsys.readouterr()
    assert "at least one file" in captured.err and captured.out == ""


def test_missing_file_exits_2_with_its_path(tmp_path, capsys):
    path = tmp_path / "nope.csv"
    assert main(["validate", "--bars", str(path)]) == 2
    assert str(path) in error_line(capsys.readouterr().err)


def test_bad_as_of_and_bad_units_exit_2(tmp_path, capsys):
    (tmp_path / "book.yaml").write_text(BOOK)
    assert main(["validate", "--portfolio", str(tmp_path / "book.yaml"), "--as-of", "someday"]) == 2
    assert "--as-of" in capsys.readouterr().err
    try:
        code = main(["validate", "--iv-index", "x.csv", "--iv-units", "percent"])
    except SystemExit as exit_:  # argparse exits; main() may turn that into a return code
        code = exit_.code
    assert code == 2
    assert "invalid choice: 'percent'" in capsys.readouterr().err


def test_portfolio_as_of_defaults_to_the_last_market_timestamp(tmp_path, capsys):
    """DESIGN section 7: without --as-of, expiries are checked against the market data's last timestamp."""
    bars = tmp_path / "bars.csv"
    bars.write_text(BARS.replace("2024-", "2025-"))  # last bar 2025-01-08: every option in BOOK is live then
    book = tmp_path / "book.yaml"
    book.write_text(BOOK)
    assert main(["validate", "--bars", str(bars), "--portfolio", str(book)]) == 0
    assert "2025-01-08T00:00:00+00:00 (last market timestamp)" in capsys.readouterr().out
    late = tmp_path / "late.csv"  # bars running past the put's expiry (2025-01-31)
    late.write_text(BARS.replace("2024-01-08", "2025-02-03").replace("2024-", "2025-"))
    assert main(["validate", "--bars", str(late), "--portfolio", str(book)]) == 2
    err = capsys.readouterr().err
    assert "book.yaml" in err and "expiry" in err
    # no market data: checked against now, and this book expired long ago
    assert main(["validate", "--portfolio", str(book)]) == 2


def test_every_broken_rule_of_a_file_is_reported_at_once(tmp_path, capsys):
    """One run names the first bad row of each broken rule; a cell is reported once, not once per rule."""
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2024-01-01,1,2,0.5,abc,10\n"  # text close: 'must be a number' only, not also out of bounds
        "2024-01-02,1,2,0.5,,10\n"  # empty close
        "2024-01-03,1,0.9,0.5,1,-5\n"  # negative volume and high below open
        "2024-01-02,1,2,0.5,1,5\n"  # out of order
    )
    assert main(["validate", "--bars", str(path)]) == 2
    err = capsys.readouterr().err
    first, *also = [line for line in err.splitlines() if "bars.csv" in line]
    assert "row 1 (line 2), column 'close': value 'abc' breaks rule: 'close' must be a number" in first
    assert [line.split(" breaks rule")[0].split("bars.csv, ")[1] for line in also] == [
        "row 2 (line 3), column 'close': empty or NaN",
        "row 3 (line 4), column 'volume': value -5",
        "row 3 (line 4), column 'high': value 0.9",
        "row 4 (line 5), column 'timestamp': value '2024-01-02'",
    ]
    assert all(line.startswith("  also: ") for line in also)


def test_every_file_is_checked_and_the_good_ones_summarized(tmp_path, capsys):
    good, bad_bars, bad_iv = tmp_path / "good.csv", tmp_path / "bad.csv", tmp_path / "iv.csv"
    good.write_text(TRADES)
    bad_bars.write_text(bars_with(2, "2024-01-03,104,100,101,102,1200"))
    bad_iv.write_text("date,iv\n2024-01-02,0\n")
    report = tmp_path / "report.json"
    args = ["validate", "--trades", str(good), "--bars", str(bad_bars), "--iv-index", str(bad_iv)]
    assert main([*args, "--json", str(report)]) == 2
    captured = capsys.readouterr()
    assert "good.csv: OK" in captured.out and not report.exists()
    assert "2 files break the data contracts" in captured.err
    assert (
        "bad.csv, row 2 (line 3), column 'high'" in captured.err
        and "iv.csv, row 1 (line 2), column 'iv'" in captured.err
    )
