"""Internet shortcuts dropped into an inbox: the link inside is converted, not the shortcut.

Browsers and file managers write a small file when a link is dragged into a folder: `.url`
(Windows), `.webloc` (macOS, an XML or binary property list) and `.desktop` (Linux,
Type=Link). The service fetches the address itself, so only http(s) addresses are accepted.
"""

from __future__ import annotations

import configparser
import plistlib
from pathlib import Path
from urllib.parse import urlsplit

from requests.utils import requote_uri

from watcher.errors import FileRejected

SHORTCUT_SUFFIXES = frozenset({".url", ".webloc", ".desktop"})
MAX_SHORTCUT_BYTES = 64 * 1024


def is_shortcut(path: Path) -> bool:
    return path.suffix.lower() in SHORTCUT_SUFFIXES


def read_shortcut(path: Path) -> str:
    """The web address a shortcut points to, or FileRejected saying what is wrong with it."""
    try:
        data = path.read_bytes()[:MAX_SHORTCUT_BYTES]
    except OSError as exc:
        raise FileRejected(f"{path.name} could not be read ({exc.strerror}).") from None
    suffix = path.suffix.lower()
    url = _webloc_url(data) if suffix == ".webloc" else _ini_url(data, suffix)
    if not url:
        raise FileRejected(f"{path.name} is a shortcut without a web address in it.")
    return _checked(url.strip(), path.name)


def _ini_url(data: bytes, suffix: str) -> str | None:
    section = "InternetShortcut" if suffix == ".url" else "Desktop Entry"
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(data.decode("utf-8-sig", errors="replace"))
    except configparser.Error:
        return None
    if not parser.has_section(section):
        return None
    entry = parser[section]
    if suffix == ".desktop" and entry.get("Type", "Link") != "Link":
        return None
    return entry.get("URL")


def _webloc_url(data: bytes) -> str | None:
    try:
        document = plistlib.loads(data)
    except (plistlib.InvalidFileException, ValueError, TypeError, KeyError):
        return None
    url = document.get("URL") if isinstance(document, dict) else None
    return url if isinstance(url, str) else None


def _checked(url: str, name: str) -> str:
    """Only public web addresses go to the service, quoted so no special character remains."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FileRejected(
            f"{name} points to {url[:80]!r}, which is not a web (http or https) address; "
            "only links to documents on the web can be converted this way."
        )
    return requote_uri(url)
