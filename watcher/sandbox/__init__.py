"""A local stand-in for the pdfocr.org API (shared/API.md), for tests and the first-run demo.

It converts for real, so tests can check what comes back; it keeps a ledger of every charge, so
tests can catch a client that pays twice for one file; and it misbehaves on request, so tests
can prove the client survives what the real service and its CDN may do: resets, 524 cuts, 5xx
pages, truncated downloads, names registered late, jobs lost after a cut, slow replies, and a
service that goes away and comes back, with or without its memory. Replies copy the service:
HTTP 200 with a JSON retcode string for every verdict, HTML pages for what the CDN says.

The parts, each in its own module:

- service.py: the service's rules and state (validation, charges, ledger, credit, jobs,
  status polls) and the misbehaviours inside the service;
- faults.py: the fault kinds, where each may strike, their random rates and the picking order;
- http.py: the HTTP front (`Sandbox` on a port, replies and pages, control hooks, `serve`);
- memory.py: the same answers without a port (`MemorySandbox`, whose `transport` the real
  client takes in the runner's unit tests);
- converters.py: the real conversions (`convert`) and the check of an upload.

Import from here: `from watcher.sandbox import Sandbox`.
"""

from watcher.sandbox.converters import PROTECTED_MSG, convert
from watcher.sandbox.faults import FAULT_KINDS, FaultRates
from watcher.sandbox.http import API_PATH, TIMEOUT_PAGE, Sandbox, serve
from watcher.sandbox.service import BEHAVIOURS, Charge, Service, Verdict

__all__ = [
    "API_PATH",
    "BEHAVIOURS",
    "FAULT_KINDS",
    "PROTECTED_MSG",
    "TIMEOUT_PAGE",
    "Charge",
    "FaultRates",
    "Sandbox",
    "Service",
    "Verdict",
    "convert",
    "serve",
]
