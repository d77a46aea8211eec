"""Lets `python -m watcher` behave exactly like the `pdfocr-watcher` script."""

import sys

from watcher.cli import main

sys.exit(main())
