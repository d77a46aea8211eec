"""Sees files arrive in the inboxes and hands each on once, when it is complete.

Scanners reopen a file between pages, FTP and NAS uploads create it empty and fill it later,
browsers download under a temporary name: a file is only handed on once its size and time
have stood still for `settle_seconds` and it looks whole. Events only nominate candidates;
one settle thread decides, so a flood of events costs a dictionary lookup each. Files that
settle together are handed on together, so a scanner's burst is journaled in a few commits.
A file the daemon placed itself (a result, seen again through another path to its outbox) is
never handed on: see watcher/ownfiles.py.
"""

from __future__ import annotations

import fnmatch
import heapq
import itertools
import logging
import math
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from watcher.config import BUILTIN_IGNORED_FOLDERS, BUILTIN_IGNORES, Config, InboxRule, PollingMode
from watcher.errors import WatcherError
from watcher.ownfiles import OwnFiles, Placement
from watcher.preflight import is_whole_pdf, read_ends
from watcher.shortcuts import is_shortcut

log = logging.getLogger("watcher.inbox")

# File systems whose change events miss writes made by other machines: these are polled.
NETWORK_FS_TYPES = frozenset(
    {
        *("nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "ceph", "glusterfs"),
        *("lustre", "davfs", "vboxsf", "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.cephfs"),
    }
)
# A PDF that never gets its end marker (or a file that never opens) is handed on after standing
# still this long, or 10 settle periods if longer, so that the daemon can tell the user why.
GIVE_UP_SECONDS = 60.0
_IGNORED_FOLDERS = frozenset(name.casefold() for name in BUILTIN_IGNORED_FOLDERS)
# Only these are asked of the OS: our own reads of inbox files (hash, checks, upload) would
# otherwise come back as opened/closed-without-writing events, several per file.
_WANTED_EVENTS = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]
# inotify (Linux) tells when a writer closes a file, which is all a modification means to us;
# its "modified" events also fire for every write and every attribute change, such as the
# link count our own move to the archive changes: one more event, and one more look, per file.
_WANTED_FROM_INOTIFY = [kind for kind in _WANTED_EVENTS if kind is not FileModifiedEvent]
_ARRIVALS = frozenset({"created", "modified", "closed", "moved"})  # watchdog event types
_MIN_PAUSE = 0.2  # between looks at a changing file, even with settle_seconds = 0
HAND_ON_BATCH = 64  # files handed on at once: one journal commit, and the first not kept long

ReadyFile = tuple[Path, InboxRule]
# Takes complete files and returns those it could not take yet (offered again at the next
# rescan); raises when it could take none of them.
OnReady = Callable[[Sequence[ReadyFile]], Collection[Path]]


@dataclass(frozen=True)
class Verdict:
    """Whether a file is converted, and why or why not. `rule` is the file's inbox when it
    is in one, even when the file is refused."""

    accepted: bool
    reason: str
    rule: InboxRule | None


def _matching(name: str, globs: tuple[str, ...]) -> str | None:
    """The first glob matching the name, ignoring case (`*.pdf` takes `SCAN.PDF` everywhere)."""
    folded = name.casefold()
    return next((g for g in globs if fnmatch.fnmatchcase(folded, g.casefold())), None)


def judge(config: Config, path: Path) -> Verdict:
    """Which inbox rule takes the file, or what keeps it out, as a sentence for the user.

    `check --explain` and the watcher both ask this, so they can never disagree.
    """
    path = Path(path).expanduser().absolute()
    folder = path.parent.resolve()
    rule = config.inbox_holding(folder)
    if rule is None:
        outer = next((r for r in config.inboxes if r.path in folder.parents), None)
        if outer is not None:
            reason = f"is in a subfolder of inbox {outer.path}; set recursive = true in [watch]"
            return Verdict(False, f"{path.name} {reason}", outer)
        watched = ", ".join(str(r.path) for r in config.inboxes) or "none are configured"
        return Verdict(False, f"{path.name} is not in any inbox (inboxes: {watched})", None)
    refusal = _refusal(config, rule, path, folder)
    if refusal is not None:
        return Verdict(False, f"{path.name} {refusal}", rule)
    kind = " as an internet shortcut" if is_shortcut(path) else ""
    reason = f"{path.name} is accepted{kind} by inbox {rule.path}: converted to {rule.outformat}"
    return Verdict(True, reason, rule)


def _refusal(config: Config, rule: InboxRule, path: Path, folder: Path) -> str | None:
    """What keeps a file of this inbox out (to follow its name), or None when nothing does.
    `folder` is the file's folder, resolved."""
    within = folder.relative_to(rule.path).parts
    ignored = next((p for p in within if p.casefold() in _IGNORED_FOLDERS), None)
    if ignored is not None:
        return f"is inside the ignored folder {ignored!r} (NAS, sync-tool or system litter)"
    glob = _matching(path.name, config.watch.ignore)
    if glob in BUILTIN_IGNORES:
        return f"is ignored: its name matches the built-in pattern {glob!r} (hidden or unfinished)"
    if glob is not None:
        return f"is ignored: its name matches {glob!r} from ignore in [watch]"
    try:
        mode = path.lstat().st_mode
    except OSError as exc:
        return f"cannot be looked at: {exc.strerror or exc}"
    if stat.S_ISLNK(mode):
        return "is a symbolic link, and links are never followed; put the file itself in the inbox"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a device, pipe or socket)"
    # Internet shortcuts name a document to fetch: accepted whatever the patterns say.
    if not is_shortcut(path) and _matching(path.name, config.watch.patterns) is None:
        shown = ", ".join(repr(p) for p in config.watch.patterns)
        return f"matches none of the patterns in [watch]: {shown}"
    return None


def _fs_type(folder: Path, mounts: str) -> str:
    """The file-system type of the longest mount point holding `folder`, from /proc/mounts text."""
    best, kind = -1, ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[1]))
        if (point == folder or point in folder.parents) and len(point.parts) > best:
            best, kind = len(point.parts), fields[2]
    return kind


def _wants_polling(mode: PollingMode, folder: Path) -> bool:
    """Polling for network shares in AUTO mode; only Linux tells us cheaply what a folder is on."""
    if mode is not PollingMode.AUTO:
        return mode is PollingMode.ALWAYS
    if not sys.platform.startswith("linux"):
        return False
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return _fs_type(folder, mounts) in NETWORK_FS_TYPES


def _state(path: Path) -> tuple[int, int] | None:
    """Size and mtime_ns, or None when the file is gone, is no longer a regular file (replaced
    by a link, say) or cannot be looked at (then logged)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot look at %s: %s", path.name, exc.strerror or exc)
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return info.st_size, info.st_mtime_ns


def _still_since(state: tuple[int, int], settle: float, now: float) -> float:
    """When the file last changed, on the monotonic clock: its mtime tells, so a file that
    was written a moment before we looked is not made to wait a whole settle period more.
    Credited at most one settle period (a clock step or a preserved mtime proves nothing
    beyond that), and never into the future."""
    age = time.time() - state[1] / 1e9
    return now - min(settle, max(0.0, age))


def _looks_complete(path: Path) -> bool:
    """Whether the writer seems done: the file opens, and a PDF has its end marker.

    On Windows a file that is not read-only is also opened for writing, which fails (a sharing
    violation) while another process still has it open to write.
    """
    if os.name == "nt" and os.access(path, os.W_OK):
        try:
            open(path, "r+b").close()  # opening is the whole test
        except OSError:
            return False
    ends = read_ends(path)
    return ends is not None and (not ends[0].startswith(b"%PDF") or is_whole_pdf(*ends))


@dataclass
class _Candidate:
    """A file seen but not yet settled. Only the settle thread changes `state` and `since`."""

    state: tuple[int, int] | None  # size, mtime_ns at the last look
    since: float  # time.monotonic() when that state was first seen
    config: Config  # the rules it was judged by
    rule: InboxRule  # the inbox rule that took it


@dataclass(frozen=True)
class _Watch:
    """One scheduled inbox, and how, to notice when that must change."""

    observer: BaseObserver
    observed: ObservedWatch
    # polling, recursive, and the folder's (st_dev, st_ino): a replaced folder is watched anew
    setup: tuple[bool, bool, tuple[int, int]]


def _identity(folder: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a folder, or None when there is no folder there."""
    try:
        info = folder.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def _is_inotify(observer: BaseObserver) -> bool:
    return type(observer).__module__ == "watchdog.observers.inotify"


class _Events(FileSystemEventHandler):
    """Forwards every watchdog event to one callback."""

    def __init__(self, on_event: Callable[[FileSystemEvent], None]):
        super().__init__()
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._on_event(event)


class InboxWatcher:
    """Watches every inbox and hands each complete file to `on_ready` once, except the
    daemon's own files: those registered in `own_files` (a fresh registry by default)."""

    def __init__(self, config: Config, on_ready: OnReady, own_files: OwnFiles | None = None):
        self._config = config
        self._on_ready = on_ready
        self.own_files = OwnFiles() if own_files is None else own_files
        self._cond = threading.Condition()  # guards everything below up to _watch_lock
        self._pending: dict[Path, _Candidate] = {}
        self._due: list[tuple[float, int, Path, _Candidate]] = []  # heap; stale entries skipped
        self._order = itertools.count()
        self._handed: dict[Path, tuple[int, int]] = {}  # path -> (size, mtime_ns) handed on
        self._last_rescan = time.monotonic()
        self._stopping = False
        self._watch_lock = threading.Lock()  # guards the observers and watches
        self._observers: dict[bool, BaseObserver] = {}  # keyed by "polling"
        self._watches: dict[Path, _Watch] = {}
        self._missing: set[Path] = set()  # warned about once, until they appear
        self._handler = _Events(self._on_event)
        self._thread = threading.Thread(target=self._run, name="inbox-settle", daemon=True)

    @property
    def pending_count(self) -> int:
        """Files seen but not yet settled."""
        with self._cond:
            return len(self._pending)

    def start(self) -> None:
        """Start watching, then pick up what arrived while the daemon was not running."""
        self._thread.start()
        self.rescan()

    def stop(self) -> None:
        """Stop the observers and the settle thread and wait for them; safe to call twice."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with self._watch_lock:
            observers = list(self._observers.values())
            self._observers.clear()
            self._watches.clear()
        for observer in observers:
            observer.stop()
        for observer in observers:
            observer.join()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def update_config(self, config: Config) -> None:
        """Use new rules live: watch added inboxes (scanning them), release removed ones."""
        with self._cond:
            self._config = config
            self._cond.notify()  # the rescan interval may have changed
        for folder in self._sync_watches():
            self._scan(folder)

    def rescan(self) -> None:
        """Consider every file in every inbox, for the events an observer missed; also watch
        inboxes that appeared or were recreated, and forget handed-on files that are gone."""
        with self._cond:
            self._last_rescan = time.monotonic()
        self._sync_watches()
        seen: set[Path] = set()
        for rule in self._config.inboxes:
            seen |= self._scan(rule.path)
        with self._cond:
            unseen = [path for path in self._handed if path not in seen]
        gone = [path for path in unseen if not os.path.lexists(path)]
        with self._cond:
            for path in gone:
                self._handed.pop(path, None)

    # --- Watching ------------------------------------------------------------------------------

    def _sync_watches(self) -> list[Path]:
        """Watch every inbox folder that exists, release the others; return the new ones."""
        config = self._config
        recursive = config.watch.recursive
        wanted = {r.path: _wants_polling(config.watch.polling, r.path) for r in config.inboxes}
        added = []
        with self._watch_lock:
            if self._stopping:
                return []
            # An emitter stops when its folder is deleted, even if a new one took its inode.
            alive = {e.watch for o in self._observers.values() for e in o.emitters if e.is_alive()}
            for folder, watch in list(self._watches.items()):
                setup = (wanted.get(folder), recursive, _identity(folder))
                if watch.observed not in alive or watch.setup != setup:
                    watch.observer.unschedule(watch.observed)
                    del self._watches[folder]
            for folder, polling in wanted.items():
                if folder not in self._watches:
                    started = self._start_watch(folder, polling, recursive)
                    if started is not None:
                        self._watches[folder] = started
                        added.append(folder)
            self._missing &= wanted.keys()
        return added

    def _start_watch(self, folder: Path, polling: bool, recursive: bool) -> _Watch | None:
        """Schedule one inbox folder, or warn once that it cannot be watched (yet)."""
        identity, problem = _identity(folder), "it does not exist"
        if identity is not None:
            try:
                observer = self._observer(polling)
                wanted = _WANTED_FROM_INOTIFY if _is_inotify(observer) else _WANTED_EVENTS
                observed = observer.schedule(
                    self._handler, str(folder), recursive=recursive, event_filter=wanted
                )
            except OSError as exc:  # e.g. the inotify watch limit
                problem = exc.strerror or str(exc)
            else:
                self._missing.discard(folder)
                return _Watch(observer, observed, (polling, recursive, identity))
        if folder not in self._missing:
            self._missing.add(folder)
            log.warning("cannot watch inbox %s: %s; trying again at each rescan", folder, problem)
        return None

    def _observer(self, polling: bool) -> BaseObserver:
        """The started observer for one mode, created on first use."""
        observer = self._observers.get(polling)
        if observer is None:
            timeout = min(2.0, max(0.5, self._config.watch.settle_seconds))
            observer = PollingObserver(timeout=timeout) if polling else Observer()
            observer.start()
            self._observers[polling] = observer
        return observer

    def _on_event(self, event: FileSystemEvent) -> None:
        """Turn one event into candidates; never lets an error into watchdog's thread."""
        try:
            path = Path(os.fsdecode(event.src_path))
            if event.event_type in ("deleted", "moved"):
                with self._cond:
                    self._pending.pop(path, None)
                    self._handed.pop(path, None)
            if event.event_type == "moved":
                path = Path(os.fsdecode(event.dest_path))
            if event.event_type not in _ARRIVALS:
                return
            if not event.is_directory:
                self._consider(path)
            elif event.event_type != "modified" and self._config.watch.recursive:
                self._scan(path)  # a folder moved or copied in: its files arrive with it
        except Exception:
            log.exception("could not handle a change to %s", os.fsdecode(event.src_path))

    # --- Candidates ----------------------------------------------------------------------------

    def _scan(self, folder: Path) -> set[Path]:
        """Consider every file below `folder`; return the files seen."""
        seen = set()
        for path in _files_in(folder, self._config.watch.recursive):
            seen.add(path)
            try:
                self._consider(path)
            except Exception:
                log.exception("could not look at %s", path.name)
        return seen

    def _consider(self, path: Path) -> None:
        """Start the settle clock for a file that may have arrived, unless it is known."""
        with self._cond:
            if self._stopping or path in self._pending:
                return
            config = self._config
        verdict = judge(config, path)
        if not verdict.accepted or verdict.rule is None:
            log.debug("not taking it: %s", verdict.reason)
            return
        state = _state(path)
        with self._cond:
            if state is None or path in self._pending or self._handed.get(path) == state:
                return
            settle = config.watch.settle_seconds
            since = _still_since(state, settle, time.monotonic())
            candidate = _Candidate(state, since, config, verdict.rule)
            self._pending[path] = candidate
            self._schedule(path, candidate, candidate.since + settle)

    def _schedule(self, path: Path, candidate: _Candidate, due: float) -> None:
        """Queue the candidate's next look; wakes the settle thread if it is now the first."""
        entry = (due, next(self._order), path, candidate)
        heapq.heappush(self._due, entry)
        if self._due[0] is entry:
            self._cond.notify()

    def _run(self) -> None:
        """The settle thread: sleeps until a candidate or the periodic rescan is due."""
        while True:
            with self._cond:
                while not self._stopping:
                    now = time.monotonic()
                    every = self._config.watch.rescan_seconds
                    rescan_at = self._last_rescan + every if every > 0 else math.inf
                    wake = min(rescan_at, self._due[0][0] if self._due else math.inf)
                    if wake <= now:
                        break
                    self._cond.wait(None if wake == math.inf else wake - now)
                if self._stopping:
                    return
                batch = []
                while self._due and self._due[0][0] <= now:
                    _, _, path, candidate = heapq.heappop(self._due)
                    if self._pending.get(path) is candidate:
                        batch.append((path, candidate))
            if rescan_at <= now:
                try:
                    self.rescan()
                except Exception:
                    log.exception("the periodic rescan of the inboxes failed")
            ready: list[ReadyFile] = []
            for path, candidate in batch:
                if self._stopping:
                    return
                try:
                    settled = self._settle(path, candidate)
                except Exception:  # one bad file never stops the others
                    log.exception("could not check %s", path.name)
                    continue
                if settled is not None:
                    ready.append(settled)
                if len(ready) >= HAND_ON_BATCH:
                    self._hand_on(ready)
                    ready = []
            if ready:
                self._hand_on(ready)

    def _hand_on(self, files: list[ReadyFile]) -> None:
        """Outside the lock: the daemon takes its time. Files it did not take are offered
        again at the next rescan."""
        try:
            not_taken = set(self._on_ready(files))
        except WatcherError as exc:  # the daemon's words (its journal cannot be written)
            log.error("%d file(s) not taken yet: %s", len(files), exc)
            not_taken = {path for path, _ in files}
        except Exception:
            if len(files) > 1:  # one odd file must not hold back the others: one at a time
                for ready in files:
                    self._hand_on([ready])
                return
            log.exception("could not hand on %s", files[0][0].name)
            not_taken = {files[0][0]}
        if not_taken:
            with self._cond:
                for path in not_taken:
                    self._handed.pop(path, None)

    def _settle(self, path: Path, candidate: _Candidate) -> ReadyFile | None:
        """Look again at one due candidate: return it if it is complete and still wanted,
        else plan the next look."""
        settle = self._config.watch.settle_seconds
        now = time.monotonic()
        state = _state(path)
        settled = False
        if state != candidate.state:  # any change restarts the settle clock
            candidate.state = state
            candidate.since = now if state is None else _still_since(state, settle, now)
        else:
            still_for = now - candidate.since
            settled = still_for >= settle and (
                _looks_complete(path) or self._give_up(path, still_for, settle)
            )
        rule = self._rule_now(path, candidate) if settled else None
        # Asked at the last look, not when the file was first seen: the later, the surer that
        # the filing code has registered a result (it should before the result gets its name).
        own = self.own_files.placed(path) if rule is not None else None
        with self._cond:
            if self._pending.get(path) is not candidate:
                return None  # deleted or moved away meanwhile
            if state is not None and not settled:
                self._schedule(path, candidate, max(candidate.since + settle, now + _MIN_PAUSE))
                return None
            del self._pending[path]
            if rule is None or state is None:
                return None  # gone, or no longer wanted under the current rules
            # Counted as handed on, so that it is not looked at (nor logged) again until it
            # changes: even once the registry has forgotten it, or the rules are reloaded.
            self._handed[path] = state
        if own is not None:
            _log_own(path, own)
            return None
        return path, rule

    def _rule_now(self, path: Path, candidate: _Candidate) -> InboxRule | None:
        """The rule a settled file goes by: the one that took it, unless the rules changed
        since (then it is judged again: its inbox may be gone, or its pattern)."""
        config = self._config
        if config is candidate.config:
            return candidate.rule
        verdict = judge(config, path)
        return verdict.rule if verdict.accepted else None

    @staticmethod
    def _give_up(path: Path, still_for: float, settle: float) -> bool:
        """Hand on a file that looks unfinished but has stood still for long: the daemon then
        tells the user what is wrong with it, instead of it waiting silently forever."""
        if still_for < max(GIVE_UP_SECONDS, 10 * settle):
            return False
        log.warning(
            "%s has not changed for %.0f s but still looks unfinished (a PDF without its "
            "end marker, or a file that cannot be opened); handing it on anyway",
            path.name,
            still_for,
        )
        return True


def _log_own(path: Path, placed: Placement) -> None:
    """Says why a file in an inbox is left alone: the user may be wondering."""
    log.info(
        "%s is one of our own results (placed in %s); it is not converted again",
        path.name,
        placed.describe(),
    )


def _files_in(folder: Path, recursive: bool) -> Iterator[Path]:
    """Every entry below `folder` that is not a folder (subfolders too when recursive, except
    ignored ones); links to folders are never followed."""
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False):
                        yield Path(entry.path)
                    elif recursive and entry.name.casefold() not in _IGNORED_FOLDERS:
                        stack.append(Path(entry.path))
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot list %s: %s", current, exc.strerror or exc)
