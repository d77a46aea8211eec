"""Runs a `watcher.sandbox.Sandbox` on 127.0.0.1 in its own process for the benchmarks.

Prints `READY <url>` once it serves, and stops on SIGTERM. With `--record FILE` it appends one
line per accepted submission, `<remote filename>\\t<request arrived>\\t<upload read>`
(epoch seconds), so a benchmark can tell when each upload started at the service's side.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watcher.sandbox import Sandbox
from watcher.sandbox import http as sandbox_http  # serves with its _Handler

_arrival = threading.local()  # one request per handler thread


class _ArrivalHandler(sandbox_http._Handler):
    """Notes when a POST's request line arrived, before its body is read."""

    def do_POST(self) -> None:
        _arrival.at = time.time()
        super().do_POST()


class RecordingSandbox(Sandbox):
    def __init__(self, record: Path | None, **options: object):
        super().__init__(**options)  # type: ignore[arg-type]
        self._record = record.open("a", encoding="utf-8") if record else None
        self._record_lock = threading.Lock()

    def _accept(self, fields, data, url):  # type: ignore[no-untyped-def]
        read_at = time.time()
        if self._record is not None:
            arrived = getattr(_arrival, "at", read_at)
            with self._record_lock:
                self._record.write(f"{fields.get('filename', '')}\t{arrived:.6f}\t{read_at:.6f}\n")
                self._record.flush()
        return super()._accept(fields, data, url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default="sandbox-key")
    parser.add_argument("--credits", type=int, default=10**9)
    parser.add_argument("--seconds-per-page", type=float, default=0.0)
    parser.add_argument("--cut-after", type=float, default=100.0)
    parser.add_argument("--record", type=Path)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.record is not None:
        sandbox_http._Handler = _ArrivalHandler  # Sandbox.start() serves with this class
    box = RecordingSandbox(
        args.record,
        host="127.0.0.1",
        port=args.port,
        key=args.key,
        credits=args.credits,
        seconds_per_page=args.seconds_per_page,
        cut_after=args.cut_after,
        workdir=args.workdir,
    ).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"READY {box.url}", flush=True)
    while not stop.wait(0.5):
        pass
    box.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
