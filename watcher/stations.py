"""Several PCs ("stations") on one shared inbox: what the daemon asks of the claims.

`watcher.claims` says who owns a file, with the file system's atomic operations; this is
the daemon's side of it. A file in a shared inbox is journaled only once this station holds
its claim, the claim says "uploading" (with the remote name) before the upload leaves, and
it is released once the original has left the inbox. So exactly one station pays for a file,
and a station that takes over a dead station's claim asks the service for the result by the
recorded name instead of paying again (the journal then holds it if the service does not
know the name, as for any submission that may have reached it).

A station claims a file only when one of its workers is free to take it (`claim_next`, asked
by a worker with nothing else to do): the files that settle while all are busy wait in the
inbox, unclaimed, for whichever station frees a worker first. A station that claimed every
file it saw settle would hold most of a batch while the other ran dry.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from watcher.claims import DONE, Claim, ClaimBook, ClaimLost, Taken, Unclaimable, station_id
from watcher.config import Config, InboxRule
from watcher.errors import TakenOver, TransientError
from watcher.inbox import switched_on
from watcher.jobs import Job, readable

__all__ = ["Admitted", "SharedInboxes", "present"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admitted:
    """A file this station may journal; `sent_as`/`sent_at` when it took over another
    station's claim after that station had (maybe) sent it. `counted`: counted in the batch
    when it began to wait. `claim`: the claim it was admitted with; `fresh` if taken just
    now, for no job of this station (the only kind `let_go` releases)."""

    path: Path
    rule: InboxRule
    sent_as: str | None = None
    sent_at: float | None = None
    counted: bool = False
    claim: Claim | None = None
    fresh: bool = False


@dataclass(frozen=True)
class _Waiting:
    """A file of a shared inbox that waits for a free worker."""

    inbox: Path
    serial: int  # its admission: one admitted again meanwhile is another
    counted: bool  # counted in the batch (not a file asked about again, nor one of our jobs)


class SharedInboxes:
    """The claims of one station, for every inbox that is shared (`[watch] shared`)."""

    def __init__(
        self,
        config: Config,
        state_dir: Path,
        *,
        at_most: int,
        on_passed_over: Callable[[int], None] = lambda count: None,
    ):
        self.lease_seconds = config.watch.claim_lease
        self._book = ClaimBook(station_id(state_dir), self.lease_seconds)
        self._at_most = at_most  # claims held for jobs (held or deferred ones too) at a time
        self._on_passed_over = on_passed_over  # counted waiting files another station took
        self._lock = threading.Lock()  # guards the dicts below
        self._by_source: dict[Path, Claim] = {}
        self._taken: dict[Path, tuple[InboxRule, int, int]] = {}  # asked again later
        self._waiting: dict[Path, _Waiting] = {}  # oldest first
        self._unsure: dict[Path, _Waiting] = {}  # could not be looked at: in line again later
        self._serials = itertools.count()
        self._told: set[Path] = set()  # inboxes whose claims folder cannot be written
        self._shared: frozenset[Path] = frozenset()
        self._rules: dict[Path, InboxRule] = {}
        self.update_config(config)

    def update_config(self, config: Config) -> None:
        shared = {r.path for r in config.inboxes if switched_on(config.watch.shared, r.path)}
        self._shared = frozenset(shared)
        self._rules = {rule.path: rule for rule in config.inboxes}

    def is_shared(self, inbox: Path | None) -> bool:
        return inbox is not None and inbox in self._shared

    def admit(self, files: Sequence[tuple[Path, InboxRule]]) -> tuple[list[Admitted], int]:
        """The files this station may journal now (those not in a shared inbox), and how
        many files more the batch counts: those that now wait in a shared inbox, in arrival
        order, until a worker asks for one (`claim_next`)."""
        admitted: list[Admitted] = []
        counted = 0
        with self._lock:
            for path, rule in files:
                if self.is_shared(rule.path):
                    counted += self._wait(path, rule.path, count=path not in self._by_source)
                else:
                    admitted.append(Admitted(path, rule))
        return admitted, counted

    def _wait(self, path: Path, inbox: Path, *, count: bool) -> bool:
        """Puts a file at the back of the waiting line (under the lock); True if it is
        counted in the batch now."""
        earlier = self._waiting.pop(path, None)
        counted = earlier.counted if earlier else count
        self._waiting[path] = _Waiting(inbox, next(self._serials), counted)
        return counted and earlier is None

    @property
    def waiting(self) -> int:
        """Files in shared inboxes this station may take, not claimed by it yet."""
        return len(self._waiting)

    def claim_next(self) -> Admitted | None:
        """For a worker with nothing to do: the first waiting file this station can claim
        (those another station has are asked about again by `housekeeping`). None once no
        file waits, or while this station's jobs hold `at_most` claims (jobs held for a
        daily limit or sending hours, or waiting to be tried again, leave the others'
        workers the rest)."""
        while True:
            with self._lock:
                if not self._waiting or len(self._by_source) >= self._at_most:
                    return None
                path = next(iter(self._waiting))
                entry = self._waiting.pop(path)
            rule = self._rules.get(entry.inbox)  # the rules may have changed while it waited
            if rule is None:  # no longer an inbox
                self._passed_over(entry)
                continue
            if not self.is_shared(entry.inbox):
                return Admitted(path, rule, counted=entry.counted)
            try:
                stat = path.stat()
            except FileNotFoundError:  # gone: the watcher's business
                self._passed_over(entry)
                continue
            except OSError:  # a share that does not answer now: asked again by housekeeping
                with self._lock:
                    self._unsure[path] = entry
                continue
            outcome = self._book.claim(path, stat.st_size, stat.st_mtime_ns, inbox=rule.path)
            if isinstance(outcome, Claim):
                if not self._done_here(path, outcome):
                    return self._held(path, rule, outcome, entry.counted)
            elif isinstance(outcome, Taken):
                self._taken_by_another(path, rule, stat.st_size, stat.st_mtime_ns, outcome)
            else:
                self._unclaimable(rule.path, outcome)
            self._passed_over(entry)

    def _done_here(self, path: Path, claim: Claim) -> bool:
        """Our own final claim, and no job of ours on it: an original this station converted
        and left in the inbox (seen again after a restart). Not held as a job's claim, which
        would count against `at_most` for ever."""
        with self._lock:
            return claim.state == DONE and path not in self._by_source

    def _passed_over(self, entry: _Waiting) -> None:
        if entry.counted:
            self._on_passed_over(1)

    def let_go(self, admitted: Admitted, *, final: bool = False) -> None:
        """A file claimed just now was not journaled. It could not be read, is gone, or the
        journal could not be written: a `fresh` claim is released, so that the file can be
        offered again, to any station; another is kept (a job of ours holds it, or another
        station sent the file: released, it could be sent again). `final`: the file is a
        copy of one of our results: its claim stays, final, so that no station converts
        it. Either way only if it is still the claim the file was admitted with."""
        claim = admitted.claim
        if claim is None or not (final or admitted.fresh):
            return
        with self._lock:
            if self._by_source.get(admitted.path) is not claim:
                return
            del self._by_source[admitted.path]
        self._end(claim, final=final)

    def _held(self, path: Path, rule: InboxRule, claim: Claim, counted: bool) -> Admitted:
        with self._lock:
            # Not fresh: a job of ours holds it (this run's, or an earlier run's: resumed),
            # or it is taken over from a station that may have sent it.
            fresh = not (claim.resumed or claim.taken_over_from or path in self._by_source)
            self._by_source[path] = claim
            self._taken.pop(path, None)
        if claim.taken_over_from:
            log.warning(
                "%s: taken over from %s, which stopped working on it%s",
                readable(path.name),
                claim.taken_over_from,
                f" after sending it as {claim.remote_name}" if claim.sent_at else "",
            )
        if claim.sent_at and claim.remote_name:
            return Admitted(path, rule, claim.remote_name, claim.sent_at, counted, claim, fresh)
        return Admitted(path, rule, counted=counted, claim=claim, fresh=fresh)

    def _taken_by_another(
        self, path: Path, rule: InboxRule, size: int, mtime_ns: int, taken: Taken
    ) -> None:
        with self._lock:
            first = path not in self._taken
            if taken.final:
                self._taken.pop(path, None)
            else:
                self._taken[path] = (rule, size, mtime_ns)
        if first:
            log.info("%s: %s", readable(path.name), taken.reason)

    def _unclaimable(self, inbox: Path, outcome: Unclaimable) -> None:
        with self._lock:
            first = inbox not in self._told
            self._told.add(inbox)
        if first:
            log.error("%s; its files are left alone", outcome.reason)

    def before_submit(self, job: Job) -> None:
        """Records in the claim that the job is about to be sent, under which name: before
        the upload, so that a station taking over polls by it. TakenOver when another
        station owns the file now; TransientError when the claim cannot be written."""
        claim = self._claim_of(job)
        if claim is None:
            if not self.is_shared(job.inbox):
                return
            # A job of a shared inbox whose claim we do not hold (a failed file retried into
            # the inbox, an inbox the rules made shared, a hold through a restart): claimed
            # now, or left to the station that has it.
            outcome = self._book.claim(job.source, job.size, job.mtime_ns, inbox=job.inbox)
            if isinstance(outcome, Taken):
                raise TakenOver(f"another PC on this shared inbox has it: {outcome.reason}")
            if isinstance(outcome, Unclaimable):
                raise TransientError(outcome.reason)
            if outcome.sent_at:  # taken over from a station that sent it: never sent again
                raise TakenOver(  # not renewed here: whoever takes it next asks by name
                    f"another PC on this shared inbox sent it as {outcome.remote_name}"
                )
            with self._lock:
                self._by_source[job.source] = claim = outcome
        try:
            claim.update("uploading", remote_name=job.remote_name, sent_at=job.sent_at)
        except ClaimLost:
            self._forget(job.source)
            raise TakenOver("another PC on this shared inbox took it over") from None
        except OSError as exc:
            raise TransientError(
                f"its claim in the shared inbox cannot be written ({exc.strerror or exc})"
            ) from None

    def finished(self, job: Job) -> None:
        """The job is over. Its claim is released once the original has left the inbox;
        an original still there (kept after success, or a failed one that could not be
        moved) keeps a final claim, so that no other station converts, and pays, again."""
        claim = self._forget(job.source)
        if claim is not None:
            self._end(claim, final=job.original_at is None and present(job.source))

    @staticmethod
    def _end(claim: Claim, *, final: bool) -> None:
        try:
            if final:
                claim.update(DONE)
            else:
                claim.release()
        except (ClaimLost, OSError) as exc:
            log.debug("%s: claim not released: %s", readable(claim.path.name), exc)

    def resume(self, jobs: Iterable[Job]) -> list[Job]:
        """After a restart: this station's claims for its unfinished jobs again. Returns the
        jobs whose file another station took over meanwhile (to be dropped here)."""
        lost: list[Job] = []
        for job in jobs:
            if not self.is_shared(job.inbox):
                continue
            outcome = self._book.claim(job.source, job.size, job.mtime_ns, inbox=job.inbox)
            if isinstance(outcome, Claim):
                with self._lock:
                    self._by_source[job.source] = outcome
            elif isinstance(outcome, Taken):
                lost.append(job)
        return lost

    def housekeeping(self) -> bool:
        """Renews this station's claims, sweeps the claims folders, forgets the waiting files
        that are gone (another station's now), and puts back in line the files that could
        not be looked at and those another station had that may be ours now (its claim went
        stale, or was released). True when files wait, for a free worker to claim."""
        with self._lock:
            claims = list(self._by_source.values())
            taken = dict(self._taken)
            waiting = [(path, entry.serial) for path, entry in self._waiting.items()]
        for claim in self._book.renew(claims):
            log.warning("%s: another PC took it over", readable(claim.path.name))
            self._forget(claim.path)
        for inbox in self._shared:
            try:
                self._book.sweep(inbox)
            except OSError as exc:
                log.debug("sweeping the claims in %s: %s", inbox, exc)
        gone = [(path, serial) for path, serial in waiting if not present(path)]
        for path, serial in gone:
            with self._lock:
                entry = self._waiting.get(path)
                if entry is None or entry.serial != serial:
                    continue  # admitted again meanwhile: a new file of that name
                del self._waiting[path]
            self._passed_over(entry)
        with self._lock:
            for path, entry in self._unsure.items():
                if path not in self._waiting:
                    self._waiting[path] = entry
            self._unsure.clear()
        for path, (rule, size, mtime_ns) in taken.items():
            try:
                stat = path.stat()
            except OSError:
                stat = None
            with self._lock:
                if stat is None or (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns):
                    self._taken.pop(path, None)  # gone, or a new version the watcher sees
                elif path in self._taken:
                    self._wait(path, rule.path, count=False)
        return bool(self._waiting)

    def _claim_of(self, job: Job) -> Claim | None:
        with self._lock:
            return self._by_source.get(job.source)

    def _forget(self, source: Path) -> Claim | None:
        with self._lock:
            return self._by_source.pop(source, None)


def present(path: Path) -> bool:
    """Whether a file is still there; True when a share cannot tell now (it keeps a claim,
    and a waiting file in line, rather than giving either up on a network hiccup)."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True
