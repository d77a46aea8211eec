"""pdfocr-watcher: watched folders in, converted documents out, through the pdfocr.org API."""

__version__ = "0.1.0"
