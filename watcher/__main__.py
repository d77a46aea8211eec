"""Lets `python -m watcher` behave exactly like the `pdfocr-watcher` script; from a fresh clone
it first sets up the environment the program needs (watcher/bootstrap.py), so it is imported
before anything that needs a third-party package."""

import sys

from watcher import bootstrap

bootstrap.ensure("sandbox", ["-m", "watcher", *sys.argv[1:]])

from watcher.cli import main  # noqa: E402  (needs the packages ensure() made sure of)

sys.exit(main())
