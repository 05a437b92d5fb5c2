"""The live scan worker process: ``python -m distilltrace.gateway.scanworker``.

:class:`~distilltrace.gateway.live.LiveScorer` runs its scans here (``LiveConfig.isolate``)
so that a scan's Python work never holds the serving process's GIL. The protocol is
private to the two processes: on stdin, length-prefixed pickles of ``(table as an Arrow
IPC stream, ScanConfig, content, threads)``; on stdout, length-prefixed pickles of
``(True, (ScanResult, scores))`` or ``(False, exception)``. The worker exits when its
stdin closes (the gateway stopped or died).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import threading
from typing import IO, Any

_HEADER = 8


def _send(f: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(len(data).to_bytes(_HEADER, "big") + data)
    f.flush()


def _recv(f: IO[bytes]) -> Any:
    head = f.read(_HEADER)
    if len(head) < _HEADER:
        raise EOFError("the other side closed the pipe")
    n = int.from_bytes(head, "big")
    data = f.read(n)
    if len(data) < n:
        raise EOFError("the other side closed the pipe mid-message")
    return pickle.loads(data)


def main() -> None:
    from distilltrace.gateway.live import _scan_ipc

    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the protocol
    while True:
        try:
            args = _recv(inp)
        except EOFError:
            return
        try:
            reply: tuple = (True, _scan_ipc(*args))
        except Exception as e:  # noqa: BLE001 - handed back to the caller
            reply = (False, e)
        try:
            _send(out, reply)
        except (pickle.PicklingError, TypeError, AttributeError):
            _send(out, (False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]}")))


class ScanWorker:
    """The parent side: starts the worker on first use, one call at a time; a worker that
    died is restarted on the next call (the failed call raises ``RuntimeError``)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def call(self, *args: Any) -> Any:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                cmd = [sys.executable, "-m", "distilltrace.gateway.scanworker"]
                self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            proc = self._proc
            try:
                _send(proc.stdin, args)
                ok, value = _recv(proc.stdout)
            except (EOFError, BrokenPipeError, OSError) as e:
                self._stop(proc)
                raise RuntimeError(f"the live scan worker died ({type(e).__name__})") from None
        if not ok:
            raise value
        return value

    def _stop(self, proc: subprocess.Popen) -> None:
        if self._proc is proc:
            self._proc = None
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._stop(self._proc)


if __name__ == "__main__":
    main()
