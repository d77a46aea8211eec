"""Where files end up: results in the outbox, originals in the archive or the failed folder.

A result's name comes from its inbox's `name` template ("{stem}.{ext}" unless the user says
otherwise). A template names a file, never a folder: one that could produce a path is
refused when the rules are read (`template_problem`), and the values put into it (the
original's name above all) have separators and control characters replaced.

Nothing here overwrites: a taken name gets " (2)", " (3)"… and names are claimed with a hard
link (or an exclusive create where links are not supported), which fails instead of replacing
a file that appeared a moment earlier. Results are staged under a hidden name first, so a user
never opens half a document, and get the permissions the user's umask gives any new file.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import os
import random
import re
import shutil
import string
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

STAGING_PREFIX = ".pdfocr-"
ERROR_SUFFIX = ".error.txt"
MAX_NAME_BYTES = 255  # the common file-name limit (ext4, APFS, NTFS counts UTF-16 units)
NEW_FILE_MODE = 0o666  # what `open` asks for; the umask takes its bits away


def staging_path(outbox: Path, job_id: int, remote_name: str, outformat: str) -> Path:
    """A job's hidden result name. Its remote name's random token makes it unique beyond the
    job's number, which another journal (a one-shot `convert`) or a compacted one reuses:
    a staged file is filed as found, so it must never be another job's."""
    stem = remote_name.rpartition(".")[0] or remote_name
    return outbox / f"{STAGING_PREFIX}job{job_id}-{stem}.{outformat}"


DEFAULT_NAME = "{stem}.{ext}"
# The fields a name template may use, and what each says (for the user's error message).
NAME_FIELDS: Mapping[str, str] = {
    "stem": "the original's name without its extension",
    "ext": "the new format's extension (docx, xlsx, pptx, txt, pdf)",
    "lang": "the document language",
    "inbox": "the inbox folder's name",
    "date": "the day the file arrived, {date:%Y-%m-%d} by default",
}
DEFAULT_DATE_FORMAT = "%Y-%m-%d"
_SEPARATORS = ("/", "\\", "\0")
# What a value may not bring into a name: this system's folder separators (a name read from
# the disk holds none, but a value is never trusted to) and NUL.
_UNSAFE_IN_FIELDS = re.compile("[" + re.escape(os.sep + (os.altsep or "")) + "\\x00]")
_SAMPLE_DATE = datetime(2026, 12, 31, 23, 59, 59)


def template_problem(template: str) -> str | None:
    """Why a name template cannot be used, or None. Only names in one folder can come
    out of an accepted template: no separator in its text or its date format, no field
    but those of NAME_FIELDS (so no attribute or index lookups), no hidden or empty name."""
    try:
        pieces = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"is not a valid template ({exc}); write a literal brace twice, like {{{{"
    fields = set()
    for literal, field, spec, conversion in pieces:
        if any(sep in literal for sep in _SEPARATORS):
            return "names a folder (it holds / or \\); a template names a file in the outbox"
        if field is None:
            continue
        if field not in NAME_FIELDS:
            known = ", ".join(f"{{{name}}}" for name in NAME_FIELDS)
            return f"has the unknown field {{{field}}}; the fields are {known}"
        if conversion or (spec and field != "date") or "{" in (spec or ""):
            return f"writes {{{field}}} with a format or conversion; only {{date:...}} takes one"
        if field == "date" and any(sep in _SAMPLE_DATE.strftime(spec or "") for sep in "/\\"):
            return f"has a date format ({spec}) that writes / or \\, which would make folders"
        fields.add(field)
    if "ext" not in fields:
        return (
            'must contain {ext}, so the result keeps its format\'s extension, like "{stem}.{ext}"'
        )
    sample = result_name("sample.pdf", "docx", template=template, lang="English", inbox="inbox")
    if template.startswith((".", " ")) or sample.startswith((".", " ")):
        return "would make a hidden name (starting with a dot or a space)"
    return None


def result_name(
    source_name: str,
    outformat: str,
    *,
    template: str = DEFAULT_NAME,
    lang: str = "",
    inbox: str = "",
    when: datetime | None = None,
) -> str:
    """The result's name from the template (by default, the original's name with the new
    extension: "Invoice 12.pdf" → "Invoice 12.docx"). The template was checked when the
    rules were read; the values are made safe here, and the original's name is shortened
    to fit MAX_NAME_BYTES."""
    stem = _safe_field(Path(source_name).stem) or "document"
    values = {"ext": outformat, "lang": _safe_field(lang), "inbox": _safe_field(inbox)}
    moment = when or datetime.now()
    pieces = list(string.Formatter().parse(template))

    def render(stem_now: str) -> str:
        out = []
        for literal, field, spec, _ in pieces:
            out.append(literal)
            if field == "date":
                out.append(_safe_field(moment.strftime(spec or DEFAULT_DATE_FORMAT)))
            elif field is not None:
                out.append(stem_now if field == "stem" else values.get(field, ""))
        return "".join(out)

    name = render(stem)
    while len(name.encode("utf-8")) > MAX_NAME_BYTES and stem:
        stem = stem[:-1]
        name = render(stem)
    path = Path(name)
    return _fit(path.stem, path.suffix)


def _safe_field(value: str) -> str:
    """A value for a name: no separator (each becomes "_"); all else is the user's."""
    return _UNSAFE_IN_FIELDS.sub("_", value)


def _fit(stem: str, suffix: str) -> str:
    while len((stem + suffix).encode("utf-8")) > MAX_NAME_BYTES and stem:
        stem = stem[:-1]
    return stem + suffix


def candidate_names(folder: Path, name: str) -> Iterator[Path]:
    """name, "stem (2).ext", "stem (3).ext"… in `folder`."""
    path = Path(name)
    stem, suffix = path.stem, path.suffix
    yield folder / name
    for number in range(2, 10_000):
        yield folder / _fit(stem, f" ({number}){suffix}")


def link_without_overwrite(source: Path, target: Path) -> bool:
    """Makes `target` the same file as `source`; FileExistsError if the name is taken.
    Returns True for a hard link, False for a copy (a file system without hard links)."""
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.EACCES):
            raise
        # File systems without hard links (FAT, some shares): reserve the name exclusively,
        # then copy over our own reservation (given up again if the copy fails).
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
        os.close(fd)
        try:
            shutil.copyfile(source, target)
        except BaseException:
            remove_quietly(target)
            raise
        return False


@contextmanager
def written_whole(target: Path, *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """A hidden temporary file beside `target` to write (text when `encoding` is given).
    It is created with the mode the umask gives new files (the kernel applies it, as for
    any file the user's programs create: 0644 under 022, 0600 under 077); when the block
    ends it is synced and renamed onto `target`, which so appears only complete; when the
    block fails it is removed. A kill in between leaves only the hidden file, which the
    daemon's start-up sweep removes."""
    written: Path | None = None
    try:
        try:
            temp = _new_temporary(target.parent, encoding)
        except FileNotFoundError:  # its folder is gone (or not made yet): made, once
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = _new_temporary(target.parent, encoding)
        written = Path(temp.name)
        with temp:
            yield temp
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(written, target)
    except BaseException:
        remove_quietly(written)  # closed first: Windows removes no open file
        raise


# Temporary names need only be unlikely to meet (O_EXCL settles a meeting): a generator
# seeded once at import, instead of tempfile's, which asks the OS for the process id and
# for random bytes for every name. An explicit buffer size spares the terminal check.
_names = random.Random()
_BUFFER = 64 * 1024
_EXTRA_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def _new_temporary(folder: Path, encoding: str | None) -> IO[Any]:
    """A new hidden file in `folder`, open for writing."""
    for _ in range(100):
        path = folder / f"{STAGING_PREFIX}{_names.getrandbits(48):012x}.part"
        try:
            return open(
                path,
                "x" if encoding else "xb",
                buffering=_BUFFER,
                encoding=encoding,
                opener=_exclusive,
            )
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


def _exclusive(path: str, flags: int) -> int:
    return os.open(path, flags | _EXTRA_FLAGS, NEW_FILE_MODE)


def copy_whole(source: Path, target: Path) -> None:
    """Copies `source` to `target`, which appears only complete and synced."""
    with written_whole(target) as copy, source.open("rb") as original:
        shutil.copyfileobj(original, copy)


def same_content(path: Path, other: Path) -> bool:
    """The same file, or a byte-for-byte copy of it (as placed where hard links fail)."""
    try:
        if path.samefile(other):
            return True
        return path.stat().st_size == other.stat().st_size and filecmp.cmp(
            path, other, shallow=False
        )
    except OSError:
        return False


def move_without_overwrite(source: Path, folder: Path, name: str | None = None) -> Path:
    """Moves a file into `folder` (made if it is missing) under a free name and returns
    where it went. The folder is made only when the move finds it missing: a look first
    would cost a system call per file (each a hand-over of the GIL under load)."""
    for candidate in candidate_names(folder, name or source.name):
        try:
            link_without_overwrite(source, candidate)
        except FileExistsError:
            continue
        except FileNotFoundError:
            if folder.is_dir():
                raise  # the source is gone
            folder.mkdir(parents=True, exist_ok=True)
            return move_without_overwrite(source, folder, name)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            return _copy_across_devices(source, folder, name or source.name)
        source.unlink()
        return candidate
    raise FileExistsError(errno.EEXIST, "no free name left", str(folder))


def _copy_across_devices(source: Path, folder: Path, name: str) -> Path:
    for candidate in candidate_names(folder, name):
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        shutil.copy2(source, candidate)
        source.unlink()
        return candidate
    raise FileExistsError(errno.EEXIST, "no free name left", str(folder))


def reason_path(failed_copy: Path) -> Path:
    """ "NAME.error.txt" beside a failed original, shortened to fit where NAME is long."""
    return failed_copy.with_name(_fit(failed_copy.name, ERROR_SUFFIX))


def write_reason(failed_copy: Path, *, source: Path, reason: str, advice: str) -> Path:
    """Writes the reason file beside the failed original, in the user's words."""
    reason_file = reason_path(failed_copy)
    text = (
        f"File: {source.name}\n"
        f"From: {source.parent}\n"
        f"When: {time.strftime('%Y-%m-%d %H:%M:%S')}\n\n"
        f"What happened: {reason}\n\n"
        f"What to do: {advice}\n"
    )
    with written_whole(reason_file, encoding="utf-8") as out:
        out.write(text)
    return reason_file


def set_aside(source: Path, folder: Path, *, reason: str, advice: str) -> Path:
    """Moves a file that cannot be converted into `folder` (the failed folder) with a
    reason file beside it, and returns where the file went."""
    moved = move_without_overwrite(source, folder)
    write_reason(moved, source=source, reason=reason, advice=advice)
    return moved


def remove_quietly(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
