"""A job as a row of the journal's `jobs` table, derived from the dataclasses in watcher.jobs.

The record is declared once, as `Job` (and `NewJob`, what intake knows of a job before it has
an id): each field is a column of the same name, and so is each field of its `Rule`. Columns
are read back by the field's type (paths, enums, flags). A new field needs only a migration
step adding its column (journal.MIGRATIONS); tests/test_journal.py checks that the migrated
schema and the dataclasses agree.
"""

from __future__ import annotations

import os
import sqlite3
import types
from collections.abc import Callable
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from watcher.jobs import Job, JobState, NewJob, Rule

__all__ = [
    "JOB_COLUMNS",
    "NEW_JOB_COLUMNS",
    "job_from_row",
    "new_job_row",
    "path_column",
    "to_column",
]

Decode = Callable[[Any], Any]


def path_column(path: Path | str) -> str | bytes:
    """A path as text, or as its raw bytes where it is no UTF-8 (a name from an old zip
    archive or a legacy share, which Python holds with surrogate escapes): every name is
    journaled, losslessly."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def to_column(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    return path_column(value) if isinstance(value, (Path, str)) else value


def _text(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _path(value: str | bytes) -> Path:
    return Path(_text(value))


def _same(value: Any) -> Any:
    return value


def _decoder(hint: Any) -> Decode:
    """How a column comes back as a field of this type (`X | None` keeps NULL as None)."""
    arguments = get_args(hint)
    optional = get_origin(hint) in (Union, types.UnionType) and type(None) in arguments
    base = next(a for a in arguments if a is not type(None)) if optional else hint
    if base is Path:
        decode: Decode = _path
    elif base is str:
        decode = _text  # a name journaled as bytes reads back as the text it was
    elif base is bool:
        decode = bool
    elif isinstance(base, type) and issubclass(base, Enum):
        decode = base
    else:
        decode = _same
    if not optional:
        return decode
    return lambda value: None if value is None else decode(value)


def _decoders(record: type[Any], *, skip: str = "") -> dict[str, Decode]:
    hints = get_type_hints(record)
    return {item.name: _decoder(hints[item.name]) for item in fields(record) if item.name != skip}


_RULE = _decoders(Rule)
_JOB = _decoders(Job, skip="rule")
_NEW = [item.name for item in fields(NewJob) if item.name != "rule"]

JOB_COLUMNS = (*_JOB, *_RULE)
NEW_JOB_COLUMNS = (*_NEW, *_RULE, "state", "created_at", "updated_at")


def job_from_row(row: sqlite3.Row) -> Job:
    rule = Rule(**{name: decode(row[name]) for name, decode in _RULE.items()})
    return Job(rule=rule, **{name: decode(row[name]) for name, decode in _JOB.items()})


def new_job_row(new: NewJob, now: float) -> tuple[Any, ...]:
    """The values of NEW_JOB_COLUMNS for a job recorded now, queued."""
    return (
        *(to_column(getattr(new, name)) for name in _NEW),
        *(to_column(getattr(new.rule, name)) for name in _RULE),
        JobState.QUEUED.value,
        now,
        now,
    )
