"""The decision audit log: append-only JSON Lines, one whole line per decision, even from many threads."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import threading

import numpy as np
import pytest

from forecaster.errors import UsageError
from serving.audit import AuditLog, read_audit


def test_appends_one_line_per_entry_and_never_rewrites(tmp_path):
    path = tmp_path / "logs" / "audit.jsonl"
    first = AuditLog(path)
    entry = first.append(
        kind="adjustment",
        request_id="r1",
        model_version="3",
        record={"orders": [{"qty": -1.5}], "at": dt.datetime(2026, 1, 2, tzinfo=dt.UTC), "n": np.int64(2)},
    )
    assert entry["record"]["n"] == 2 and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    before = path.read_bytes()
    AuditLog(path).append(kind="adjustment", request_id="r2", record={"orders": []})  # a second writer
    assert path.read_bytes().startswith(before)  # the first line is untouched
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith("{") and line.endswith("}") for line in lines)
    entries = list(read_audit(path))
    assert [e["request_id"] for e in entries] == ["r1", "r2"]
    assert entries[0]["record"] == {"orders": [{"qty": -1.5}], "at": "2026-01-02T00:00:00+00:00", "n": 2}
    assert entries[0]["model_version"] == "3" and entries[1]["model_version"] is None
    assert dt.datetime.fromisoformat(entries[0]["ts"]).tzinfo is not None


def test_concurrent_writers_leave_whole_lines(tmp_path):
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(path, fsync=False) for _ in range(2)]  # two writers on one file, as two processes would be
    payload = {"text": "x" * 5000}

    def write(worker: int) -> None:
        for number in range(50):
            logs[worker % 2].append(kind="adjustment", request_id=f"{worker}-{number}", record=payload)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = list(read_audit(path))
    assert len(entries) == 200 and len({e["request_id"] for e in entries}) == 200
    assert all(e["record"] == payload for e in entries)


@pytest.mark.parametrize(
    ("kind", "request_id", "record", "message"),
    [
        ("adjustment", "r", {"qty": float("nan")}, "not plain finite JSON"),
        ("adjustment", "r", {"qty": np.float64("inf")}, "not plain finite JSON"),
        ("adjustment", "r", {"obj": object()}, "not plain finite JSON"),
        ("", "r", {}, "needs a kind and a request id"),
        ("adjustment", "", {}, "needs a kind and a request id"),
    ],
)
def test_bad_entries_write_nothing(tmp_path, kind, request_id, record, message):
    path = tmp_path / "audit.jsonl"
    with pytest.raises(UsageError, match=message):
        AuditLog(path).append(kind=kind, request_id=request_id, record=record)
    assert not path.exists() and list(read_audit(path)) == []


def test_an_edited_log_is_reported(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append(kind="adjustment", request_id="r1", record={})
    with path.open("a") as handle:
        handle.write("not json\n")
    with pytest.raises(UsageError, match="line 2 is not JSON"):
        list(read_audit(path))
    assert json.loads(path.read_text().splitlines()[0])["request_id"] == "r1"
