"""Claims on a shared inbox: which PC ("station") converts a file, so no file is paid twice.

Several PCs may watch one network folder (NAS, SMB, NFS). Each keeps its own journal, so they
agree on who takes a file through the folder itself: a hidden `.pdfocr-claims` folder inside
the inbox, written only with the file system's own atomic operations. There is no server.

**Names.** A file's claim is keyed by a digest of its name (relative to the inbox), its size
and its mtime (`claim_key`), so a new version under the same name is a new claim. The name
is taken in Unicode NFC and the mtime in whole seconds, because that is all that PCs on one
share agree on: macOS hands out decomposed names, SMB carries 100-ns stamps where NFS
carries nanoseconds (a new version within the same second differs in size, or is caught by
the owner's own check that the file changed before it was sent). A claim is a *chain* of
records, `.<key>.<gen>.claim` with gen = 0, 1, 2 ...; the highest gen reachable from gen 0
without a gap is the *head*, and the head's station owns the file. All names in the folder
are hidden, so no scan of the inbox takes one for a document.

**The one primitive: exclusive creation of a complete file.** A record is written whole to a
hidden temp name, then hard-linked to its final name (`os.link` fails if the name exists, on
every platform and every share, and is done by the server), so a record appears complete or
not at all, and of several stations creating the same name exactly one succeeds. Where hard
links are not supported (FAT, some SMB servers) the fallback is `O_CREAT | O_EXCL` and a
write: still exclusive, but a reader may see the file empty or half-written for a moment, so
an unreadable record counts as live until it has stayed the same for `grace_seconds`.

**Every change of owner or state creates the next gen.** `claim` of a new file creates gen 0;
`Claim.update` and a takeover create head+1. Whoever creates a gen has proved that nobody
else changed the chain since the head it read: a takeover of a stale claim and a late
update by its old owner both need head+1, and only one gets it. That is the compare-and-swap
a single rewritten file cannot give (check, then `os.replace`, overwrites a takeover made in
between; renaming a stale claim away can grab the fresh claim a faster station just put
there). After creating head+1 the creator checks that the head it read is still there with
the same token, so a chain deleted and begun anew in between can never be mistaken for the
old one (names are reused only after a deletion; tokens never are). Gens are never deleted
while the chain lives, so the chain has no gaps and a gen, once superseded, stays superseded.

**Liveness is observed, never compared between clocks.** The owner renews a claim by moving
its head's mtime forward (`os.utime`, at least 2 s per renewal so that FAT's 2-second and
other shares' 1-second stamps show it; a share that ignores utime gets the record rewritten
instead). Another station calls a claim *stale* when the head's gen, size, mtime and bytes
have stayed the same, on *its own* monotonic clock, for `lease_seconds`. No PC's clock is
compared with another's or with the share's, so skewed clocks, coarse stamps and a share
with its own idea of time cannot make a live claim look dead. The cost: a station takes over
a dead station's claim only at its first look at least a lease after it first saw the claim
(a station that just started waits one lease). `Taken` is therefore not final: ask again.

**Which call overwrites.** Records are created with `os.link` (never overwrites, on every
platform) or O_EXCL; `os.rename` is not used at all, since it overwrites on POSIX and refuses
on Windows. `os.replace` (overwrites everywhere) is used only where overwriting is the point:
a station rewriting its own head where the share ignores utime, and the station-id file.

**Release.** The owner creates head+1 with state "released" (the same compare-and-swap, so
it never removes another station's claim), then deletes the chain from the top down (no gap
ever opens; an interrupted release leaves a shorter, consistent chain that `sweep` removes).
A head in state "released" is free: the next station to ask takes it at once. A head in
state "done" is final: a file converted and kept in the inbox is never taken over.

**The rules for callers.** Call `Claim.update` before each side effect it guards (above all
before an upload, with the remote name) and do the side effect only if it returned;
`ClaimLost` means another station owns the file now and this one must stop. Renew every
claim held, whatever its state, every lease/3, until it is released. A takeover returns the
old record's `remote_name` and `sent_at`: the file may already be at the service, so poll by
that name and never upload it again by yourself. Ask again about Taken files still in the
inbox now and then, and sweep each inbox now and then.

**What this cannot give.** Exclusivity needs a file system whose create and link are decided
in one place (a NAS, an SMB or NFS server); a sync folder (Dropbox, OneDrive, Syncthing ...)
gives every PC its own copy, and no claim there excludes anyone. A station paused between a
successful update and its upload for longer than a lease can still upload after being taken
over; the taker then sees the remote name and must not pay again when the service does not
know it yet. Two PCs with the same station id (a cloned disk with the same host name) are
one station to each other.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import re
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from watcher.errors import WatcherError

__all__ = [
    "CLAIMS_DIR",
    "DONE",
    "QUEUED",
    "RELEASED",
    "STATION_ID_FILE",
    "Claim",
    "ClaimBook",
    "ClaimLost",
    "ClaimRecord",
    "Taken",
    "Unclaimable",
    "claim_key",
    "station_id",
]

CLAIMS_DIR = ".pdfocr-claims"
STATION_ID_FILE = "station-id"

QUEUED = "queued"
DONE = "done"  # final: converted and left in the inbox; never taken over
RELEASED = "released"  # free: the owner let go (the original left the inbox)

_FORMAT = 1
_MAX_RECORD = 64 * 1024
_ATTEMPTS = 8  # chain advances lost to other stations before `claim` answers Taken
_BEAT_NS = 2_000_000_000  # a renewal moves mtime by at least this (FAT keeps even seconds)
_LASTING = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
# What os.link raises where the file system has no hard links (Linux says EPERM, Windows
# ERROR_INVALID_FUNCTION or ERROR_NOT_SUPPORTED); the temp file was just created there, so
# a permission error now is about links, not about writing.
_NO_LINK_ERRNOS = frozenset(
    {errno.EPERM, errno.EACCES, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK}
)
_NO_LINK_WINERRORS = frozenset({1, 50, 1142})
_RECORD_NAME = re.compile(r"^\.([0-9a-f]{32})\.([0-9]{1,18})\.claim$")
_TEMP_NAME = re.compile(r"^\..*\.tmp$")


class ClaimLost(WatcherError):
    """Another station owns the file now (our lease lapsed, or the claim was removed).
    Stop working on the file; above all, do not upload it."""


def claim_key(name: str, size: int, mtime_ns: int) -> str:
    """The claim's key: a digest of the file's name (relative to the inbox, `/`-separated),
    size and mtime, so a new version of a file under the same name is a new claim. Only what
    every client of a share sees alike counts: the name in NFC, the mtime's whole seconds."""
    name = unicodedata.normalize("NFC", name)
    text = f"{name}\0{size}\0{mtime_ns // 1_000_000_000}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(text).hexdigest()[:32]


@dataclass(frozen=True)
class ClaimRecord:
    """One record of a claim, as stored (JSON) in the claims folder."""

    station: str
    token: str  # random per ownership: kept by renewals and updates, new on takeover
    host: str
    pid: int
    name: str
    size: int
    mtime_ns: int
    created_at: float  # wall clock of the station that wrote it: for people, never compared
    renewed_at: float
    state: str
    remote_name: str | None = None
    sent_at: float | None = None
    taken_over_from: str | None = None
    beat: int = 0  # counts the renewals written into the record (shares that ignore utime)

    def to_bytes(self) -> bytes:
        fields = {"v": _FORMAT, **self.__dict__}
        return json.dumps(fields, sort_keys=True, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> ClaimRecord | None:
        """The record, or None for an empty, partial or foreign file."""
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        if not isinstance(raw, dict) or raw.get("v") != _FORMAT:
            return None
        try:
            record = cls(
                station=_typed(raw, "station", str),
                token=_typed(raw, "token", str),
                host=_typed(raw, "host", str),
                pid=_typed(raw, "pid", int),
                name=_typed(raw, "name", str),
                size=_typed(raw, "size", int),
                mtime_ns=_typed(raw, "mtime_ns", int),
                created_at=float(_typed(raw, "created_at", (int, float))),
                renewed_at=float(_typed(raw, "renewed_at", (int, float))),
                state=_typed(raw, "state", str),
                remote_name=_optional(raw, "remote_name", str),
                sent_at=_optional_float(raw, "sent_at"),
                taken_over_from=_optional(raw, "taken_over_from", str),
                beat=_typed(raw, "beat", int),
            )
        except (KeyError, TypeError):
            return None
        return record


def _typed(raw: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = raw[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(key)
    return value


def _optional(raw: dict[str, Any], key: str, kind: type) -> Any:
    return None if raw.get(key) is None else _typed(raw, key, kind)


def _optional_float(raw: dict[str, Any], key: str) -> float | None:
    return None if raw.get(key) is None else float(_typed(raw, key, (int, float)))


@dataclass(frozen=True)
class Taken:
    """Another station has the file (or is writing its claim right now). Not final unless
    `final`: ask again later; a claim whose station died is taken over after a lease."""

    path: Path
    by: str | None  # the station, None while its claim cannot be read yet
    host: str | None
    state: str | None
    reason: str

    @property
    def final(self) -> bool:
        """The other station converted the file and it stays in the inbox: never ours."""
        return self.state == DONE


@dataclass(frozen=True)
class Unclaimable:
    """The claims folder cannot be written: the file must not be taken (another station
    might convert it too). `lasting` for a read-only or forbidden folder; otherwise (the share
    is unreachable, full ...) it may work later."""

    path: Path
    folder: Path
    reason: str
    errno: int | None
    lasting: bool


@dataclass(frozen=True)
class _Seen:
    """A record file as read: raw bytes and stamps (what liveness watches), parsed record."""

    gen: int
    data: bytes
    size: int
    mtime_ns: int
    record: ClaimRecord | None
    denied: bool = False  # it exists but we may not open it (permissions, or in use on Windows)

    @property
    def fingerprint(self) -> tuple[int, int, int, str]:
        return (self.gen, self.size, self.mtime_ns, hashlib.sha256(self.data).hexdigest())


@dataclass(frozen=True)
class _Chain:
    key: str
    head: _Seen
    whole: ClaimRecord | None  # the head's record, or the last whole one below a torn head


@dataclass(eq=False)
class Claim:
    """This station's claim on one inbox file. Thread-safe; `update` before each side effect."""

    path: Path
    folder: Path  # the claims folder
    key: str
    gen: int
    record: ClaimRecord
    taken_over_from: str | None = None  # the station whose stale claim this call took over
    resumed: bool = False  # our own claim already (from an earlier run, or this one's)
    _book: ClaimBook | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _lost: bool = field(default=False, repr=False)

    @property
    def station(self) -> str:
        return self.record.station

    @property
    def token(self) -> str:
        return self.record.token

    @property
    def state(self) -> str:
        return self.record.state

    @property
    def remote_name(self) -> str | None:
        return self.record.remote_name

    @property
    def sent_at(self) -> float | None:
        return self.record.sent_at

    @property
    def lost(self) -> bool:
        return self._lost

    def update(
        self,
        state: str,
        remote_name: str | None = None,
        sent_at: float | None = None,
        *,
        clear_remote: bool = False,
    ) -> None:
        """Record a new state (and the remote name and send time, when given) and renew the
        lease, in one atomic step that succeeds only while the claim is still ours.

        None keeps the recorded remote_name/sent_at (a name once recorded is what a taking-over
        station polls by; `clear_remote=True` drops both, for a file the service provably never
        received). Raises ClaimLost, leaving the other station's record alone, when another
        station owns the file now: do not do what the update was to guard. An OSError means
        nothing was recorded for sure: do not do it either, and try again later.
        """
        changes: dict[str, Any] = {"state": state}
        if clear_remote:
            changes.update(remote_name=None, sent_at=None)
        if remote_name is not None:
            changes["remote_name"] = remote_name
        if sent_at is not None:
            changes["sent_at"] = sent_at
        self._owner()._advance(self, changes)

    def release(self) -> bool:
        """Remove our claim (once the original has left the inbox). Never removes another
        station's claim: False when the claim was no longer ours."""
        return self._owner()._release(self)

    def _owner(self) -> ClaimBook:
        if self._book is None:
            raise ClaimLost(f"the claim on {self.path.name} belongs to no claim book")
        return self._book


class ClaimBook:
    """This station's view of the claims in every inbox it watches.

    `station` identifies this PC's state folder (`station_id`). A claim of another station
    is stale once its head has not changed for `lease_seconds`, as measured by `clock` (a
    monotonic clock by default: only differences of its readings are used). An unreadable
    record (being written without hard links, or left half-written) is live for
    `grace_seconds`. `wall_clock` only stamps records for people to read.
    """

    def __init__(
        self,
        station: str,
        lease_seconds: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        grace_seconds: float | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not station or not _STATION_TEXT.match(station):
            raise ValueError(f"not a station id: {station!r}")
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.station = station
        self.lease_seconds = float(lease_seconds)
        self.grace_seconds = (
            min(5.0, self.lease_seconds / 4) if grace_seconds is None else float(grace_seconds)
        )
        self.host = platform.node() or "unknown"
        self._clock = clock
        self._wall = wall_clock
        self._mutex = threading.Lock()
        # (folder, name) -> (fingerprint, when first seen with it): the observations liveness
        # is judged by
        self._seen: dict[tuple[str, str], tuple[object, float]] = {}
        self._links: dict[str, bool] = {}  # claims folder -> hard links work there
        self._utime: dict[str, bool] = {}  # claims folder -> utime moves mtime there
        self._heads: dict[tuple[str, str], int] = {}  # a hint where to start reading a chain

    # -- claiming ------------------------------------------------------------------------

    def claim(
        self, path: Path, size: int, mtime_ns: int, *, inbox: Path | None = None
    ) -> Claim | Taken | Unclaimable:
        """Claim `path` (of that size and mtime_ns) for this station.

        `inbox` is the watched folder holding it (its parent by default; give it for files in
        subfolders of a recursive inbox). Returns our Claim (new; resumed: already this
        station's, from an earlier run or this one; or taken over from a station whose claim
        went stale: then its `remote_name`/`sent_at`/`state` are the old station's), Taken
        when another station has it, or Unclaimable when the claims folder cannot be written.
        """
        path = Path(path)
        inbox = path.parent if inbox is None else Path(inbox)
        folder = inbox / CLAIMS_DIR
        name = path.relative_to(inbox).as_posix()
        key = claim_key(name, size, mtime_ns)
        try:
            folder.mkdir(exist_ok=True)
            return self._claim(path, folder, key, name, size, mtime_ns)
        except OSError as exc:
            return self._unclaimable(path, folder, exc)

    def _claim(
        self, path: Path, folder: Path, key: str, name: str, size: int, mtime_ns: int
    ) -> Claim | Taken:
        fresh = self._new_record(name, size, mtime_ns)
        for _ in range(_ATTEMPTS):
            chain = self._chain(folder, key)
            if chain is None:
                if self._create(folder, key, 0, fresh):
                    return self._claim_at(path, folder, key, 0, fresh)
                continue  # another station created gen 0 just now: read it
            head, record = chain.head, chain.head.record
            resumed, carried_from = False, None
            if record is None:
                if head.denied:
                    # Never "stale": a claim we may not read (another station's umask, a
                    # file in use on Windows) is a claim all the same.
                    return Taken(path, None, None, None, _cannot_read(path, folder))
                if self._observed_for(folder, key, head) < self.grace_seconds:
                    return Taken(path, None, None, None, _being_written(path))
                # Its writer died mid-write: take over from the last whole record below it.
                earlier = chain.whole
                if earlier is not None and earlier.state == DONE:
                    return Taken(path, earlier.station, earlier.host, DONE, _done(path, earlier))
                new = fresh if earlier is None else self._successor(fresh, earlier)
                carried_from = None if earlier is None else earlier.station
            elif record.state == RELEASED:
                new = fresh  # free: the old owner let go of it
            elif record.station == self.station:
                new = replace(record, pid=os.getpid(), host=self.host, renewed_at=self._wall())
                resumed = True
            elif record.state == DONE:
                return Taken(path, record.station, record.host, DONE, _done(path, record))
            elif self._observed_for(folder, key, head) < self.lease_seconds:
                return Taken(path, record.station, record.host, record.state, _live(path, record))
            else:
                new, carried_from = self._successor(fresh, record), record.station
            gen = head.gen + 1
            if not self._create(folder, key, gen, new):
                continue  # another station advanced the chain first: look again
            if not self._still_there(folder, key, head):
                _unlink(folder / _record_name(key, gen))
                continue  # the chain was removed under us: ours would be a stray gen
            claim = self._claim_at(path, folder, key, gen, new)
            claim.taken_over_from, claim.resumed = carried_from, resumed
            return claim
        return Taken(path, None, None, None, f"{path.name} is changing hands right now")

    def _new_record(self, name: str, size: int, mtime_ns: int) -> ClaimRecord:
        now = self._wall()
        return ClaimRecord(
            station=self.station,
            token=secrets.token_hex(16),
            host=self.host,
            pid=os.getpid(),
            name=name,
            size=size,
            mtime_ns=mtime_ns,
            created_at=now,
            renewed_at=now,
            state=QUEUED,
        )

    @staticmethod
    def _successor(fresh: ClaimRecord, old: ClaimRecord) -> ClaimRecord:
        """Our record after a takeover: what the old station may already have done, carried."""
        state = QUEUED if old.state == RELEASED else old.state
        return replace(
            fresh,
            state=state,
            remote_name=old.remote_name,
            sent_at=old.sent_at,
            taken_over_from=old.station,
        )

    def _claim_at(self, path: Path, folder: Path, key: str, gen: int, record: ClaimRecord) -> Claim:
        with self._mutex:
            self._heads[(str(folder), key)] = gen
        return Claim(path, folder, key, gen, record, _book=self)

    # -- changing a claim ----------------------------------------------------------------

    def _advance(self, claim: Claim, changes: dict[str, Any]) -> None:
        """Write claim's next gen with `changes`; ClaimLost unless the claim is still ours."""
        with claim._lock:
            self._advance_locked(claim, changes)

    def _advance_locked(self, claim: Claim, changes: dict[str, Any]) -> None:
        if claim._lost:
            raise ClaimLost(f"the claim on {claim.path.name} is no longer this station's")
        for _ in range(_ATTEMPTS):
            gen = claim.gen + 1
            new = replace(claim.record, renewed_at=self._wall(), **changes)
            if self._create(claim.folder, claim.key, gen, new):
                mine = self._read_settled(claim.folder, claim.key, claim.gen)
                if mine is not None and mine.denied:
                    pass  # still there (in use on Windows): the name is what matters here
                elif mine is None or mine.record is None or mine.record.token != claim.token:
                    # The gen we built on is gone (the chain was removed under us): the one
                    # we just wrote belongs to no chain.
                    _unlink(claim.folder / _record_name(claim.key, gen))
                    raise self._lose(claim, None)
                claim.gen, claim.record = gen, new
                with self._mutex:
                    self._heads[(str(claim.folder), claim.key)] = gen
                return
            seen = self._read_settled(claim.folder, claim.key, gen)
            if seen is not None and seen.record is not None and seen.record.token == claim.token:
                # Written by ourselves (another Claim object for the same chain, or a link
                # retried after its reply was lost): build on it.
                claim.gen, claim.record = gen, seen.record
                continue
            raise self._lose(claim, None if seen is None else seen.record)
        raise self._lose(claim, None)

    def renew(self, claims: Iterable[Claim]) -> list[Claim]:
        """Renew the leases of `claims`; returns those that are no longer ours (stop them).

        A renewal moves the head's mtime forward and checks that no other station has
        advanced the chain. Claims in state "done" need no lease and are skipped. A claim
        that cannot be renewed now (share unreachable) is kept: it is lost only if another
        station takes it over, and then the next renew or update says so.
        """
        lost: list[Claim] = []
        for claim in claims:
            try:
                if not self._renew(claim):
                    lost.append(claim)
            except OSError:
                continue
        return lost

    def _renew(self, claim: Claim) -> bool:
        with claim._lock:
            if claim._lost:
                return False
            if claim.state == DONE:
                return True
            while True:
                nxt = self._read_settled(claim.folder, claim.key, claim.gen + 1)
                if nxt is None:
                    break
                if nxt.denied:
                    return True  # cannot tell now; the next renewal or update will
                if nxt.record is None or nxt.record.token != claim.token:
                    self._lose(claim, nxt.record)
                    return False
                claim.gen, claim.record = nxt.gen, nxt.record
            head = self._read_settled(claim.folder, claim.key, claim.gen)
            if head is not None and head.denied:
                return True
            if head is None or head.record is None or head.record.token != claim.token:
                self._lose(claim, None if head is None else head.record)
                return False
            target = claim.folder / _record_name(claim.key, claim.gen)
            if self._utime.get(str(claim.folder), True):
                stamp = max(time.time_ns(), head.mtime_ns + _BEAT_NS)
                os.utime(target, ns=(stamp, stamp))
                if os.stat(target).st_mtime_ns > head.mtime_ns:
                    return True
                with self._mutex:  # this share ignores utime: rewrite the record instead
                    self._utime[str(claim.folder)] = False
            beat = replace(claim.record, renewed_at=self._wall(), beat=claim.record.beat + 1)
            temp = _temp_path(claim.folder, target.name)
            _write_new(temp, beat.to_bytes())
            try:
                # os.replace overwrites on every platform, which is what a renewal of our own
                # gen needs (nobody else ever writes a gen its creator still holds).
                os.replace(temp, target)
            finally:
                _unlink(temp)
            claim.record = beat
            return True

    def _release(self, claim: Claim) -> bool:
        with claim._lock:
            try:
                self._advance_locked(claim, {"state": RELEASED})
            except ClaimLost:
                return False
            claim._lost = True  # released: no more updates
            self._delete_chain(claim.folder, claim.key, claim.gen)
        return True

    def _lose(self, claim: Claim, other: ClaimRecord | None) -> ClaimLost:
        claim._lost = True
        if other is None:
            return ClaimLost(f"the claim on {claim.path.name} is no longer this station's")
        return ClaimLost(
            f"{claim.path.name} was taken over by {other.host} (station {other.station}) "
            "after this station's claim went stale: this station must leave the file alone"
        )

    # -- sweeping ------------------------------------------------------------------------

    def sweep(self, inbox: Path) -> list[str]:
        """Remove what no station needs any more from inbox's claims folder; returns the names
        removed. Removed: claims whose file is no longer in the inbox (with that name, size
        and mtime) once they are released, done, or stale; and temp files and stray records
        not changed for three leases. A live claim of another station is never touched.
        Call it now and then: what it has not seen before, it has not seen go stale."""
        inbox = Path(inbox)
        folder = inbox / CLAIMS_DIR
        try:
            names = os.listdir(folder)
        except OSError:
            return []
        chains: dict[str, set[int]] = {}
        strays: list[str] = []
        for name in names:
            match = _RECORD_NAME.match(name)
            if match:
                chains.setdefault(match[1], set()).add(int(match[2]))
            elif _TEMP_NAME.match(name):
                strays.append(name)
        removed: list[str] = []
        for key, gens in chains.items():
            chain = self._chain(folder, key)
            top = -1 if chain is None else chain.head.gen
            if chain is not None:
                with contextlib.suppress(OSError):
                    removed += self._sweep_chain(inbox, folder, chain)
            # Gens above a gap, or without a gen 0, belong to no chain (a chain removed while a
            # suspended station wrote on): removed like temp files, once long unchanged.
            strays += [_record_name(key, gen) for gen in sorted(gens) if gen > top]
        for name in strays:
            if name in removed:
                continue
            try:
                st = os.stat(folder / name)
            except OSError:
                continue
            seen = (st.st_size, st.st_mtime_ns)
            old = self._observed(str(folder), name, seen) >= 3 * self.lease_seconds
            if old and _unlink(folder / name):
                removed.append(name)
        self._forget(str(folder), set(names))
        return removed

    def _sweep_chain(self, inbox: Path, folder: Path, chain: _Chain) -> list[str]:
        head, known = chain.head, chain.whole
        if head.denied or (known is not None and _file_is_there(inbox, known)):
            return []
        unchanged = self._observed_for(folder, chain.key, head)
        if head.record is None or known is None:
            if unchanged < 3 * self.lease_seconds:
                return []
        elif head.record.state not in (RELEASED, DONE) and unchanged < self.lease_seconds:
            return []
        if head.record is not None and head.record.state == RELEASED:
            return self._delete_chain(folder, chain.key, head.gen)
        # Release it ourselves first, by the same compare-and-swap as a takeover: a station
        # advancing the chain right now keeps it.
        base = known if known is not None else self._new_record("", 0, 0)
        released = replace(
            base,
            station=self.station,
            token=secrets.token_hex(16),
            host=self.host,
            pid=os.getpid(),
            renewed_at=self._wall(),
            state=RELEASED,
        )
        top = head.gen + 1
        if not self._create(folder, chain.key, top, released):
            return []
        if not self._still_there(folder, chain.key, head):
            _unlink(folder / _record_name(chain.key, top))
            return []
        return self._delete_chain(folder, chain.key, top)

    def _delete_chain(self, folder: Path, key: str, top: int) -> list[str]:
        """Delete gens top..0, highest first: the chain shortens but never has a gap."""
        removed = []
        for gen in range(top, -1, -1):
            name = _record_name(key, gen)
            if _unlink(folder / name):
                removed.append(name)
        with self._mutex:
            self._heads.pop((str(folder), key), None)
        return removed

    # -- reading -------------------------------------------------------------------------

    def _chain(self, folder: Path, key: str) -> _Chain | None:
        """The chain's head and its last whole record, or None when there is no chain (no
        gen 0). Gens are read by name, never from a folder listing, which SMB clients cache
        for seconds; a missing name is the only thing believed. Reading starts at the head
        this book saw last, so a long-lived chain costs three reads."""
        first = self._read(folder, key, 0)
        if first is None:
            return None
        with self._mutex:
            hint = self._heads.get((str(folder), key), 0)
        head = first
        if hint > 0:
            hinted = self._read(folder, key, hint)
            head = first if hinted is None else hinted
        while not head.denied:  # a folder we may not search would say "denied" to any name
            nxt = self._read(folder, key, head.gen + 1)
            if nxt is None:
                break
            head = nxt
        with self._mutex:
            self._heads[(str(folder), key)] = head.gen
        whole = head.record
        gen = head.gen
        while whole is None and gen > 0:
            gen -= 1
            below = first if gen == 0 else self._read(folder, key, gen)
            whole = None if below is None else below.record
        return _Chain(key, head, whole)

    def _read(self, folder: Path, key: str, gen: int) -> _Seen | None:
        """The record file of that gen, or None when it does not exist. A file that exists
        but cannot be read (being replaced on Windows, torn) has record None."""
        path = folder / _record_name(key, gen)
        try:
            fd = os.open(path, os.O_RDONLY | _O_BINARY)
        except FileNotFoundError:
            return None
        except OSError:
            return _Seen(gen, b"", -1, -1, None, denied=True)
        try:
            st = os.fstat(fd)
            data = _read_all(fd, _MAX_RECORD + 1)
        except OSError:
            return _Seen(gen, b"", -1, -1, None)
        finally:
            os.close(fd)
        record = ClaimRecord.from_bytes(data) if len(data) <= _MAX_RECORD else None
        return _Seen(gen, data, st.st_size, st.st_mtime_ns, record)

    def _read_settled(self, folder: Path, key: str, gen: int) -> _Seen | None:
        """_read, asking again for a moment while the file is in use (Windows opens files
        without FILE_SHARE_DELETE, so a file being replaced or read elsewhere can refuse)."""
        seen = self._read(folder, key, gen)
        for _ in range(10):
            if seen is None or not seen.denied:
                break
            time.sleep(0.02)
            seen = self._read(folder, key, gen)
        return seen

    def _still_there(self, folder: Path, key: str, head: _Seen) -> bool:
        """Is the gen we built on still the one we read (same token)? False when the chain was
        removed, and maybe begun anew by someone, while we were creating our gen."""
        now = self._read_settled(folder, key, head.gen)
        if now is None:
            return False
        if head.record is None or now.denied:
            return True
        return now.record is not None and now.record.token == head.record.token

    def _observed_for(self, folder: Path, key: str, head: _Seen) -> float:
        return self._observed(str(folder), key, head.fingerprint)

    def _observed(self, folder: str, name: str, fingerprint: object) -> float:
        """How long (on our clock) `name` has been seen with this same fingerprint; 0 the
        first time and whenever it changed."""
        now = self._clock()
        with self._mutex:
            before = self._seen.get((folder, name))
            if before is None or before[0] != fingerprint:
                self._seen[(folder, name)] = (fingerprint, now)
                return 0.0
            return now - before[1]

    def _forget(self, folder: str, present: set[str]) -> None:
        keys = {m[1] for m in map(_RECORD_NAME.match, present) if m}
        with self._mutex:
            for entry in [e for e in self._seen if e[0] == folder]:
                if entry[1] not in present and entry[1] not in keys:
                    del self._seen[entry]
            for head in [h for h in self._heads if h[0] == folder and h[1] not in keys]:
                del self._heads[head]

    # -- writing -------------------------------------------------------------------------

    def _create(self, folder: Path, key: str, gen: int, record: ClaimRecord) -> bool:
        """Create gen's record, whole, if nobody has: True if we did, False if it exists."""
        final = folder / _record_name(key, gen)
        data = record.to_bytes()
        if self._links.get(str(folder), True):
            temp = _temp_path(folder, final.name)
            _write_new(temp, data)
            try:
                # os.link never replaces an existing name (POSIX, Windows, SMB, NFS): the
                # exclusive create of a file that is complete from its first moment.
                os.link(temp, final)
                return True
            except FileExistsError:
                # Over NFS a retried link whose first reply was lost says EEXIST: ours if
                # the name is our temp file's inode.
                return _same_file(temp, final)
            except OSError as exc:
                if not _links_unsupported(exc):
                    raise
                with self._mutex:
                    self._links[str(folder)] = False
            finally:
                _unlink(temp)
        # No hard links here: O_EXCL is exclusive too, and readers give a record that is
        # still being written `grace_seconds` before they call it dead.
        try:
            _write_new(final, data)
        except FileExistsError:
            return False
        return True

    def _unclaimable(self, path: Path, folder: Path, exc: OSError) -> Unclaimable:
        code = exc.errno
        if code in _LASTING:
            reason = (
                f"cannot write in {folder} (read-only share?): this PC cannot take files from "
                "this inbox without risking that another PC converts them too, and pays, again"
            )
            return Unclaimable(path, folder, reason, code, True)
        why = exc.strerror or str(exc)
        reason = (
            f"cannot use {folder} right now ({why}): {path.name} is left alone for now, so that "
            "no other PC converts it too"
        )
        return Unclaimable(path, folder, reason, code, False)


# -- station ids -----------------------------------------------------------------------------

_STATION_TEXT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def station_id(state_dir: Path) -> str:
    """This state folder's station id, `<host>-<16 hex>`, made once and kept in
    `<state_dir>/station-id`. A state folder copied to another PC (another host name) gets a
    new id there, so the two PCs never take each other's claims for their own."""
    state_dir = Path(state_dir)
    path = state_dir / STATION_ID_FILE
    host = _host_label()
    for attempt in range(50):
        try:
            text: str | None = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            text = None
        if text and _STATION_TEXT.match(text) and text.rsplit("-", 1)[0] == host:
            return text
        new = f"{host}-{secrets.token_hex(8)}"
        data = (new + "\n").encode("ascii")
        if text is None:
            state_dir.mkdir(parents=True, exist_ok=True)
            try:
                _write_new(path, data)  # exclusive: of two first starts, one id wins
            except FileExistsError:
                continue  # the other start made it: read theirs
            return new
        if text == "" and attempt < 10:
            time.sleep(0.01)  # being written by another first start right now
            continue
        # A foreign (copied from another PC) or damaged id: a new one, written whole
        # (os.replace overwrites on every platform).
        temp = _temp_path(state_dir, STATION_ID_FILE)
        _write_new(temp, data)
        try:
            os.replace(temp, path)
        finally:
            _unlink(temp)
        return new
    raise OSError(errno.EIO, f"cannot settle the station id in {path}")


def _host_label() -> str:
    short = (platform.node() or "pc").split(".")[0]
    return re.sub(r"[^A-Za-z0-9]+", "-", short).strip("-")[:40] or "pc"


# -- small file helpers ----------------------------------------------------------------------

_O_BINARY: int = getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)  # Windows only


def _record_name(key: str, gen: int) -> str:
    # Hidden (leading dot), so that nothing scanning the inbox takes it for a document.
    return f".{key}.{gen}.claim"


def _temp_path(folder: Path, name: str) -> Path:
    stem = name.lstrip(".")
    return folder / f".{stem}.{secrets.token_hex(6)}.tmp"


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` (FileExistsError if it exists), write `data` whole and flush it to the
    storage; on failure nothing is left behind."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | _O_BINARY, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        with contextlib.suppress(OSError):  # some shares cannot fsync; the write still holds
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink(path)
        raise
    os.close(fd)


def _read_all(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except OSError:
        return False
    return True


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return sa.st_ino != 0 and os.path.samestat(sa, sb)


def _links_unsupported(exc: OSError) -> bool:
    return exc.errno in _NO_LINK_ERRNOS or getattr(exc, "winerror", None) in _NO_LINK_WINERRORS


def _file_is_there(inbox: Path, record: ClaimRecord) -> bool:
    """Is the claimed file still in the inbox, the same version (size, mtime to the second)?
    Only a missing name or another version says no: a share that does not answer says maybe.
    The name is tried as recorded and in both Unicode forms (a Mac may have recorded it)."""
    wanted = (record.size, record.mtime_ns // 1_000_000_000)
    names = dict.fromkeys(
        [record.name, *(unicodedata.normalize(form, record.name) for form in ("NFC", "NFD"))]
    )
    for name in names:
        try:
            st = os.stat(inbox / name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return True
        if (st.st_size, st.st_mtime_ns // 1_000_000_000) == wanted:
            return True
    return False


def _cannot_read(path: Path, folder: Path) -> str:
    return (
        f"{path.name} has a claim in {folder} that this PC may not read (each PC must be able "
        "to read the others' claims: check the share's permissions); it is left alone"
    )


def _being_written(path: Path) -> str:
    return f"{path.name}: another PC is writing its claim on it right now"


def _live(path: Path, record: ClaimRecord) -> str:
    who = f"{record.host} (station {record.station}, {record.state})"
    return f"{path.name} is being converted by {who}"


def _done(path: Path, record: ClaimRecord) -> str:
    return f"{path.name} was converted by {record.host} (station {record.station}) already"
