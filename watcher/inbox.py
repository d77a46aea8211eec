"""Sees files arrive in the inboxes and hands each on once, when it is complete.

Scanners reopen a file between pages, FTP and NAS uploads create it empty and fill it later,
browsers download under a temporary name: a file is only handed on once its size and time
have stood still for `settle_seconds` and it looks whole. Events only nominate candidates;
one settle thread looks at them when due, so a flood of events costs a dictionary lookup each.
What a look decides (when a file counts as complete, when to give up on one, when a file that
cannot be read is reported to `on_unreadable` instead) is watcher/settle.py's: a tracker
without threads or I/O, told here what was seen and when. Files that settle together are
handed on together, so a scanner's burst is journaled in a few commits. A file the daemon
placed itself (a result, seen again through another path to its outbox) is never handed on:
see watcher/ownfiles.py.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
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

from watcher.config import BUILTIN_IGNORED_FOLDERS, BUILTIN_IGNORES, AutoSwitch, Config, InboxRule
from watcher.contract import IMAGE_SUFFIXES
from watcher.errors import WatcherError
from watcher.ownfiles import OwnFiles, Placement
from watcher.preflight import is_whole_pdf, read_ends
from watcher.settle import (
    Contents,
    FileState,
    GiveUp,
    Inspect,
    Look,
    Ready,
    SettleTracker,
    Unreadable,
)
from watcher.shortcuts import is_shortcut
from watcher.wording import count

log = logging.getLogger("watcher.inbox")

# File systems whose change events miss writes made by other machines: these are polled.
NETWORK_FS_TYPES = frozenset(
    {
        *("nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "9p", "afs", "ceph", "glusterfs"),
        *("lustre", "davfs", "vboxsf", "fuse.sshfs", "fuse.rclone", "fuse.s3fs", "fuse.cephfs"),
    }
)
# A PDF that never gets its end marker is handed on after standing still this long, or 10
# settle periods if longer, so that the daemon can tell the user why. A file that cannot be read
# goes to `on_unreadable` instead, once READ_TRIES reads failed, the first as long ago: one
# failure proves nothing (on Windows a writer keeping the file open denies reading it).
GIVE_UP_SECONDS = 60.0
READ_TRIES = 3
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

# Windows errors for a file another program has open and does not share: a writer, not a fault.
_SHARING_VIOLATIONS = frozenset({32, 33})  # ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION
_UNREAD = "reading it for conversion failed"  # the daemon could not read it (and logged why)

ReadyFile = tuple[Path, InboxRule]
# Takes complete files and returns those it could not read (offered again at the next rescan,
# up to READ_TRIES times); raises when it could take none of them.
OnReady = Callable[[Sequence[ReadyFile]], Collection[Path]]
# Told of a file that could not be read time and again, with why ("Permission denied; tried 3
# times over 61 s"); the watcher leaves the file alone until it changes.
OnUnreadable = Callable[[Path, InboxRule, str], None]
_Tag = tuple[Config, InboxRule]  # the rules a candidate was judged by, and the one that took it


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
            reason = (
                f"is in a subfolder of inbox {outer.path}; set recursive = true in [watch], "
                "or in its [[inbox]] for it alone"
            )
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
    if not is_shortcut(path) and _matching(path.name, rule.patterns) is None:
        shown = ", ".join(repr(p) for p in rule.patterns)
        return f"matches none of its inbox's patterns: {shown}{_image_hint(path)}"
    return None


def _image_hint(path: Path) -> str:
    """How images are taken, for an image the patterns leave out (the default takes PDFs
    only): by name, since the watcher judges every event and must not open files for it."""
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        return ""
    return (
        f'. Images are converted too (the service reads their text by OCR): add "*{suffix}" '
        "to patterns in [watch], or in its [[inbox]] for it alone, to have them taken"
    )


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


def switched_on(switch: AutoSwitch, folder: Path) -> bool:
    """An AutoSwitch setting for `folder`: AUTO means on for network shares, which only
    Linux tells us cheaply (elsewhere AUTO means off)."""
    if switch is not AutoSwitch.AUTO:
        return switch is AutoSwitch.ALWAYS
    if not sys.platform.startswith("linux"):
        return False
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return _fs_type(folder, mounts) in NETWORK_FS_TYPES


def _state(path: Path) -> FileState | None:
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
    return FileState(info.st_size, info.st_mtime_ns, info.st_ino)


def _inspect(path: Path) -> Contents:
    """Whether the writer seems done: the file opens and reads, and a PDF has its end marker;
    or why it cannot be read.

    On Windows a file that is not read-only is also opened for writing, which fails (a sharing
    violation) while another process still has it open to write; a sharing violation when
    reading says the same: a writer keeps the file to itself for now.
    """
    if os.name == "nt" and os.access(path, os.W_OK):
        try:
            open(path, "r+b").close()  # opening is the whole test
        except OSError:
            return Contents(complete=False)
    try:
        with path.open("rb", buffering=0) as handle:
            head, tail = read_ends(handle)
    except OSError as exc:
        if getattr(exc, "winerror", None) in _SHARING_VIOLATIONS:
            return Contents(complete=False)
        return Contents(complete=False, unreadable=exc.strerror or str(exc))
    return Contents(complete=not head.startswith(b"%PDF") or is_whole_pdf(head, tail))


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
    daemon's own files: those registered in `own_files` (a fresh registry by default). A file
    that cannot be read, time and again, goes to `on_unreadable` instead (by default, a warning
    in the log); either way it is then left alone until it changes."""

    def __init__(
        self,
        config: Config,
        on_ready: OnReady,
        own_files: OwnFiles | None = None,
        *,
        on_unreadable: OnUnreadable | None = None,
    ):
        self._config = config
        self._on_ready = on_ready
        self._on_unreadable = _log_unreadable if on_unreadable is None else on_unreadable
        self.own_files = OwnFiles() if own_files is None else own_files
        self._cond = threading.Condition()  # guards everything below up to _watch_lock
        self._tracker: SettleTracker[_Tag] = SettleTracker(
            config.watch.settle_seconds,
            GIVE_UP_SECONDS,
            min_pause=_MIN_PAUSE,
            read_tries=READ_TRIES,
        )
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
            return self._tracker.pending_count

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
            self._tracker.settle_seconds = config.watch.settle_seconds
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
            unseen = [path for path in self._tracker.settled_paths() if path not in seen]
        gone = [path for path in unseen if not os.path.lexists(path)]
        with self._cond:
            self._tracker.prune(gone)

    # --- Watching ------------------------------------------------------------------------------

    def _sync_watches(self) -> list[Path]:
        """Watch every inbox folder that exists, release the others; return the new ones."""
        config = self._config
        wanted = {r.path: switched_on(config.watch.polling, r.path) for r in config.inboxes}
        recursive_at = {r.path: r.recursive for r in config.inboxes}
        added = []
        with self._watch_lock:
            if self._stopping:
                return []
            # An emitter stops when its folder is deleted, even if a new one took its inode.
            alive = {e.watch for o in self._observers.values() for e in o.emitters if e.is_alive()}
            for folder, watch in list(self._watches.items()):
                setup = (wanted.get(folder), recursive_at.get(folder), _identity(folder))
                if watch.observed not in alive or watch.setup != setup:
                    watch.observer.unschedule(watch.observed)
                    del self._watches[folder]
            for folder, polling in wanted.items():
                if folder not in self._watches:
                    started = self._start_watch(folder, polling, recursive_at[folder])
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
                    self._tracker.forget(path)
            if event.event_type == "moved":
                path = Path(os.fsdecode(event.dest_path))
            if event.event_type not in _ARRIVALS:
                return
            if not event.is_directory:
                self._consider(path)
            elif event.event_type != "modified" and self._recursive_at(path):
                self._scan(path)  # a folder moved or copied in: its files arrive with it
        except Exception:
            log.exception("could not handle a change to %s", os.fsdecode(event.src_path))

    # --- Candidates ----------------------------------------------------------------------------

    def _recursive_at(self, folder: Path) -> bool:
        """Whether the folders below this one count: it is (in) an inbox that takes them."""
        rule = self._config.inbox_holding(folder.resolve())
        return rule is not None and rule.recursive

    def _scan(self, folder: Path) -> set[Path]:
        """Consider every file below `folder` (an inbox, or a folder inside one); return
        the files seen."""
        seen = set()
        for path in files_in(folder, self._recursive_at(folder)):
            seen.add(path)
            try:
                self._consider(path)
            except Exception:
                log.exception("could not look at %s", path.name)
        return seen

    def _consider(self, path: Path) -> None:
        """Start the settle clock for a file that may have arrived, unless it is known."""
        with self._cond:
            if self._stopping or self._tracker.is_pending(path):
                return
            config = self._config
        verdict = judge(config, path)
        if not verdict.accepted or verdict.rule is None:
            log.debug("not taking it: %s", verdict.reason)
            return
        state = _state(path)
        if state is None:
            return
        with self._cond:
            first = self._tracker.next_due()
            started = self._tracker.seen(
                path,
                state,
                time.monotonic(),
                time.time(),
                (config, verdict.rule),
                verdict.rule.settle_seconds,
            )
            if started is not None and (first is None or started.until < first):
                self._cond.notify()  # due before anything else: the settle thread must know

    # --- The settle thread ---------------------------------------------------------------------

    def _run(self) -> None:
        """The settle thread: sleeps until a look or the periodic rescan is due, then makes
        them, handing on in batches the files found complete."""
        while (work := self._next_work()) is not None:
            looks, rescan_due = work
            if rescan_due:
                try:
                    self.rescan()
                except Exception:
                    log.exception("the periodic rescan of the inboxes failed")
            self._look_at(looks)

    def _next_work(self) -> tuple[list[Look[_Tag]], bool] | None:
        """Waits for the next due looks (taken from the tracker), and says whether the
        periodic rescan is due too; None once the watcher is stopping."""
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                every = self._config.watch.rescan_seconds
                rescan_at = self._last_rescan + every if every > 0 else math.inf
                due = self._tracker.next_due()
                wake = min(rescan_at, math.inf if due is None else due)
                if wake <= now:
                    return self._tracker.due(now), rescan_at <= now
                self._cond.wait(None if wake == math.inf else wake - now)
        return None

    def _look_at(self, looks: list[Look[_Tag]]) -> None:
        """Makes the due looks, handing on what is complete HAND_ON_BATCH files at a time."""
        ready: list[ReadyFile] = []
        for look in looks:
            if self._stopping:
                return
            settled = self._settle(look)
            if settled is not None:
                ready.append(settled)
            if len(ready) >= HAND_ON_BATCH:
                self._hand_on(ready)
                ready = []
        if ready:
            self._hand_on(ready)

    def _settle(self, look: Look[_Tag]) -> ReadyFile | None:
        """Look again at one due candidate: return it if it is complete and still wanted. One
        bad file never stops the others: an error drops it until it is seen again (at the
        next rescan, if no event comes first)."""
        try:
            return self._look(look)
        except Exception:
            log.exception("could not check %s", look.path.name)
            with self._cond:
                self._tracker.abandon(look)  # if the error came before a decision
                self._tracker.release(look.path)  # if after
            return None

    def _look(self, look: Look[_Tag]) -> ReadyFile | None:
        path = look.path
        now, wall = time.monotonic(), time.time()
        state = _state(path)
        with self._cond:
            decision = self._tracker.looked(look, state, now, wall)
        if isinstance(decision, Inspect):  # it stood still long enough: only now opened
            contents = _inspect(path)
            with self._cond:
                decision = self._tracker.inspected(look, contents, now)
        if not isinstance(decision, (Ready, GiveUp, Unreadable)):
            return None  # not yet (its next look is queued), or gone
        # Counted as settled by now, so that it is not looked at (nor logged) again until it
        # changes: even once the registry has forgotten it, or the rules are reloaded.
        rule = self._rule_now(path, look.tag)
        if rule is None:  # no longer wanted under the current rules
            with self._cond:
                self._tracker.release(path)
            return None
        if isinstance(decision, Unreadable):
            self._report_unreadable(path, rule, decision.reason)
            return None
        if isinstance(decision, GiveUp):
            log.warning(
                "%s %s (a PDF without its end marker, or a file another program keeps open); "
                "handing it on anyway",
                path.name,
                decision.reason,
            )
        # Asked at the last look, not when the file was first seen: the later, the surer that
        # the filing code has registered a result (it should before the result gets its name).
        own = self.own_files.placed(path)
        if own is not None:
            _log_own(path, own)
            return None
        return path, rule

    def _rule_now(self, path: Path, tag: _Tag) -> InboxRule | None:
        """The rule a settled file goes by: the one that took it, unless the rules changed
        since (then it is judged again: its inbox may be gone, or its pattern)."""
        config, rule = tag
        if self._config is config:
            return rule
        verdict = judge(self._config, path)
        return verdict.rule if verdict.accepted else None

    def _hand_on(self, files: list[ReadyFile]) -> None:
        """Outside the lock: the daemon takes its time. Files it did not take are offered
        again at the next rescan; those it could not read, up to READ_TRIES times."""
        try:
            unread = set(self._on_ready(files))
        except WatcherError as exc:  # the daemon's words (its journal cannot be written)
            log.error("%s not taken yet: %s", count(len(files), "file"), exc)
            self.release(path for path, _ in files)
            return
        except Exception:
            if len(files) > 1:  # one odd file must not hold back the others: one at a time
                for ready in files:
                    self._hand_on([ready])
                return
            log.exception("could not hand on %s", files[0][0].name)
            self.release([files[0][0]])
            return
        self.handed_on(files, unread)

    def handed_on(self, files: Sequence[ReadyFile], unread: set[Path]) -> None:
        """After a hand-on (or the daemon's later look at a file it let wait): what it could
        not read is one failed read more each (and reported once too many), what it took
        has its failures forgotten."""
        now = time.monotonic()
        unreadable = []
        with self._cond:
            for path, rule in files:
                if path not in unread:
                    self._tracker.taken(path)
                elif (given_up := self._tracker.unread(path, now, _UNREAD)) is not None:
                    unreadable.append((path, rule, given_up.reason))
            for path in unread.difference(path for path, _ in files):  # not handed on: as ever
                self._tracker.release(path)
        for path, rule, reason in unreadable:
            self._report_unreadable(path, rule, reason)

    def release(self, paths: Iterable[Path]) -> None:
        """Offer these files again the next time they are seen (at the next rescan)."""
        with self._cond:
            for path in paths:
                self._tracker.release(path)

    def _report_unreadable(self, path: Path, rule: InboxRule, reason: str) -> None:
        """Outside the lock: the callback may move the file away."""
        try:
            self._on_unreadable(path, rule, reason)
        except Exception:
            log.exception("could not deal with %s, which cannot be read (%s)", path.name, reason)


def _log_unreadable(path: Path, rule: InboxRule, reason: str) -> None:
    """What the watcher does with an unreadable file unless told otherwise: says so, once."""
    log.warning(
        "%s cannot be read (%s); it is left alone until it changes, or is moved out of %s and back",
        path.name,
        reason,
        rule.path,
    )


def _log_own(path: Path, placed: Placement) -> None:
    """Says why a file in an inbox is left alone: the user may be wondering."""
    log.info(
        "%s is one of our own results (placed in %s); it is not converted again",
        path.name,
        placed.describe(),
    )


def files_in(folder: Path, recursive: bool) -> Iterator[Path]:
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
