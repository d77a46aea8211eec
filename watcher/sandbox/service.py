"""The rules of the pdfocr.org service as the sandbox plays them, without any HTTP.

Why a module of its own: this is what a test counts on. It validates a submission in the
service's order, charges it (the ledger and the credit balance), converts it for real, answers
status polls by name, and plays the misbehaviours that happen *inside* a service rather than on
the wire: names registered late, jobs lost after a cut reply, slow answers, and a service that
forgets its jobs. The HTTP front (http.py) turns the verdicts given here into the replies
pdfocr.org sends, and tells this module when a reply was cut.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from watcher import contract
from watcher.sandbox.converters import Unsupported, _inspect, convert
from watcher.sandbox.faults import FaultRates, check_injection, random_fault, take_queued
from watcher.wording import count

log = logging.getLogger(__name__)

DOC_PATH = "/doc/"  # results are downloaded from DOC_PATH + "<token>/<name>"
_KEY_MSG = "API key does not exist, please sign up."
# The plain attributes a running sandbox reads per request, all seconds except lose_after_cut
# (a probability); the constructor, set_behaviour and POST /_sandbox/behaviour check them.
BEHAVIOURS: tuple[str, ...] = (
    "seconds_per_page",
    "cut_after",
    "download_delay",
    "late_names",
    "lose_after_cut",
    "reply_delay",
    "poll_delay",
)


def check_behaviour(name: str, value: object) -> float:
    """`value` as a float if it suits behaviour `name`, else ValueError saying why."""
    if name not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {name!r}; known: {', '.join(BEHAVIOURS)}")
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
    if name == "lose_after_cut" and value > 1:
        raise ValueError(f"lose_after_cut is a probability from 0 to 1, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Charge:
    """One paid conversion: what a test inspects to prove a file was paid for exactly once."""

    filename: str
    outformat: str
    lang: str
    ocr: bool
    pages: int
    via: str  # "upload" or "url"


@dataclass(frozen=True)
class Verdict:
    """An answer of the service; the front sends it as HTTP 200 with this JSON retcode."""

    retcode: str
    msg: str
    data: dict[str, Any] | None = None


class _Refused(Exception):
    """A refusal of the service: sent as HTTP 200 with a JSON retcode, like pdfocr.org does."""

    def __init__(self, retcode: str, msg: str):
        super().__init__(msg)
        self.verdict = Verdict(retcode, msg)


@dataclass
class _Job:
    """A conversion, findable by (filename, outformat) for status polls after a cut."""

    name: str  # the result's name, "<stem>.<outformat>"
    token: str
    link: str
    received: float  # time.monotonic() when it was charged: late_names counts from here
    epoch: int  # the service's memory when it was charged: forget() starts a new one
    done: threading.Event = field(default_factory=threading.Event)
    error: str = ""
    lost: bool = False  # lost after a cut: charged, but never found again


class Service:
    """The service's state and rules: credit, ledger, jobs, fault switches and misbehaviours.

    Every name in BEHAVIOURS is a plain attribute read per request, so tests may change it on a
    running sandbox (the constructor checks the values it is given; set_behaviour checks too):

    - seconds_per_page: conversion time per page, like a slow OCR run.
    - cut_after: seconds after which a submission's reply is cut with a 524 page, as the CDN
      does; the conversion goes on.
    - download_delay: seconds every download pauses halfway through its body, so a test can
      kill a client mid-download.
    - late_names: for this many seconds after a submission was charged, status polls for its
      name answer exactly as for a name the service never received ("File not found"); then
      they see the job. Read at poll time, so a change applies to jobs already charged.
    - lose_after_cut: probability that a job whose submission reply was cut (a 524, injected
      or from cut_after, or a reset after the upload) is lost: it stays charged, and every
      later poll for it answers "File not found" (until the name is uploaded, and charged,
      again). Drawn from the seeded RNG, whatever faults are queued; inject("lose_job") loses
      the next cut job for certain.
    - reply_delay: seconds waited before every reply on the API endpoint (submissions and
      polls, fault pages included; not downloads, nor the /_sandbox/ hooks), after everything
      else, cut_after included. poll_delay: seconds more before each poll reply. A poll waits
      before it is answered, a submission after it was charged. stop() ends the waits.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        key: str = "sandbox-key",
        credits: int = 1000,
        seconds_per_page: float = 0.0,
        cut_after: float = 100.0,
        workdir: Path | None = None,
        faults: FaultRates | None = None,
        seed: int | None = None,
        download_delay: float = 0.0,
        late_names: float = 0.0,
        lose_after_cut: float = 0.0,
        reply_delay: float = 0.0,
        poll_delay: float = 0.0,
    ):
        self.host, self.port, self.key = host, port, key
        self.seconds_per_page = check_behaviour("seconds_per_page", seconds_per_page)
        self.cut_after = check_behaviour("cut_after", cut_after)
        self.download_delay = check_behaviour("download_delay", download_delay)
        self.late_names = check_behaviour("late_names", late_names)
        self.lose_after_cut = check_behaviour("lose_after_cut", lose_after_cut)
        self.reply_delay = check_behaviour("reply_delay", reply_delay)
        self.poll_delay = check_behaviour("poll_delay", poll_delay)
        self.faults = faults or FaultRates()
        self._workdir, self._own_workdir = workdir, workdir is None
        self._rng = random.Random(seed)
        self._lock = threading.Condition()  # guards everything below; notified when idle
        self._available = credits
        self._ledger: list[Charge] = []
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._files: dict[str, Path] = {}
        self._epoch = 0
        self._queued: Counter[str] = Counter()
        self.fired: Counter[str] = Counter()  # faults that happened, by kind (and "lose_job")
        self._running = 0
        self._stopping = threading.Event()

    # -- what tests use --------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def available_pages(self) -> int:
        with self._lock:
            return self._available

    @available_pages.setter
    def available_pages(self, value: int) -> None:
        with self._lock:
            self._available = int(value)

    def ledger(self) -> list[Charge]:
        with self._lock:
            return list(self._ledger)

    def inject(self, kind: str, times: int = 1) -> None:
        """Queue a deterministic fault for the next `times` requests it applies to.

        "lose_job" applies to the next submissions whose reply is cut (a 524 or a reset after
        the upload), however many other requests come first. While any fault is queued, the
        random FaultRates faults pause (lose_after_cut does not).
        """
        check_injection(kind, times)
        with self._lock:
            self._queued[kind] += times

    def wait_idle(self, timeout: float = 10.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._running == 0, timeout)

    def forget(self) -> int:
        """Forget every job, as a service restarted without its memory: how many names it knew.

        Polls for earlier names answer "File not found" and their result files are gone (also
        those of conversions still running, when they end). The ledger and the credit balance
        stay: they are the bank's. Queued faults stay too.
        """
        with self._lock:
            known, files = len(self._jobs), list(self._files.values())
            self._jobs.clear()
            self._files.clear()
            self._epoch += 1
        for path in files:
            shutil.rmtree(path.parent, ignore_errors=True)
        log.debug("forgot %s", count(known, "job"))
        return known

    def behaviour(self) -> dict[str, float]:
        """The current value of every attribute in BEHAVIOURS."""
        return {name: float(getattr(self, name)) for name in BEHAVIOURS}

    def set_behaviour(self, changes: Mapping[str, object]) -> dict[str, float]:
        """Set some of BEHAVIOURS at once, all or none (ValueError): the new behaviour()."""
        checked = {name: check_behaviour(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)
        return self.behaviour()

    # -- used by the HTTP front ----------------------------------------------------------

    def _open(self) -> None:
        """Ready to serve: a work folder for results, and nothing stopping."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="pdfocr-sandbox-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()

    def _close(self) -> None:
        """After the front closed: let conversions end, then remove an own work folder."""
        self._stopping.set()
        self.wait_idle(timeout=2)
        if self._own_workdir and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def _pause(self, poll: bool) -> None:
        """Wait reply_delay (and poll_delay for a poll) before an API reply; stop() ends it."""
        delay = self.reply_delay + (self.poll_delay if poll else 0.0)
        if delay > 0:
            self._stopping.wait(delay)

    def _next_fault(self, scope: str) -> str | None:
        """The fault for this request, counted in `fired` (chaos runs report them)."""
        kind = self._pick_fault(scope)
        if kind is not None:
            with self._lock:
                self.fired[kind] += 1
        return kind

    def _pick_fault(self, scope: str) -> str | None:
        """A queued fault first, else a random one if none is queued."""
        with self._lock:
            kind = take_queued(self._queued, scope)
            if kind is not None:
                log.debug("injected fault fires: %s", kind)
                return kind
            if any(self._queued.values()):
                return None
            return random_fault(scope, self.faults, self._rng)

    def _cut(self, job: _Job) -> bool:
        """The submission's reply was cut: lose the job now if told to. True if it was lost."""
        with self._lock:
            lost = take_queued(self._queued, "cut") == "lose_job"
            rate = self.lose_after_cut
            if not lost and rate > 0:
                lost = self._rng.random() < rate
            if not lost:
                return False
            self.fired["lose_job"] += 1
            job.lost = True
            path = self._files.pop(job.token, None)
        if path is not None:
            shutil.rmtree(path.parent, ignore_errors=True)
        log.debug("lost the job of %s after a cut reply (still charged)", job.name)
        return True

    def _check_key(self, fields: Mapping[str, str]) -> None:
        if fields.get("apikey") != self.key:
            raise _Refused("404", _KEY_MSG)

    def _accept(self, fields: Mapping[str, str], data: bytes | None, url: str | None) -> _Job:
        """Validate in the service's order, then charge and start converting, or raise _Refused."""
        received = time.monotonic()
        self._check_key(fields)
        filename = fields.get("filename", "")
        if not contract.REMOTE_NAME_RE.match(filename):
            raise _Refused(
                "400",
                f"Invalid file name {filename!r} (sandbox): file names may contain only "
                "letters, digits and hyphens, plus the extension.",
            )
        lang = fields.get("lang", "English")  # the documented default
        if lang not in contract.LANGUAGES:
            raise _Refused("400", f"Unsupported language {lang!r} (sandbox).")
        outformat = fields.get("outformat", "")
        if outformat not in contract.OUTFORMATS:
            raise _Refused("400", f"Unsupported output format {outformat!r} (sandbox).")
        ocr = fields.get("ocr")
        if ocr not in ("0", "1"):
            raise _Refused("400", "ocr must be 1 (OCR required) or 0 (sandbox).")
        data = _fetch(url) if url is not None else data or b""
        try:
            kind, pages = _inspect(data)
        except Unsupported as exc:
            raise _Refused("400", str(exc)) from exc
        if kind == "image" and outformat == "pdf":
            raise _Refused("400", "Converting images to PDF is not supported (sandbox).")
        token = secrets.token_hex(8)
        name = f"{filename.rsplit('.', 1)[0]}.{outformat}"
        charge = Charge(filename, outformat, lang, ocr == "1", pages, "url" if url else "upload")
        link = f"{self.base_url}{DOC_PATH}{token}/{name}"
        with self._lock:
            if pages > self._available:
                raise _Refused(
                    "402",
                    f"Not enough available pages: this file has {count(pages, 'page')} and your "
                    f"account has {self._available:,}. Buy more credits.",
                )
            job = _Job(name, token, link, received, self._epoch)
            self._available -= pages
            self._ledger.append(charge)
            self._jobs[(filename, outformat)] = job
            self._running += 1
        log.debug("charged %s for %s -> %s", count(pages, "page"), filename, outformat)
        worker = threading.Thread(target=self._convert, args=(job, data, kind, pages), daemon=True)
        worker.start()
        return job

    def _convert(self, job: _Job, data: bytes, kind: str, pages: int) -> None:
        """Take seconds_per_page per page like a slow OCR run, then store the real result."""
        try:
            if self._stopping.wait(self.seconds_per_page * pages):
                job.error = "the sandbox was stopped"
                return
            output = convert(data, kind, job.name.rsplit(".", 1)[1])
            assert self._workdir is not None
            path = self._workdir / job.token / job.name
            path.parent.mkdir(parents=True)
            path.write_bytes(output)
            with self._lock:
                keep = not job.lost and job.epoch == self._epoch
                if keep:
                    self._files[job.token] = path
            if not keep:  # lost or forgotten while converting: there is no result to give
                shutil.rmtree(path.parent, ignore_errors=True)
        except Exception as exc:  # a bug or a full disk: report it on the next poll
            log.debug("conversion of %s failed", job.name, exc_info=True)
            job.error = str(exc) or type(exc).__name__
        finally:
            job.done.set()
            with self._lock:
                self._running -= 1
                self._lock.notify_all()

    def _poll(self, fields: Mapping[str, str]) -> Verdict:
        self._check_key(fields)
        filename, outformat = fields.get("filename", ""), fields.get("outformat", "")
        if not filename or not outformat:
            raise _Refused("400", "Give filename and outformat for a status, or url (sandbox).")
        with self._lock:
            job = self._jobs.get((filename, outformat))
            known = job is not None and not job.lost
        if job is None or not known or time.monotonic() < job.received + self.late_names:
            raise _Refused("404", f"File not found: no upload named {filename} (sandbox).")
        if not job.done.is_set():
            return Verdict("202", "Conversion in progress (sandbox).")
        return self._success(job)

    def _success(self, job: _Job) -> Verdict:
        if job.error:
            return Verdict("500", f"Conversion failed (sandbox): {job.error}")
        data = {"filename": job.name, "link": job.link, "available pages": self.available_pages}
        fault = self._next_fault("reply")
        if fault == "foreign_link":
            data["link"] = "http://downloads.invalid" + urlsplit(job.link).path
        elif fault == "missing_link":
            del data["link"]
        return Verdict("200", "Conversion success (sandbox).", data)

    def _result_file(self, token: str, name: str) -> Path | None:
        with self._lock:
            path = self._files.get(token)
        return path if path is not None and path.name == name else None

    def _ledger_json(self) -> dict[str, Any]:
        with self._lock:
            charges = [asdict(charge) for charge in self._ledger]
            return {
                "charges": charges,
                "pages_charged": sum(charge["pages"] for charge in charges),
                "available pages": self._available,
            }


def _fetch(url: str) -> bytes:
    """Download a GET submission's file, as the service does with `url`."""
    import requests

    if urlsplit(url).scheme not in ("http", "https"):
        raise _Refused("400", "The url must be an http or https address (sandbox).")
    try:
        response = requests.get(url, timeout=30)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise _Refused("400", f"Could not download the file from url (sandbox): {exc}") from exc
    return response.content
