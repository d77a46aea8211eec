"""Internet shortcuts (watcher.shortcuts): the web address inside a .url, .webloc or .desktop
file, read from real files; anything that is not an http(s) address, or not a shortcut at all,
is refused in words that name the file. Nothing here is sent anywhere."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher.errors import FileRejected
from watcher.shortcuts import MAX_SHORTCUT_BYTES, is_shortcut, read_shortcut

URL = "https://example.org/reports/q3.pdf"


def shortcut(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("windows.url", f"[InternetShortcut]\r\nURL={URL}\r\n"),
        ("bom.url", "\ufeff" + f"[InternetShortcut]\nURL={URL}\n"),
        ("extra.url", f"[DEFAULT]\nBASEURL={URL}\n[InternetShortcut]\nIconIndex=0\nURL={URL}\n"),
        ("spaces.url", f"[InternetShortcut]\nURL =   {URL}   \n"),
        ("linux.desktop", f"[Desktop Entry]\nType=Link\nName=Q3\nURL={URL}\n"),
        ("untyped.desktop", f"[Desktop Entry]\nURL={URL}\n"),
        ("xml.webloc", plistlib.dumps({"URL": URL})),
        ("binary.webloc", plistlib.dumps({"URL": URL}, fmt=plistlib.FMT_BINARY)),
        ("UPPER.URL", f"[InternetShortcut]\nURL={URL}\n"),
    ],
)
def test_the_address_is_read_from_each_kind_of_shortcut(
    tmp_path: Path, name: str, content: bytes | str
) -> None:
    path = shortcut(tmp_path, name, content)
    assert is_shortcut(path)
    assert read_shortcut(path) == URL


def test_an_address_with_spaces_accents_or_control_characters_is_sent_quoted(
    tmp_path: Path,
) -> None:
    path = shortcut(
        tmp_path, "odd.url", "[InternetShortcut]\nURL=https://example.org/Bon reçu.pdf\n"
    )
    assert read_shortcut(path) == "https://example.org/Bon%20re%C3%A7u.pdf"
    path = shortcut(
        tmp_path, "ctl.url", "[InternetShortcut]\nURL=https://example.org/a\tb\x01.pdf\n"
    )
    assert read_shortcut(path) == "https://example.org/a%09b%01.pdf"


@pytest.mark.parametrize(
    "address",
    [
        "file:///etc/passwd",
        "ftp://example.org/a.pdf",
        "javascript:alert(1)",
        "data:application/pdf;base64,JVBERi0=",
        "smb://server/share/a.pdf",
        "mailto:someone@example.org",
        "http:///no-host.pdf",
        "https://",
        "example.org/a.pdf",
        "http://[::1",
    ],
)
def test_an_address_that_is_not_a_web_address_is_refused(tmp_path: Path, address: str) -> None:
    path = shortcut(tmp_path, "bad.url", f"[InternetShortcut]\nURL={address}\n")
    with pytest.raises(FileRejected) as refused:
        read_shortcut(path)
    assert "bad.url" in refused.value.message and "http or https" in refused.value.message


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.url", b""),
        ("no-section.url", f"URL={URL}\n"),
        ("wrong-section.url", f"[Desktop Entry]\nURL={URL}\n"),
        ("no-url.url", "[InternetShortcut]\nIconIndex=0\n"),
        ("blank-url.url", "[InternetShortcut]\nURL=\n"),
        ("lower-key.url", f"[InternetShortcut]\nurl={URL}\n"),
        ("broken.url", "[InternetShortcut\nURL=x\n"),
        ("app.desktop", f"[Desktop Entry]\nType=Application\nExec=rm -rf ~\nURL={URL}\n"),
        ("wrong-section.desktop", f"[InternetShortcut]\nURL={URL}\n"),
        ("garbage.webloc", b"\x00\xff not a property list"),
        ("list.webloc", plistlib.dumps([URL])),
        ("number.webloc", plistlib.dumps({"URL": 42})),
        ("no-url.webloc", plistlib.dumps({"Name": "x"})),
        ("binary.url", bytes(range(256)) * 4),
    ],
)
def test_a_shortcut_without_a_web_address_is_refused(
    tmp_path: Path, name: str, content: bytes | str
) -> None:
    path = shortcut(tmp_path, name, content)
    with pytest.raises(FileRejected) as refused:
        read_shortcut(path)
    assert name in refused.value.message


def test_only_the_first_64_kib_are_read(tmp_path: Path) -> None:
    padding = "; " + "x" * MAX_SHORTCUT_BYTES + "\n"
    late = shortcut(tmp_path, "late.url", f"[InternetShortcut]\n{padding}URL={URL}\n")
    with pytest.raises(FileRejected, match="without a web address"):
        read_shortcut(late)
    early = shortcut(tmp_path, "early.url", f"[InternetShortcut]\nURL={URL}\n{padding * 4}")
    assert read_shortcut(early) == URL


def test_a_shortcut_that_cannot_be_read_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "folder.url"
    folder.mkdir()
    with pytest.raises(FileRejected, match=r"folder\.url could not be read"):
        read_shortcut(folder)
    with pytest.raises(FileRejected, match=r"gone\.url could not be read"):
        read_shortcut(tmp_path / "gone.url")


def test_only_the_three_shortcut_suffixes_are_shortcuts() -> None:
    assert all(is_shortcut(Path(n)) for n in ("a.url", "b.WebLoc", "c.desktop"))
    assert not any(is_shortcut(Path(n)) for n in ("a.pdf", "url", "a.url.pdf", "a.lnk"))


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=2000), suffix=st.sampled_from([".url", ".webloc", ".desktop"]))
def test_any_bytes_give_a_web_address_or_a_refusal(
    tmp_path: Path, content: bytes, suffix: str
) -> None:
    path = shortcut(tmp_path, f"any{suffix}", content)
    try:
        url = read_shortcut(path)
    except FileRejected:
        return
    assert url.split(":", 1)[0].lower() in ("http", "https")
    assert not any(c.isspace() for c in url)
