"""Harvesting a teacher: records, resumption, failures midway, bad dataset files."""

from __future__ import annotations

import json

import pytest

from distilltrace.distill.dataset import read_records
from distilltrace.distill.harvesting import harvest
from distilltrace.distill.prompts import generate_prompts
from distilltrace.errors import EndpointError, InputError


class FailingAfter:
    """A real local teacher whose connection drops after `n` successful generate calls
    (what an endpoint failing midway looks like to the harvester)."""

    def __init__(self, model, n: int):
        self.model, self.n, self.info = model, n, model.info

    def generate(self, prompts, **kw):
        if self.n <= 0:
            raise ConnectionResetError("connection reset by peer")
        self.n -= 1
        return self.model.generate(prompts, **kw)


def test_records_and_metadata(teacher, tmp_path):
    prompts = generate_prompts(10, seed=3)
    out = tmp_path / "h.jsonl"
    res = harvest(teacher, prompts, out, max_new_tokens=16, batch_size=4, progress=False)
    assert (res.n_prompts, res.n_new, res.n_existing) == (10, 10, 0)
    recs = read_records(out)
    assert [r.prompt for r in recs] == [p.text for p in prompts]
    m = recs[0].meta
    assert m["teacher_identity"] == teacher.info.identity
    assert (m["max_new_tokens"], m["temperature"], m["seed"]) == (16, 0.7, 0)
    assert m["family"] == prompts[0].family and m["finish_reason"] in ("stop", "length")
    assert res.new_tokens == sum(r.meta["n_tokens"] for r in recs) > 0
    again = harvest(teacher, prompts, out, max_new_tokens=16, batch_size=4, progress=False)
    assert (again.n_new, again.n_existing) == (0, 10)
    assert read_records(out) == recs


def test_interrupted_and_resumed_equals_uninterrupted(teacher, tmp_path):
    prompts = generate_prompts(14, seed=4)
    ref = tmp_path / "ref.jsonl"
    harvest(teacher, prompts, ref, max_new_tokens=20, batch_size=3, progress=False)
    out = tmp_path / "resumed.jsonl"
    with pytest.raises(EndpointError, match=r"failed after 6 of 14 prompts.*rerun"):
        harvest(
            FailingAfter(teacher, 2), prompts, out, max_new_tokens=20, batch_size=3, progress=False
        )
    assert len(read_records(out)) == 6  # what it had is kept
    # a crash mid-write leaves a cut-off last line: it is dropped and re-harvested
    with open(out, "ab") as f:
        f.write(b'{"prompt": "half a reco')
    res = harvest(teacher, prompts, out, max_new_tokens=20, batch_size=5, progress=False)
    assert (res.n_existing, res.n_new) == (6, 8)
    assert out.read_bytes() == ref.read_bytes()


def test_parquet_output_and_resume(teacher, tmp_path):
    prompts = generate_prompts(6, seed=5)
    out = tmp_path / "h.parquet"
    harvest(teacher, prompts[:3], out, max_new_tokens=8, progress=False)
    harvest(teacher, prompts, out, max_new_tokens=8, progress=False)
    ref = tmp_path / "h.jsonl"
    harvest(teacher, prompts, ref, max_new_tokens=8, progress=False)
    assert read_records(out) == read_records(ref)


def test_resume_with_other_parameters_is_refused(teacher, tmp_path):
    prompts = generate_prompts(3, seed=6)
    out = tmp_path / "h.jsonl"
    harvest(teacher, prompts, out, max_new_tokens=8, progress=False)
    with pytest.raises(InputError, match="temperature"):
        harvest(teacher, prompts, out, max_new_tokens=8, temperature=0.2, progress=False)


def test_bad_dataset_files_name_the_line(tmp_path):
    p = tmp_path / "d.jsonl"
    good = json.dumps({"prompt": "a", "response": "b"})
    p.write_text(good + "\n" + good + "\n{not json}\n")
    with pytest.raises(InputError, match="line 3: malformed JSON"):
        read_records(p)
    p.write_text(good + "\n" + json.dumps({"prompt": "a"}) + "\n")
    with pytest.raises(InputError, match="line 2: missing field 'response'"):
        read_records(p)
    p.write_text("")
    with pytest.raises(InputError, match="empty"):
        read_records(p)


def _start_server(model_dir, port):
    """A real `distilltrace serve` process on 127.0.0.1:port (same command as
    tests.serve_helpers.running_server, but on a port we choose, so that the
    endpoint can come back at the same address)."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distilltrace.cli",
            "serve",
            str(model_dir),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # one torch thread: the tiny model serves fastest so on a shared 2-core machine
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1.0)
            if r.status_code == 200:
                return proc, r.json()["data"][0]["id"]
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except Exception:  # noqa: BLE001
        proc.kill()


@pytest.mark.slow
def test_endpoint_failing_midway_keeps_records_and_resumes(teacher_dir, tmp_path):
    import threading
    import time

    from distilltrace.models import load_model
    from tests.serve_helpers import free_port

    port = free_port()
    prompts = generate_prompts(24, seed=8)
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    proc, name = _start_server(teacher_dir, port)
    spec = f"openai:http://127.0.0.1:{port}/v1;model={name};retries=0;timeout=30"
    try:
        harvest(load_model(spec), prompts, ref, max_new_tokens=12, batch_size=2, progress=False)
        teacher = load_model(spec)

        def pull_the_plug():  # the endpoint dies (kill -9: at once) once a few batches are stored
            while not out.exists() or out.read_text().count("\n") < 4:
                time.sleep(0.005)
            proc.kill()
            proc.wait(timeout=30)

        watcher = threading.Thread(target=pull_the_plug)
        watcher.start()
        with pytest.raises(EndpointError, match=r"failed after \d+ of 24 prompts.*kept"):
            harvest(teacher, prompts, out, max_new_tokens=12, batch_size=2, progress=False)
        watcher.join()
    finally:
        _stop(proc)
    kept = read_records(out)
    assert 4 <= len(kept) < 24
    proc, _ = _start_server(teacher_dir, port)  # the endpoint comes back at the same address
    try:
        res = harvest(
            load_model(spec), prompts, out, max_new_tokens=12, batch_size=2, progress=False
        )
    finally:
        _stop(proc)
    assert res.n_existing == len(kept) and res.n_new == 24 - len(kept)
    assert out.read_bytes() == ref.read_bytes()
