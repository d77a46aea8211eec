"""The daemon's own log file: it rotates by size, counting what it writes."""

from __future__ import annotations

import logging
from pathlib import Path

from watcher.logs import FORMAT, LogFile, RedactingFormatter


def test_the_log_file_rotates_at_its_size_and_keeps_every_line(tmp_path: Path) -> None:
    path = tmp_path / "watcher.log"
    path.write_text("x" * 700 + "\n")  # left by an earlier run: counted from the start
    handler = LogFile(path, maxBytes=1000, backupCount=9, encoding="utf-8")
    handler.setFormatter(RedactingFormatter(FORMAT))
    logger = logging.getLogger("test-log-rotation")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for number in range(40):
            logger.warning("line %02d %s", number, "ä" * 20)
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted(tmp_path.glob("watcher.log*"))
    assert len(files) > 3  # it rotated, more than once
    assert all(len(f.read_text(encoding="utf-8")) <= 1000 for f in files)
    lines = [line for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    assert sorted(line[-26:-21] for line in lines if "line " in line) == [
        f"ne {n:02d}" for n in range(40)
    ]
    oldest = max(files, key=lambda f: int(f.suffix[1:]) if f.suffix[1:].isdigit() else 0)
    assert oldest.read_text(encoding="utf-8").startswith("x" * 700)
