"""Write a scan's files: accounts.parquet, requests.parquet, campaigns.json, summary.json,
quarantine.parquet, timings.json and a self-contained, escaped report.html.

Outputs are all or nothing. ``--out DIR`` is checked before any work
(`prepare_out_dir`): a file, a folder that cannot be written, or a folder holding
anything but a previous scan's files (and its eval.json, eval.html) is an error. Every file is written into a
staging folder next to DIR (same file system), named ``.DIR.distilltrace-partial-<pid>-*``,
checked (all files present, Parquet footers and JSON readable, row counts), then moved
into place in one rename; a previous scan's folder is swapped out atomically
(``renameat2(RENAME_EXCHANGE)`` where the file system has it, else two renames) and
removed. A scan that fails or is killed leaves DIR as it was; its staging folder is
removed by the next scan to the same DIR.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from distilltrace.errors import DistilltraceError, InputError
from distilltrace.report import figure_data_uri, render_html, write_json

_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")

#: The files of a scan folder.
OUTPUT_FILES = (
    "accounts.parquet",
    "requests.parquet",
    "quarantine.parquet",
    "campaigns.json",
    "summary.json",
    "timings.json",
    "report.html",
)
#: What a previous scan's folder may hold: its files and `traffic evaluate`'s (replaced
#: with the folder: an evaluation of the previous scan would be stale).
SCAN_FOLDER_FILES = (*OUTPUT_FILES, "eval.json", "eval.html")
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.distilltrace-(?:partial|old)-(?P<pid>\d+)-[\w]+$")
#: Staging folders handed out in this process: staging -> target.
_STAGING: dict[Path, Path] = {}
#: Timeline days drawn in the report (the readers accept 1970-01-01 up to 2200-01-01).
_PLOT_DAYS = (0, 7_258_118_400 // 86400)


class OutputError(DistilltraceError):
    """The scan's output files could not be written or checked."""


def visible(text: str, limit: int = 600) -> str:
    """Log text made safe to show: control characters replaced, length bounded.
    (HTML escaping is done by the template engine.)"""
    s = _CTRL.sub("\ufffd", str(text))
    return s if len(s) <= limit else s[:limit] + " …"


# ------------------------------------------------------------------ --out checks


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """The absolute target folder, after checking it can take a scan's files (one-line
    InputError otherwise). Creates missing parent folders."""
    p = Path(out_dir).expanduser().absolute()
    if p.is_symlink():
        p = p.resolve()
    if p.exists():
        if not p.is_dir():
            raise InputError(f"--out {p}: is a file, not a folder")
        foreign = sorted(e for e in os.listdir(p) if e not in SCAN_FOLDER_FILES)
        if foreign:
            raise InputError(
                f"--out {p}: the folder holds files that are not a scan's "
                f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}): "
                "give a new or empty folder, or one holding a previous scan (it is replaced)"
            )
        if not os.access(p, os.W_OK | os.X_OK):
            raise InputError(f"--out {p}: no permission to write in this folder")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"--out {p}: cannot create {p.parent}: {e.strerror or e}") from None
    if not os.access(p.parent, os.W_OK | os.X_OK):
        raise InputError(f"--out {p}: no permission to write in {p.parent}")
    return p


def staging_target(path: str | os.PathLike) -> Path | None:
    """The target folder of a staging folder from `prepare_out_dir`, else None."""
    p = Path(path).absolute()
    if p in _STAGING:
        return _STAGING[p]
    m = _LEFTOVER.match(p.name)
    if m and ".distilltrace-partial-" in p.name:
        return p.parent / m["name"]
    return None


def prepare_out_dir(out_dir: str | os.PathLike | None) -> Path | None:
    """Check ``--out`` before any work and return the staging folder to write into
    (not created yet: the writer creates it). Leftovers of earlier killed or failed
    scans to the same folder are removed. A staging folder is returned as it is, None
    as None."""
    if out_dir is None:
        return None
    if staging_target(out_dir) is not None:
        return Path(out_dir).absolute()
    target = check_out_dir(out_dir)
    _remove_leftovers(target)
    try:  # a real probe: creating a folder there must work (read-only file systems)
        probe = tempfile.mkdtemp(
            prefix=f".{target.name}.distilltrace-partial-{os.getpid()}-", dir=target.parent
        )
    except OSError as e:
        raise InputError(f"--out {target}: cannot write in {target.parent}: {e.strerror}") from None
    os.rmdir(probe)
    staging = Path(probe)
    _STAGING[staging] = target
    return staging


def discard_staging(staging: str | os.PathLike) -> None:
    """Remove a staging folder (a failed scan)."""
    p = Path(staging).absolute()
    if staging_target(p) is not None:
        shutil.rmtree(p, ignore_errors=True)
        _STAGING.pop(p, None)


def _remove_leftovers(target: Path) -> None:
    """Staging and swapped-out folders of earlier scans to ``target`` whose process is
    gone (or is this one: a scan here that failed)."""
    for d in target.parent.iterdir():
        m = _LEFTOVER.match(d.name)
        if m is None or m["name"] != target.name or not d.is_dir():
            continue
        if d.absolute() in _STAGING and int(m["pid"]) == os.getpid():
            _STAGING.pop(d.absolute(), None)
        if int(m["pid"]) == os.getpid() or not _alive(int(m["pid"])):
            shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------ writing


def _no_negative_zero(df: pd.DataFrame) -> pd.DataFrame:
    """Float columns with -0.0 turned into 0.0 (x + 0.0; NaN stays NaN)."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype.kind == "f":
            out[c] = out[c].to_numpy() + 0.0
    return out


def _write_parquet(df, path: Path) -> None:
    table = pa.Table.from_pandas(_no_negative_zero(df), preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def _fix_negative_zero_parquet(path: Path) -> None:
    """Rewrite a Parquet file written elsewhere (the engine) when a float column holds
    -0.0; checked one row group at a time, float columns only."""
    pf = pq.ParquetFile(path)
    floats = [f.name for f in pf.schema_arrow if pa.types.is_floating(f.type)]
    if not floats:
        return
    found = False
    for i in range(pf.num_row_groups):
        rg = pf.read_row_group(i, columns=floats)
        for col in rg.columns:
            x = col.to_numpy(zero_copy_only=False)
            if np.any((x == 0) & np.signbit(x)):
                found = True
                break
        if found:
            break
    if not found:
        return
    tmp = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(tmp, pf.schema_arrow, compression="zstd") as w:
        for batch in pf.iter_batches():
            cols = [
                pa.array(c.to_numpy(zero_copy_only=False) + 0.0, type=c.type)
                if pa.types.is_floating(c.type)
                else c
                for c in batch.columns
            ]
            w.write_batch(pa.RecordBatch.from_arrays(cols, schema=batch.schema))
    os.replace(tmp, path)


def _timeline_png(camp) -> str | None:
    """The campaign's daily timeline as a PNG data URI; None when there is nothing to
    draw, a day lies outside the range the readers accept, or plotting fails."""
    if not camp.timeline:
        return None
    days = [int(r["day"]) for r in camp.timeline]
    if min(days) < _PLOT_DAYS[0] or max(days) > _PLOT_DAYS[1]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = None
    try:
        dates = [dt.date(1970, 1, 1) + dt.timedelta(days=d) for d in days]
        fig, ax = plt.subplots(figsize=(6, 1.8))
        ax.bar(dates, [r["requests"] for r in camp.timeline], color="#a33")
        ax.set_ylabel("requests/day")
        ax2 = ax.twinx()
        ax2.plot(dates, [r["accounts"] for r in camp.timeline], color="#335", marker=".")
        ax2.set_ylabel("active accounts")
        fig.autofmt_xdate()
        return figure_data_uri(fig)
    except Exception:  # noqa: BLE001 - a figure must never cost the report
        if fig is not None:
            plt.close(fig)
        return None


def write_outputs(result, out: Path) -> None:
    """Write every output file of a scan, all or nothing (see the module docstring).

    ``out`` is the target folder, or a staging folder from `prepare_out_dir` (then the
    files go to its target)."""
    target = staging_target(out)
    staging = Path(out).absolute()
    if target is None:  # called without prepare_out_dir: stage here
        target = check_out_dir(out)
        staging = prepare_out_dir(target)
        staging.mkdir()
        for name, path in dict(result.files).items():  # written by the engine into out
            if Path(path).parent.absolute() == target and Path(path).exists():
                os.replace(path, staging / Path(path).name)
                result.files[name] = str(staging / Path(path).name)
    try:
        staging.mkdir(parents=True, exist_ok=True)
        files = _write_all(result, staging)
        _validate(result, staging)
        _commit(staging, target)
    except BaseException:
        discard_staging(staging)
        raise
    _STAGING.pop(staging, None)
    result.files = {k: str(target / Path(v).name) for k, v in files.items()}
    result.out_dir = target


def _write_all(result, out: Path) -> dict[str, str]:
    files = {k: str(out / Path(v).name) for k, v in result.files.items()}
    _write_parquet(result.accounts, out / "accounts.parquet")
    files["accounts"] = str(out / "accounts.parquet")
    if result.requests is not None and "requests" not in files:
        _write_parquet(result.requests, out / "requests.parquet")
        files["requests"] = str(out / "requests.parquet")
    elif "requests" in files:
        _fix_negative_zero_parquet(Path(files["requests"]))
    quarantine = result.quarantine
    if quarantine is None:
        quarantine = pd.DataFrame(
            {c: pd.Series([], dtype=object) for c in ("source", "reason", "raw")}
        )
    _write_parquet(quarantine, out / "quarantine.parquet")
    files["quarantine"] = str(out / "quarantine.parquet")
    write_json({"campaigns": [c.to_dict() for c in result.campaigns]}, out / "campaigns.json")
    files["campaigns"] = str(out / "campaigns.json")
    summary = {k: v for k, v in result.summary.items() if k != "timings_s"}
    write_json(summary, out / "summary.json")
    files["summary"] = str(out / "summary.json")
    write_json({"timings_s": result.summary.get("timings_s", {})}, out / "timings.json")
    files["timings"] = str(out / "timings.json")
    render_report(result, out / "report.html")
    files["report"] = str(out / "report.html")
    return files


def _validate(result, out: Path) -> None:
    """Every file present and readable, the tables with their row counts."""
    missing = [f for f in OUTPUT_FILES if not (out / f).is_file()]
    if missing:
        raise OutputError(f"scan output incomplete: {', '.join(missing)} not written")
    rows = {"accounts.parquet": len(result.accounts)}
    if result.quarantine is not None:
        rows["quarantine.parquet"] = len(result.quarantine)
    if result.requests is not None:
        rows["requests.parquet"] = len(result.requests)
    for name in ("accounts.parquet", "requests.parquet", "quarantine.parquet"):
        try:
            n = pq.read_metadata(out / name).num_rows
        except Exception as e:  # noqa: BLE001 - any unreadable footer
            raise OutputError(f"scan output {name} is not readable: {e}") from None
        if name in rows and n != rows[name]:
            raise OutputError(f"scan output {name} holds {n} rows, expected {rows[name]}")
    for name in ("campaigns.json", "summary.json", "timings.json"):
        try:
            json.loads((out / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise OutputError(f"scan output {name} is not readable JSON: {e}") from None
    if "</html>" not in (out / "report.html").read_text(encoding="utf-8")[-200:]:
        raise OutputError("scan output report.html is incomplete")


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the
    system or file system does not offer it."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _commit(staging: Path, target: Path) -> None:
    """Move the checked staging folder into place (replacing a previous scan's folder)."""
    for f in staging.iterdir():
        _fsync(f)
    _fsync(staging, directory=True)
    if target.exists():
        check_out_dir(target)  # still only a previous scan's files
        if _exchange(staging, target):
            shutil.rmtree(staging, ignore_errors=True)  # now the previous scan
        else:
            old = Path(
                tempfile.mkdtemp(
                    prefix=f".{target.name}.distilltrace-old-{os.getpid()}-", dir=target.parent
                )
            )
            os.rmdir(old)
            os.rename(target, old)
            os.rename(staging, target)
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, target)
    with contextlib.suppress(OSError):
        _fsync(target.parent, directory=True)


# ------------------------------------------------------------------ report


def render_report(result, path: Path) -> Path:
    """The HTML report (campaign table, timelines, shared infrastructure, example prompts)."""
    camps = []
    for c in result.campaigns[:25]:
        camps.append(
            {
                "c": c,
                "png": _timeline_png(c),
                "examples": [dict(e, prompt=visible(e["prompt"])) for e in c.examples],
                "infra": [dict(i, value=visible(i["value"], 120)) for i in c.shared_infrastructure],
                "members": [visible(m, 80) for m in c.members[:30]],
                "top_signals": sorted(c.signals.items(), key=lambda kv: -kv[1])[:5],
            }
        )
    s = result.summary
    top_accounts = result.accounts.sort_values(
        ["risk", "account_id"], ascending=[False, True]
    ).head(30)
    accounts = [
        {
            "account_id": visible(r.account_id, 80),
            "risk": float(r.risk) + 0.0,
            "flagged": bool(r.flagged),
            "cluster_id": int(r.cluster_id),
            "n_requests": int(r.n_requests),
        }
        for r in top_accounts.itertuples()
    ]
    return render_html(
        "traffic_scan.html",
        {
            "summary": s,
            "campaigns": camps,
            "accounts": accounts,
            "quarantine_reasons": s.get("load", {}).get("quarantine_reasons", {}),
        },
        path,
    )
