"""The evidence log: durable appends, several writers, roll to Parquet, torn-tail quarantine."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from distilltrace.errors import InputError
from distilltrace.gateway.evidence_log import (
    COLUMNS,
    EvidenceLog,
    decode_line,
    encode_record,
    parquet_files,
    roll,
)


def rec(i: int, **kw) -> dict:
    return {
        "request_id": f"r{i}",
        "timestamp": datetime(2026, 1, 1, 12, 0, i % 60, tzinfo=UTC),
        "account_id": f"a{i % 3}",
        "prompt": f"prompt {i} <b>\u2028\x00",
        "input_tokens": i,
        "temperature": 0.5,
        "stream": False,
        **kw,
    }


def rolled_rows(log_dir) -> list[dict]:
    rows = []
    for p in parquet_files(log_dir):
        rows += pq.read_table(p).to_pylist()
    return rows


def test_records_round_trip_through_a_line():
    r = rec(1)
    line = encode_record(r)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # \u2028 and \x00 stay escaped/inline
    back = decode_line(line[:-1])
    assert back["prompt"] == r["prompt"] and back["timestamp"] == "2026-01-01T12:00:01+00:00"
    flipped = bytearray(line[:-1])
    flipped[-3] ^= 1
    with pytest.raises(ValueError, match="checksum"):
        decode_line(bytes(flipped))


def test_write_is_durable_and_rolls_to_parquet_in_the_traffic_schema(tmp_path):
    with EvidenceLog(tmp_path) as log:
        threads = [threading.Thread(target=log.write_sync, args=(rec(i),)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seg = log.segment_path.read_bytes()
        assert seg.count(b"\n") == 50  # acknowledged = already in the file
        assert roll(tmp_path).segments_live == 1  # a live segment is not rolled
        assert log.commits <= 50
    res = roll(tmp_path)
    assert (res.segments_rolled, res.records, res.quarantined) == (1, 50, 0)
    table = pq.read_table(res.parquet_files[0])
    assert table.schema.names == list(COLUMNS)
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    rows = {r["request_id"]: r for r in table.to_pylist()}
    assert len(rows) == 50 and rows["r7"]["input_tokens"] == 7
    assert rows["r7"]["prompt"] == rec(7)["prompt"]
    assert not list((tmp_path / "segments").glob("*.seg"))


def test_a_torn_final_record_is_quarantined_not_dropped(tmp_path):
    with EvidenceLog(tmp_path) as log:
        for i in range(3):
            log.write_sync(rec(i))
        seg = log.segment_path
    line = encode_record(rec(99))
    with open(seg, "ab") as f:
        f.write(line[: len(line) // 2])  # what a crash mid-write would leave
    res = roll(tmp_path)
    assert res.records == 3 and res.quarantined == 1
    assert res.reasons == {"torn final record (no newline)": 1}
    q = [json.loads(x) for x in res.quarantine_files[0].read_text().splitlines()]
    assert q[0]["line_number"] == 4 and q[0]["segment"] == seg.name and "r99" in q[0]["raw"]


def test_corrupt_and_ill_typed_records_are_quarantined_with_reasons(tmp_path):
    with EvidenceLog(tmp_path) as log:
        log.write_sync(rec(1))
        log.write_sync(rec(2, input_tokens="many"))  # wrong type
        log.write_sync({k: v for k, v in rec(3).items() if k != "account_id"})  # missing
        log.write_sync(rec(4))
        seg = log.segment_path
    data = bytearray(seg.read_bytes())
    data[12] ^= 0x20  # flip a bit inside the first record
    seg.write_bytes(bytes(data))
    res = roll(tmp_path)
    assert res.records == 1 and res.quarantined == 3
    assert res.reasons == {
        "checksum mismatch": 1,
        "column input_tokens: expected int, got str": 1,
        "missing required value account_id": 1,
    }
    assert [r["request_id"] for r in rolled_rows(tmp_path)] == ["r4"]


def test_unknown_fields_are_kept_in_extra_json(tmp_path):
    with EvidenceLog(tmp_path) as log:
        log.write_sync(rec(1, surprise={"a": 1}))
    assert roll(tmp_path).records == 1
    (row,) = rolled_rows(tmp_path)
    assert json.loads(row["extra_json"]) == {"surprise": {"a": 1}}


def test_a_repeated_roll_after_a_crash_mid_roll_creates_no_duplicates(tmp_path):
    with EvidenceLog(tmp_path) as log:
        for i in range(5):
            log.write_sync(rec(i))
        seg = log.segment_path
    saved = seg.read_bytes()
    roll(tmp_path)
    seg.write_bytes(saved)  # as if the roller died after writing Parquet, before unlinking
    res = roll(tmp_path)
    assert res.records == 5 and len(parquet_files(tmp_path)) == 1
    assert sorted(r["request_id"] for r in rolled_rows(tmp_path)) == [f"r{i}" for i in range(5)]


def test_several_processes_share_one_log_folder(tmp_path):
    code = (
        "import sys; from datetime import datetime, UTC\n"
        "from distilltrace.gateway.evidence_log import EvidenceLog\n"
        "w = sys.argv[1]\n"
        "with EvidenceLog(sys.argv[2]) as log:\n"
        "    for i in range(40):\n"
        "        log.write_sync({'request_id': f'{w}-{i}', 'timestamp': datetime.now(UTC),\n"
        "                        'account_id': w, 'prompt': 'p'})\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, f"w{j}", str(tmp_path)]) for j in range(3)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    res = roll(tmp_path)
    assert res.segments_rolled == 3 and res.records == 120
    ids = [r["request_id"] for r in rolled_rows(tmp_path)]
    assert len(set(ids)) == 120


def test_rotation_keeps_every_record(tmp_path):
    with EvidenceLog(tmp_path, max_segment_bytes=4096) as log:
        for i in range(60):
            log.write_sync(rec(i))
    res = roll(tmp_path)
    assert res.segments_rolled > 1 and res.records == 60


def test_roll_of_a_folder_that_is_not_a_log_is_one_line_error(tmp_path):
    with pytest.raises(InputError, match="not a gateway evidence log"):
        roll(tmp_path / "nothing")
    with pytest.raises(InputError, match="not open"):
        EvidenceLog(tmp_path).submit(rec(1))


def test_old_segments_are_closed_so_a_running_writer_can_be_rolled(tmp_path):
    with EvidenceLog(tmp_path, max_segment_age_s=0.0) as log:
        for i in range(3):
            log.write_sync(rec(i))
        res = roll(tmp_path)  # while the writer is still open
        assert res.records == 3 and res.segments_live == 1  # the fresh, empty segment


def test_cli_roll_reports_rolled_and_quarantined_records(tmp_path):
    from typer.testing import CliRunner

    from distilltrace.gateway.cli import app as gateway_cli

    with EvidenceLog(tmp_path) as log:
        log.write_sync(rec(1))
        seg = log.segment_path
    with open(seg, "ab") as f:
        f.write(b"0000")  # a torn tail
    r = CliRunner().invoke(gateway_cli, ["roll", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "rolled 1 segment(s): 1 record(s)" in r.stdout
    assert "quarantined 1 record(s) (torn final record (no newline): 1)" in r.stderr


def test_a_lone_surrogate_in_attacker_text_cannot_break_a_roll(tmp_path):
    with EvidenceLog(tmp_path) as log:
        log.write_sync(rec(1, prompt="bad \ud800 text"))
        log.write_sync(rec(2))
    res = roll(tmp_path)
    assert res.records == 2 and res.quarantined == 0
    rows = {r["request_id"]: r for r in rolled_rows(tmp_path)}
    assert rows["r1"]["prompt"] == "bad \\ud800 text"
