"""Where the API key comes from, and where `init --api-key` puts it.

Reading order, the first one found wins:

1. the PDFOCR_API_KEY environment variable (one session, a server, CI);
2. `key` under [api] in the rules file;
3. the OS keyring (Secret Service on Linux, Keychain on macOS, Credential Manager on
   Windows, through the `keyring` library), when the rules file says `keyring = true` under
   [api]. The entry is named after the rules file's path, so two rules files keep two keys.

`save_key` (`init --api-key KEY`) puts the key in the OS keyring when one can be used, then
writes `keyring = true` where the file's key line was; without a usable keyring it writes the
key into the file and makes the file readable by the user only. Either way every other byte of
the rules file stays as it was, comments included: the file is the user's, only the key's two
lines are ours, and the edit is checked by reading both texts back.

The keyring is read only where a key is needed (run, convert, doctor, autostart), never by a
plain load of the rules file: a locked keyring may make the desktop ask for its password.
"""

from __future__ import annotations

import codecs
import enum
import os
import re
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tomli_w

from watcher.config import API_KEY_ENV, Config, default_config_path
from watcher.errors import ConfigError, WatcherError
from watcher.logs import redact, register_secret

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

KEYRING_SERVICE = "pdfocr-watcher"
SET_IT_AGAIN = "set it again with `pdfocr-watcher init --api-key KEY`, or in PDFOCR_API_KEY"
_KEYRING_COMMENT = (
    "  # the API key is in the OS keyring; `pdfocr-watcher init --api-key KEY` changes it"
)


class KeySource(enum.Enum):
    """Where a key comes from, in the reading order; the value is how the user sees it."""

    ENVIRONMENT = API_KEY_ENV
    RULES_FILE = "the rules file"
    KEYRING = "the OS keyring"
    NONE = "nowhere"


class KeyringUnavailable(WatcherError):
    """No OS keyring can be used here, or it refused; the message says why, in words."""


@dataclass(frozen=True)
class SavedKey:
    """Where `save_key` put the key; `why_not_keyring` says why the file holds it instead."""

    source: KeySource
    why_not_keyring: str = ""


def key_source(config: Config, env: Mapping[str, str] | None = None) -> KeySource:
    """Where `config`'s key comes from, by the reading order, without opening the keyring."""
    env = os.environ if env is None else env
    if env.get(API_KEY_ENV, "").strip():
        return KeySource.ENVIRONMENT
    if config.api.key:
        return KeySource.RULES_FILE
    return KeySource.KEYRING if config.api.keyring else KeySource.NONE


def with_key(config: Config, env: Mapping[str, str] | None = None) -> Config:
    """`config` with its key, read from the OS keyring when that is where it lives. A keyring
    that cannot be read, or holds no key, is a ConfigError: a daemon must not quietly run
    without the key the user stored (it would fall back to the sandbox)."""
    if key_source(config, env) is not KeySource.KEYRING:
        return config
    path = config.path or default_config_path()
    try:
        key = read_stored_key(path)
    except KeyringUnavailable as exc:
        raise _keyring_problem(path, str(exc)) from None
    if not key:
        raise _keyring_problem(path, "the OS keyring has no key for this rules file")
    register_secret(key)
    return replace(config, api=replace(config.api, key=key))


def _keyring_problem(path: Path, why: str) -> ConfigError:
    message = f"says the API key is kept in the OS keyring, but {why}; {SET_IT_AGAIN}"
    return ConfigError(str(path), message, key="api.keyring", line=_keyring_line(path))


def _keyring_line(path: Path) -> int | None:
    try:
        lines = _read(path)[0].splitlines()
    except ConfigError:
        return None
    section = _api_section(lines)
    found = _find_setting(lines, section, "keyring") if section else None
    return found + 1 if found is not None else None


# -- the OS keyring ----------------------------------------------------------------------------


def keyring_entry(path: Path) -> str:
    """The keyring's user name for a rules file's key: the file's absolute path, however
    it was written (`..`, `~`, relative to where the command ran)."""
    return os.path.abspath(path.expanduser())


def _backend() -> Any:
    """The OS keyring, or KeyringUnavailable saying why there is none to use."""
    try:
        import keyring
        from keyring.backends import fail, null
    except ImportError:
        raise KeyringUnavailable(
            "the keyring library is not installed (Debian and Ubuntu: python3-keyring)"
        ) from None
    backend = keyring.get_keyring()
    if isinstance(backend, (fail.Keyring, null.Keyring)):
        raise KeyringUnavailable(
            "no OS keyring can be reached here (on Linux one comes with the desktop session: "
            "GNOME Keyring or KWallet)"
        )
    return backend


def _failure(exc: Exception) -> str:
    # The keyring's backends raise their own kinds (D-Bus, Keychain, Windows errors), and
    # their text may quote what was asked: redacted, since the key may be among it.
    return redact(str(exc).strip() or type(exc).__name__)


def read_stored_key(path: Path) -> str:
    """The key the OS keyring keeps for this rules file ("" when it keeps none)."""
    backend = _backend()
    try:
        key = backend.get_password(KEYRING_SERVICE, keyring_entry(path))
    except Exception as exc:  # any backend's own error: the keyring could not be read
        raise KeyringUnavailable(f"the OS keyring could not be read: {_failure(exc)}") from None
    return key.strip() if isinstance(key, str) else ""


def store_key(path: Path, key: str) -> None:
    """Puts the key in the OS keyring and reads it back, so a keyring that only seems to
    work (one that forgets, or a locked one that says nothing) is never trusted."""
    backend = _backend()
    try:
        backend.set_password(KEYRING_SERVICE, keyring_entry(path), key)
        stored = backend.get_password(KEYRING_SERVICE, keyring_entry(path))
    except Exception as exc:  # any backend's own error: locked, refused, gone
        raise KeyringUnavailable(f"the OS keyring refused it: {_failure(exc)}") from None
    if stored != key:
        raise KeyringUnavailable("the OS keyring did not keep it")


# -- saving the key ----------------------------------------------------------------------------


def check_key_text(key: str) -> str:
    """The key as given, trimmed; ValueError, in words, when it cannot be a key."""
    key = key.strip()
    if not key or any(char.isspace() or not char.isprintable() for char in key):
        raise ValueError(
            "an API key is one word, without spaces or line breaks; copy it again from your "
            "pdfocr.org account"
        )
    return key


def save_key(path: Path, key: str) -> SavedKey:
    """Sets the key of an existing rules file: in the OS keyring when one can be used (the
    file then says `keyring = true`), else in the file itself. Both edits are worked out and
    checked before anything is stored, so a file that cannot be edited changes nothing."""
    register_secret(key)
    text, bom = _read(path)
    in_keyring = edited_rules(path, text, key=None)
    in_file = edited_rules(path, text, key=key)
    try:
        store_key(path, key)
    except KeyringUnavailable as exc:
        _rewrite(path, in_file, bom, private=True)
        return SavedKey(KeySource.RULES_FILE, str(exc))
    _rewrite(path, in_keyring, bom, private=False)
    return SavedKey(KeySource.KEYRING)


def _read(path: Path) -> tuple[str, bool]:
    """The file's text and whether it starts with a byte-order mark (kept when rewritten)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), "no rules file here; create one with `init`") from None
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read it: {exc.strerror or exc}") from None
    bom = raw.startswith(codecs.BOM_UTF8)
    try:
        return raw[len(codecs.BOM_UTF8) if bom else 0 :].decode("utf-8"), bom
    except UnicodeDecodeError:
        raise ConfigError(str(path), "is not UTF-8 text; save it as UTF-8") from None


def _rewrite(path: Path, text: str, bom: bool, *, private: bool) -> None:
    """Replaces the file at once (a running daemon never reads half of it), through a
    symbolic link to where the file really is, keeping its mode (owner-only with the key)."""
    target = path.resolve()
    data = (codecs.BOM_UTF8 if bom else b"") + text.encode("utf-8")
    try:
        mode = stat.S_IMODE(target.stat().st_mode) & (0o700 if private else 0o777)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot write it: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ConfigError(str(path), f"cannot write it: {exc.strerror or exc}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# -- editing the two lines ---------------------------------------------------------------------

_HEADER = re.compile(r"^\s*\[")
_API_HEADER = re.compile(r"""^\s*\[\s*(?:api|"api"|'api')\s*\]\s*(?:#.*)?$""")
_VALUE = r"""(?:"(?:[^"\\\r\n]|\\.)*"|'[^'\r\n]*'|true|false)"""


def _setting(name: str) -> re.Pattern[str]:
    return re.compile(rf"""^(?P<indent>\s*)(?:{name}|"{name}"|'{name}')\s*=""")


def _api_section(lines: list[str]) -> tuple[int, int] | None:
    """The [api] header's index and the end of its body (the next header, or the end)."""
    start = next((n for n, line in enumerate(lines) if _API_HEADER.match(line)), None)
    if start is None:
        return None
    end = next((n for n in range(start + 1, len(lines)) if _HEADER.match(lines[n])), len(lines))
    return start, end


def _find_setting(lines: list[str], section: tuple[int, int], name: str) -> int | None:
    pattern = _setting(name)
    return next((n for n in range(section[0] + 1, section[1]) if pattern.match(lines[n])), None)


def edited_rules(path: Path, text: str, *, key: str | None) -> str:
    """The rules file's text with `key = "KEY"` (key given) or `keyring = true` (key None)
    under [api], and the other of the two lines gone. An existing line of the same name keeps
    its indent and comment; else the other one's place is taken, else the line goes right
    under [api] (a new [api] table at the end if there is none). The edit is proven by
    parsing: the result must read as the original with only that change."""
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML, so the key was not set: {exc}") from None
    name, other = ("keyring", "key") if key is None else ("key", "keyring")
    value = "true" if key is None else tomli_w.dumps({"key": key}).split("=", 1)[1].strip()
    api = expected.get("api")
    expected["api"] = dict(api) if isinstance(api, dict) else {}
    expected["api"].pop(other, None)
    expected["api"][name] = True if key is None else key
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    section = _api_section(lines)
    if section is None:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += newline
        lines += [newline, f"[api]{newline}"] if lines else [f"[api]{newline}"]
        section = (len(lines) - 1, len(lines))
    own, theirs = _find_setting(lines, section, name), _find_setting(lines, section, other)
    fresh = f"{name} = {value}{_KEYRING_COMMENT if key is None else ''}{newline}"
    if own is not None:
        match = re.match(
            rf"(?P<head>{_setting(name).pattern}\s*){_VALUE}(?P<rest>[^\r\n]*\r?\n?)$",
            lines[own],
        )
        if match is None:
            raise _cannot_edit(path, own)
        lines[own] = f"{match['head']}{value}{match['rest']}"
    elif theirs is not None:
        indent = _setting(other).match(lines[theirs])
        lines[theirs] = (indent["indent"] if indent else "") + fresh
        theirs = None
    else:
        lines.insert(section[0] + 1, fresh)
    if theirs is not None:
        del lines[theirs]  # own was edited in place: the indices still hold
    result = "".join(lines)
    try:
        same = tomllib.loads(result) == expected
    except tomllib.TOMLDecodeError:
        same = False
    if not same:
        raise _cannot_edit(path, None)
    return result


def _cannot_edit(path: Path, index: int | None) -> ConfigError:
    return ConfigError(
        str(path),
        "the key could not be set without touching other settings (the [api] table is "
        'not written in the usual way); write it yourself under [api] as key = "..."',
        key="api.key",
        line=index + 1 if index is not None else None,
    )
