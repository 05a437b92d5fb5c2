"""Readers: formats, validation, quarantine, duplicates, bad files, random rows."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distilltrace.errors import InputError
from distilltrace.traffic.engine import DuckDBEngine
from distilltrace.traffic.readers import load_events


def _load(src):
    eng = DuckDBEngine(threads=1)
    rep = load_events(eng, src)
    ev = eng.fetch("SELECT * FROM events ORDER BY request_id")
    q = eng.fetch("SELECT * FROM quarantine ORDER BY source, row_number")
    eng.close()
    return rep, ev, q


def test_csv_quarantine_reasons(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(
        "request_id,timestamp,account_id,prompt,asn,extra_col\n"
        '1,2026-01-01T00:00:00Z,a,"hi, there",12,x\n'
        "2,not-a-time,b,yo,7,x\n"
        "3,2026-01-01T00:00:02Z,,empty account,7,x\n"
        "4,2026-01-01T00:00:03Z,d,bad asn,seven,x\n"
        "5,2026-01-01T00:00:04+02:00,e,ok,,x\n"
    )
    rep, ev, q = _load([p])
    assert rep.rows_read == 5 and rep.rows_valid == 2 and rep.rows_quarantined == 3
    assert sorted(ev["request_id"]) == ["1", "5"]
    reasons = dict(zip(q["request_id"], q["reason"], strict=True))
    assert reasons["2"] == "timestamp: unparseable timestamp"
    assert reasons["3"] == "missing required value account_id"
    assert reasons["4"] == "asn: wrong type"
    assert "extra_col" in rep.unknown_columns
    assert "extra_col" not in ev.columns


def test_jsonl_malformed_and_wrong_type(tmp_path):
    p = tmp_path / "a.jsonl"
    rows = [
        {"request_id": "1", "timestamp": "2026-01-01T00:00:00Z", "account_id": "a", "prompt": "x"},
        "{not json",
        {
            "request_id": "3",
            "timestamp": "2026-01-01T00:00:00Z",
            "account_id": "a",
            "prompt": ["x"],
        },
        {"request_id": "4", "timestamp": "2026-01-01T00:00:00Z", "account_id": "a"},
    ]
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n\n")
    rep, ev, q = _load([p])
    assert list(ev["request_id"]) == ["1"]
    assert rep.quarantine_reasons == {
        "malformed JSON line": 1,
        "prompt: wrong type": 1,
        "missing required value prompt": 1,
    }


def test_missing_required_column_names_it(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("request_id,timestamp,account_id\n1,2026-01-01T00:00:00Z,a\n")
    with pytest.raises(InputError, match="missing required column 'prompt'"):
        _load([p])


def test_empty_and_unreadable_files(tmp_path):
    e = tmp_path / "empty.parquet"
    e.write_bytes(b"")
    rep, ev, q = _load([e])
    assert rep.rows_read == 0 and len(ev) == 0
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet at all")
    with pytest.raises(InputError, match="bad.parquet"):
        _load([bad])
    with pytest.raises(InputError, match="not found"):
        _load([tmp_path / "nope.csv"])


def test_duplicates_reported_first_kept_and_campaign_id_never_loaded(tmp_path):
    df = pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r2"],
            "timestamp": pd.to_datetime(
                ["2026-01-01 00:00:01", "2026-01-01 00:00:00", "2026-01-01 00:00:00"]
            ),
            "account_id": ["late", "early", "b"],
            "prompt": ["x", "y", "z"],
            "campaign_id": ["c", None, "c"],
            "response": ["secret", "secret", "secret"],
        }
    )
    p = tmp_path / "d.parquet"
    df.to_parquet(p)
    rep, ev, q = _load([p])
    assert rep.duplicate_request_ids == 1 and rep.duplicate_rows_dropped == 1
    assert ev.set_index("request_id").loc["r1", "account_id"] == "early"
    assert "campaign_id" not in ev.columns and "response" not in ev.columns


def test_invalid_utf8_and_control_characters(tmp_path):
    p = tmp_path / "u.csv"
    p.write_bytes(
        b'request_id,timestamp,account_id,prompt\n1,2026-01-01T00:00:00Z,a,"h\xff\xfe\x01i <b>"\n'
    )
    rep, ev, q = _load([p])
    assert rep.utf8_repaired_files == [str(p)]
    assert ev["prompt"].iloc[0] == "h\ufffd\ufffd\x01i <b>"


_text = st.one_of(st.none(), st.text(max_size=40))
_row = st.fixed_dictionaries(
    {
        "request_id": _text,
        "timestamp": st.one_of(
            _text, st.sampled_from(["2026-01-01T00:00:00Z", "2026-02-03 04:05:06"])
        ),
        "account_id": _text,
        "prompt": _text,
        "asn": st.one_of(_text, st.integers(-(2**40), 2**40).map(str)),
    }
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(_row, min_size=0, max_size=8), fmt=st.sampled_from(["csv", "jsonl", "parquet"])
)
def test_random_rows_are_valid_or_quarantined(tmp_path, rows, fmt):
    df = pd.DataFrame(
        rows, columns=["request_id", "timestamp", "account_id", "prompt", "asn"], dtype=object
    )
    p = tmp_path / f"r.{fmt}"
    if fmt == "csv":
        # quoted: pandas leaves a bare \r unquoted, which ends a line in any CSV reader
        df.to_csv(p, index=False, quoting=csv.QUOTE_ALL)
    elif fmt == "jsonl":
        df.to_json(p, orient="records", lines=True)
    else:
        df.astype("string").to_parquet(p)
    rep, ev, q = _load([p])
    # every row is accounted for: kept, a duplicate, or quarantined with a reason
    assert rep.rows_valid + rep.rows_quarantined == len(df) == rep.rows_read
    assert len(ev) == rep.rows_valid - rep.duplicate_rows_dropped
    assert (q["reason"].str.len() > 0).all()
    assert ev["request_id"].notna().all() and ev["t"].notna().all()


def test_several_files_in_mixed_formats(tmp_path):
    a = tmp_path / "a.parquet"
    pd.DataFrame(
        {
            "request_id": ["1"],
            "timestamp": pd.to_datetime(["2026-01-01"], utc=True),
            "account_id": ["x"],
            "prompt": ["p"],
            "asn": [5],
        }
    ).to_parquet(a)
    b = tmp_path / "b.jsonl"
    b.write_text(
        '{"request_id": "2", "timestamp": "2026-01-02T00:00:00Z", "account_id": "y", "prompt": "q", "country": "FR"}\n'
    )
    rep, ev, q = _load([a, b])
    assert list(ev["request_id"]) == ["1", "2"]
    assert ev["asn"].tolist()[0] == 5 and ev["country"].tolist()[1] == "FR"
    assert rep.files == [str(a), str(b)]


def test_quarantine_built_only_for_sources_with_invalid_rows(tmp_path, monkeypatch):
    """A clean source adds nothing to the quarantine and is not checked a second time;
    a source with invalid rows has every one of them quarantined, with its reason."""
    from distilltrace.traffic import readers

    def frame(ids, stamps):
        return pd.DataFrame(
            {
                "request_id": ids,
                "timestamp": stamps,
                "account_id": ["x"] * len(ids),
                "prompt": ["p"] * len(ids),
            }
        )

    clean, dirty = tmp_path / "clean.parquet", tmp_path / "dirty.parquet"
    frame(["1", "2"], ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]).to_parquet(clean)
    frame(["3", "4", "5"], ["2026-01-03T00:00:00Z", "yesterday", "1900-01-01"]).to_parquet(dirty)
    built = []
    run = readers.DuckDBEngine.run

    def spy(self, sql):
        if "TABLE qchk_" in sql:
            built.append(sql.split("TABLE ")[1].split()[0])
        return run(self, sql)

    monkeypatch.setattr(readers.DuckDBEngine, "run", spy)
    rep, ev, q = _load([clean, dirty])
    assert built == ["qchk_1"]  # the dirty file only
    assert list(ev["request_id"]) == ["1", "2", "3"]
    assert list(q["request_id"]) == ["4", "5"] and set(q["source"]) == {str(dirty)}
    assert rep.source_records == {str(clean): 2, str(dirty): 3}
    assert rep.rows_valid == 3 and rep.rows_quarantined == 2 and rep.rows_read == 5
    assert sorted(rep.quarantine_reasons) == [
        "timestamp: out of range (before 1970 or from 2200 on)",
        "timestamp: unparseable timestamp",
    ]


@pytest.mark.parametrize("columns", [64, 1])
def test_valid_rows_counted_per_source_either_way(tmp_path, monkeypatch, columns):
    """Valid rows per source are counted beside the ids' distinct count (one column per
    source) or, past MAX_SOURCE_COLUMNS sources, by a group-by: the same report."""
    from distilltrace.traffic import readers

    monkeypatch.setattr(readers, "MAX_SOURCE_COLUMNS", columns)
    paths = []
    for k, (ids, stamps) in enumerate(
        [
            (["1", "2", "3"], ["2026-01-01T00:00:00Z"] * 3),
            (["3", "4"], ["2026-01-02T00:00:00Z", "yesterday"]),  # "3" again; one invalid
            (["5"], ["2026-01-03T00:00:00Z"]),
        ]
    ):
        p = tmp_path / f"s{k}.parquet"
        pd.DataFrame(
            {"request_id": ids, "timestamp": stamps, "account_id": "a", "prompt": "x" * 4001}
        ).to_parquet(p)
        paths.append(p)
    rep, ev, q = _load(paths)
    assert rep.source_records == {str(p): n for p, n in zip(paths, [3, 2, 1], strict=True)}
    assert rep.rows_valid == 5 and rep.rows_quarantined == 1 and list(q["request_id"]) == ["4"]
    assert rep.duplicate_request_ids == 1 and rep.duplicate_rows_dropped == 1
    assert rep.prompts_truncated == 5
    assert list(ev["request_id"]) == ["1", "2", "3", "5"]


def test_huge_prompt_truncated_and_counted(tmp_path):
    df = pd.DataFrame(
        {
            "request_id": ["1", "2"],
            "timestamp": pd.to_datetime(["2026-01-01", "2026-01-01"], utc=True),
            "account_id": ["a", "b"],
            "prompt": ["x" * 300_000, "<b>\x00\x1b[31m"],
        }
    )
    rep, ev, q = _load(df)
    assert rep.prompts_truncated == 1 and rep.rows_valid == 2
    assert ev["prompt"].str.len().max() == 4000


def test_prompt_cut_counts_characters_not_bytes(tmp_path):
    """The cut is at 4000 characters: a prompt of 3000 two-byte characters (6000 bytes) is
    kept whole; one of 4001 is cut; ASCII prompts of 4000 and 4001 characters either side."""
    prompts = ["é" * 3000, "é" * 4001, "x" * 4000, "x" * 4001, "日" * 1400]
    df = pd.DataFrame(
        {
            "request_id": [str(i) for i in range(len(prompts))],
            "timestamp": pd.to_datetime(["2026-01-01"] * len(prompts), utc=True),
            "account_id": "a",
            "prompt": prompts,
        }
    )
    rep, ev, _ = _load(df)
    assert rep.prompts_truncated == 2
    got = dict(zip(ev["request_id"], ev["prompt"], strict=True))
    assert got["0"] == prompts[0] and got["2"] == prompts[2] and got["4"] == prompts[4]
    assert got["1"] == "é" * 4000 and got["3"] == "x" * 4000
