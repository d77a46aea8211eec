"""The rules file: defaults, normalisation, every refusal located by key and line, init."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher import config as config_module
from watcher.config import (
    APP_NAME,
    BUILTIN_IGNORED_FOLDERS,
    BUILTIN_IGNORES,
    AfterSuccess,
    ApiSettings,
    AutoSwitch,
    Config,
    CreditSettings,
    WatchSettings,
    all_folders,
    config_permission_warning,
    default_config_path,
    default_state_dir,
    load_config,
    parse_config,
    write_starter_config,
)
from watcher.contract import DEFAULT_ENDPOINT, LANGUAGES, OUTFORMATS
from watcher.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"
SECRET = "sk-live-7f3a9c1e5b"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every `~` and platform folder points into tmp, and no real key leaks in."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "PDFOCR_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "conf"
    folder.mkdir()
    return folder / "rules.toml"


def parse(text: str, source: Path, env: dict[str, str] | None = None) -> Config:
    return parse_config(text, source, env or {})


# --- Defaults and round trips ----------------------------------------------------------------


def test_empty_file_gives_documented_defaults(source: Path, home: Path) -> None:
    config = parse("", source)
    assert config.path == source
    assert config.api == ApiSettings(
        key="",
        endpoint=DEFAULT_ENDPOINT,
        concurrency=2,
        request_timeout=110.0,
        poll_interval=5.0,
        max_wait=3600.0,
        download_hosts=(),
        max_result_mb=2048,
        verify_tls=True,
    )
    assert config.watch == WatchSettings(
        settle_seconds=2.0,
        patterns=("*.pdf",),
        ignore=BUILTIN_IGNORES,
        recursive=False,
        polling=AutoSwitch.AUTO,
        rescan_seconds=300.0,
    )
    assert config.files.outbox == home / "PDFOCR" / "outbox"
    assert config.files.archive == home / "PDFOCR" / "archive"
    assert config.files.failed == home / "PDFOCR" / "failed"
    assert config.files.after_success is AfterSuccess.ARCHIVE
    assert config.files.state_dir == default_state_dir().resolve()
    assert config.credits == CreditSettings(low_warning=100, daily_page_limit=0)
    assert config.inboxes == ()


def test_platform_folders_are_named_after_the_app(home: Path) -> None:
    assert default_config_path().name == "config.toml"
    assert APP_NAME in default_config_path().parts
    assert APP_NAME in default_state_dir().parts


def test_builtin_ignores_are_complete() -> None:
    assert set(BUILTIN_IGNORES) >= {".*", "~$*", "*.part", "*.crdownload", "Thumbs.db"}
    assert set(BUILTIN_IGNORED_FOLDERS) >= {"@eaDir", "__MACOSX", "$RECYCLE.BIN", ".stversions"}


FULL = {
    "api": {
        "key": SECRET,
        "endpoint": "http://localhost:8080/ocr",
        "concurrency": 16,
        "request_timeout": 30.5,
        "poll_interval": 1,
        "max_wait": 60,
        "download_hosts": ["Files.Example.com", "cdn-2.example.org"],
    },
    "watch": {
        "settle_seconds": 0,
        "patterns": ["*.pdf", "*.PNG"],
        "ignore": ["*.bak", "*.tmp"],
        "recursive": True,
        "polling": True,
        "rescan_seconds": 0,
    },
    "files": {
        "outbox": "out",
        "archive": "/srv/archive",
        "failed": "~/failed",
        "after_success": "keep",
        "state_dir": "state",
    },
    "credits": {"low_warning": 0, "daily_page_limit": 500},
    "inbox": [
        {"path": "in/word", "outformat": "docx"},
        {
            "path": "in/excel",
            "outformat": "xlsx",
            "lang": "ChineseSimplified",
            "ocr": False,
            "outbox": "sheets",
            "archive": "sheets-archive",
            "failed": "sheets-failed",
        },
    ],
}


def test_full_file_round_trips(source: Path, home: Path) -> None:
    config = parse(tomli_w.dumps(FULL), source)
    here = source.parent
    assert config.api == ApiSettings(
        key=SECRET,
        endpoint="http://localhost:8080/ocr",
        concurrency=16,
        request_timeout=30.5,
        poll_interval=1.0,
        max_wait=60.0,
        download_hosts=("files.example.com", "cdn-2.example.org"),
    )
    assert config.watch == WatchSettings(
        settle_seconds=0.0,
        patterns=("*.pdf", "*.PNG"),
        ignore=(*BUILTIN_IGNORES, "*.bak"),
        recursive=True,
        polling=AutoSwitch.ALWAYS,
        rescan_seconds=0.0,
    )
    assert config.files.outbox == here / "out"
    assert config.files.archive == Path("/srv/archive").resolve()
    assert config.files.failed == home / "failed"
    assert config.files.after_success is AfterSuccess.KEEP
    assert config.files.state_dir == here / "state"
    assert config.credits == CreditSettings(low_warning=0, daily_page_limit=500)
    word, excel = config.inboxes
    assert (word.path, word.outformat, word.lang, word.ocr) == (
        here / "in/word",
        "docx",
        "English",
        True,
    )
    assert (word.outbox, word.archive, word.failed) == (
        config.files.outbox,
        config.files.archive,
        config.files.failed,
    )
    assert (excel.lang, excel.ocr, excel.outbox) == ("ChineseSimplified", False, here / "sheets")
    assert (excel.archive, excel.failed) == (here / "sheets-archive", here / "sheets-failed")
    assert all_folders(config) == {
        here / "out",
        Path("/srv/archive").resolve(),
        home / "failed",
        here / "in/word",
        here / "in/excel",
        here / "sheets",
        here / "sheets-archive",
        here / "sheets-failed",
    }


def test_example_file_loads_and_documents_the_real_defaults(home: Path) -> None:
    config = load_config(EXAMPLE, env={})
    empty = parse_config("", EXAMPLE, env={})
    assert (config.api, config.watch, config.files, config.credits) == (
        empty.api,
        empty.watch,
        empty.files,
        empty.credits,
    )
    assert [rule.outformat for rule in config.inboxes] == ["docx", "xlsx", "pdf"]
    assert config.inboxes[1].outbox == home / "PDFOCR" / "outbox" / "spreadsheets"
    first = parse_config('[[inbox]]\npath = "in"\noutformat = "docx"\n', EXAMPLE, env={})
    documented = config.inboxes[0]
    assert (documented.name, documented.patterns, documented.recursive) == (
        first.inboxes[0].name,
        first.inboxes[0].patterns,
        first.inboxes[0].recursive,
    )
    scans = config.inboxes[2]
    assert (scans.recursive, scans.after_success, scans.settle_seconds) == (True, "delete", 10)
    assert "*.tif" in scans.patterns and scans.name.startswith("{date:%Y-%m-%d}")
    assert str(scans.send_between) == "22:00-06:00" and documented.send_between is None


def test_example_file_mentions_every_language_and_format() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert all(language in text for language in LANGUAGES)
    assert all(f'"{outformat}"' in text for outformat in OUTFORMATS)


@pytest.mark.parametrize(
    ("lang", "outformat", "expected"),
    [
        ("german", "DOCX", ("German", "docx")),
        ("  chinesetraditional ", "Pptx", ("ChineseTraditional", "pptx")),
        ("ENGLISH", "txt", ("English", "txt")),
    ],
)
def test_language_and_format_are_case_insensitive(
    source: Path, lang: str, outformat: str, expected: tuple[str, str]
) -> None:
    text = f'[[inbox]]\npath = "in"\noutformat = "{outformat}"\nlang = "{lang}"\n'
    rule = parse(text, source).inboxes[0]
    assert (rule.lang, rule.outformat) == expected


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"auto"', AutoSwitch.AUTO),
        ('"AUTO"', AutoSwitch.AUTO),
        ("true", AutoSwitch.ALWAYS),
        ('"true"', AutoSwitch.ALWAYS),
        ("false", AutoSwitch.NEVER),
        ('"False"', AutoSwitch.NEVER),
    ],
)
def test_polling_values(source: Path, written: str, expected: AutoSwitch) -> None:
    assert parse(f"[watch]\npolling = {written}\n", source).watch.polling is expected


def test_after_success_is_case_insensitive(source: Path) -> None:
    config = parse('[files]\nafter_success = "Delete"\n', source)
    assert config.files.after_success is AfterSuccess.DELETE


def test_environment_key_overrides_file_key(source: Path) -> None:
    text = '[api]\nkey = "from-file"\n'
    assert parse(text, source).api.key == "from-file"
    assert parse(text, source, {"PDFOCR_API_KEY": "from-env"}).api.key == "from-env"
    assert parse(text, source, {"PDFOCR_API_KEY": "  "}).api.key == "from-file"


def test_load_config_reads_the_process_environment(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source.write_text('[api]\nkey = "from-file"\n', encoding="utf-8")
    monkeypatch.setenv("PDFOCR_API_KEY", "from-env")
    assert load_config(source).api.key == "from-env"


def test_relative_and_home_paths(source: Path, home: Path) -> None:
    text = '[files]\noutbox = "../out"\narchive = "~/arch"\nfailed = "./f/../failed"\n'
    files = parse(text, source).files
    assert files.outbox == source.parent.parent / "out"
    assert files.archive == home / "arch"
    assert files.failed == source.parent / "failed"
    assert all(path.is_absolute() for path in (files.outbox, files.archive, files.failed))


def test_missing_file_suggests_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nowhere.toml")
    assert "nowhere.toml" in str(caught.value)
    assert "pdfocr-watcher init" in str(caught.value)


def test_inbox_for(source: Path) -> None:
    text = '[[inbox]]\npath = "a"\noutformat = "docx"\n[[inbox]]\npath = "b"\noutformat = "txt"\n'
    flat = parse(text, source)
    here = source.parent
    assert flat.inbox_for(here / "a" / "scan.pdf") == flat.inboxes[0]
    assert flat.inbox_for(here / "b" / "scan.pdf") == flat.inboxes[1]
    assert flat.inbox_for(here / "a" / "sub" / "scan.pdf") is None
    assert flat.inbox_for(here / "c" / "scan.pdf") is None
    assert flat.inbox_for(here / "scan.pdf") is None
    deep = parse("[watch]\nrecursive = true\n" + text, source)
    assert deep.inbox_for(here / "a" / "sub" / "deeper" / "scan.pdf") == deep.inboxes[0]


# --- Refusals: file, dotted key and exact line --------------------------------------------------

INBOXES = '[[inbox]]\npath = "a"\noutformat = "docx"\n\n[[inbox]]\npath = "b"\noutformat = "docx"\n'

REFUSALS = [
    # (text, dotted key, line, words the message must contain)
    ('[api]\nkey = ""\n\n[wach]\nsettle_seconds = 1\n', "wach", 4, "did you mean 'watch'"),
    ("# rules\n[api]\nconcurency = 4\n", "api.concurency", 3, "did you mean 'concurrency'"),
    ("title = 1\n[api]\n", "title", 1, "unknown table"),
    ("api = 3\n", "api", 1, "[api]"),
    ('[inbox]\npath = "a"\n', "inbox", 1, "[[inbox]]"),
    ("[api]\nconcurrency = true\n", "api.concurrency", 2, "whole number"),
    ('[watch]\n\n[ "api" ]   # service\nconcurrency = 0\n', "api.concurrency", 4, "1 to 16"),
    ("# top\napi.concurrency = 0\n", "api.concurrency", 2, "1 to 16"),
    ("[watch.extra]\nx = 1\n", "watch.extra", 1, "unknown setting"),
    ("[api]\n\n  concurrency   =   0   # none\n", "api.concurrency", 3, "from 1 to 16"),
    ("[api]\nconcurrency = 17\n", "api.concurrency", 2, "from 1 to 16"),
    ("[api]\nconcurrency = 2.5\n", "api.concurrency", 2, "whole number"),
    ('[api]\n# concurrency = 2\n"concurrency" = -1\n', "api.concurrency", 3, "1 to 16"),
    ("[api]\nrequest_timeout = 0\n", "api.request_timeout", 2, "more than 0"),
    ("[api]\npoll_interval = -1\n", "api.poll_interval", 2, "more than 0"),
    ('[api]\nmax_wait = "3600"\n', "api.max_wait", 2, "got text"),
    ("[api]\nmax_wait = inf\n", "api.max_wait", 2, "more than 0"),
    ("[api]\nkey = 12345\n", "api.key", 2, "text in quotes"),
    ('[api]\nendpoint = "ftp://pdfocr.org/x"\n', "api.endpoint", 2, "http(s)"),
    ('[api]\nendpoint = "pdfocr.org"\n', "api.endpoint", 2, "http(s)"),
    ('[api]\ndownload_hosts = ["https://x.org/a"]\n', "api.download_hosts", 2, "host names"),
    ('[api]\ndownload_hosts = "x.org"\n', "api.download_hosts", 2, "list"),
    ("[watch]\nsettle_seconds = -0.5\n", "watch.settle_seconds", 2, "0 or more"),
    ("[watch]\nrescan_seconds = -1\n", "watch.rescan_seconds", 2, "0 or more"),
    ("[watch]\npatterns = []\n", "watch.patterns", 2, "at least one"),
    ('[watch]\npatterns = "*.pdf"\n', "watch.patterns", 2, "list"),
    ("[watch]\nignore = [1]\n", "watch.ignore", 2, "list"),
    ('[watch]\nrecursive = "yes"\n', "watch.recursive", 2, "true or false"),
    ("[watch]\nrecursive = 1\n", "watch.recursive", 2, "true or false"),
    ('[watch]\npolling = "sometimes"\n', "watch.polling", 2, "'auto'"),
    ("[watch]\npolling = 1\n", "watch.polling", 2, "'auto'"),
    ('[files]\nafter_success = "move"\n', "files.after_success", 2, "'archive', 'delete', 'keep'"),
    ('[files]\noutbox = ""\n', "files.outbox", 2, "folder"),
    ("[credits]\nlow_warning = -1\n", "credits.low_warning", 2, "0 or more"),
    ("[credits]\ndaily_page_limit = 1.5\n", "credits.daily_page_limit", 2, "whole number"),
    ("[credits]  # money\nlow_warning = false\n", "credits.low_warning", 2, "got true/false"),
    (INBOXES + 'lang = "Klingon"\n', "inbox[2].lang", 8, "ChineseTraditional"),
    (INBOXES + 'lang = "Germn"\n', "inbox[2].lang", 8, "did you mean 'German'"),
    (INBOXES.replace('"docx"\n\n', '"doc"\n\n'), "inbox[1].outformat", 3, "docx, xlsx, pptx"),
    (INBOXES + "outfromat = 1\n", "inbox[2].outfromat", 8, "did you mean 'outformat'"),
    (INBOXES.replace('path = "b"\n', ""), "inbox[2].path", 5, "missing"),
    (INBOXES.replace('outformat = "docx"\n\n', ""), "inbox[1].outformat", 1, "missing"),
    (INBOXES.replace('"b"', '"./a/"'), "inbox[2].path", 6, "same folder as inbox[1]"),
    (INBOXES.replace('"b"', '"a/sub"'), "inbox[2].path", 6, "nested"),
    (INBOXES.replace('"a"', '"b/sub"'), "inbox[2].path", 6, "nested"),
    (INBOXES + "ocr = 0\n", "inbox[2].ocr", 8, "true or false"),
    ('[files]\noutbox = "a/out"\n' + INBOXES, "files.outbox", 2, "inside inbox[1]"),
    ('[files]\nfailed = "b"\n' + INBOXES, "files.failed", 2, "is the folder of inbox[2]"),
    ('[files]\nstate_dir = "a/.state"\n' + INBOXES, "files.state_dir", 2, "loop"),
    (INBOXES + 'archive = "a"\n', "inbox[2].archive", 8, "is the folder of inbox[1]"),
    ('[[inbox]]\npath = "~/PDFOCR"\noutformat = "txt"\n', "inbox[1].path", 2, "default outbox"),
    ('[[inbox]]\npath = "~"\noutformat = "txt"\n', "inbox[1].path", 2, "loop"),
]


@pytest.mark.parametrize(("text", "key", "line", "words"), REFUSALS)
def test_refusals_name_file_key_and_line(
    source: Path, text: str, key: str, line: int, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, source)
    error = caught.value
    assert (error.key, error.line) == (key, line)
    assert f"{source}:{line}: {key}: " in str(error)
    assert words in error.message


@pytest.mark.parametrize(("text", "key", "line", "words"), REFUSALS)
def test_refusals_never_show_the_key(
    source: Path, text: str, key: str, line: int, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, source, {"PDFOCR_API_KEY": SECRET})
    assert SECRET not in str(caught.value)


def test_refusal_of_a_bad_value_next_to_the_key_does_not_show_it(source: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(f'[api]\nkey = "{SECRET}"\nkee = "{SECRET}"\n', source)
    assert caught.value.key == "api.kee"
    assert SECRET not in str(caught.value)


def test_key_is_not_in_repr(source: Path) -> None:
    config = parse(tomli_w.dumps(FULL), source)
    assert config.api.key == SECRET
    assert SECRET not in repr(config)
    assert SECRET not in str(config.api)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("[api]\nconcurrency = 2\n[watch\n", 3),
        ("[api]\nkey = unquoted\n", 2),
        ("[api]\n[api]\n", 2),
        ("[api]\nendpoint = ", 2),
    ],
)
def test_toml_syntax_error_gives_the_line(source: Path, text: str, line: int) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, source)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{source}:{line}: not valid TOML")


def test_load_config_refuses_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(tmp_path)


def test_load_config_refuses_a_non_utf8_file(source: Path) -> None:
    source.write_bytes(b'[api]\nkey = "\xff"\n')
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(source)


# --- init ---------------------------------------------------------------------------------------


def test_starter_config_is_private_creates_folders_and_loads(tmp_path: Path) -> None:
    target = tmp_path / "cfg" / "new" / "config.toml"
    home = tmp_path / "user"
    config = write_starter_config(target, api_key=SECRET, home=home)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 or os.name != "posix"
    text = target.read_text(encoding="utf-8")
    assert text.startswith("#")
    assert "config.example.toml" in text
    assert config == load_config(target)
    assert config.api.key == SECRET
    root = home / "PDFOCR"
    assert [(r.path, r.outformat) for r in config.inboxes] == [
        (root / "inbox" / "to-word", "docx"),
        (root / "inbox" / "to-excel", "xlsx"),
        (root / "inbox" / "to-text", "txt"),
    ]
    assert (config.files.outbox, config.files.archive, config.files.failed) == (
        root / "outbox",
        root / "archive",
        root / "failed",
    )
    assert all(folder.is_dir() for folder in all_folders(config))
    assert len(all_folders(config)) == 6


def test_starter_config_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "config.toml"
    target.write_text("# mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists"):
        write_starter_config(target, home=tmp_path)
    assert target.read_text(encoding="utf-8") == "# mine\n"


def test_starter_config_defaults_to_the_home_folder(tmp_path: Path, home: Path) -> None:
    config = write_starter_config(tmp_path / "config.toml")
    assert config.inboxes[0].path == home / "PDFOCR" / "inbox" / "to-word"
    assert config.api.key == ""


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_permission_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "config.toml"
    config = write_starter_config(target, api_key=SECRET, home=tmp_path)
    assert config_permission_warning(config) is None
    target.chmod(0o644)
    warning = config_permission_warning(config)
    assert warning is not None
    assert f"chmod 600 {target}" in warning
    assert "\n" not in warning
    assert SECRET not in warning
    monkeypatch.setenv("PDFOCR_API_KEY", SECRET)
    keyless = tmp_path / "keyless" / "config.toml"
    keyless_config = write_starter_config(keyless, home=tmp_path / "other")
    keyless.chmod(0o644)
    assert keyless_config.api.key == SECRET  # from the environment, not the file
    assert config_permission_warning(keyless_config) is None


def test_no_permission_warning_without_a_file() -> None:
    assert config_permission_warning(parse_config("", None, {})) is None


# --- Property: anything TOML can say is either a Config or a ConfigError -----------------------

TABLE_KEYS = {
    "api": [
        *("key", "endpoint", "concurrency", "request_timeout", "poll_interval", "max_wait"),
        "download_hosts",
    ],
    "watch": [
        *("settle_seconds", "patterns", "ignore", "recursive", "polling", "rescan_seconds"),
        "send_between",
    ],
    "files": ["outbox", "archive", "failed", "after_success", "state_dir"],
    "credits": ["low_warning", "daily_page_limit"],
    "inbox": [
        *("path", "outformat", "lang", "ocr", "outbox", "archive", "failed", "after_success"),
        *("name", "patterns", "settle_seconds", "recursive", "send_between"),
        *("on_success", "on_failure", "hook_seconds"),
    ],
}
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-2, max_value=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    any_text,
    st.sampled_from(["docx", "GERMAN", "~/x", "a", "a/b", "b", "..", "auto", "keep", "true"]),
    st.sampled_from(["https://h.org/x", "files.example.com", "*.pdf", ""]),
    st.sampled_from(["{stem}.{ext}", "{stem}/{ext}", "{date:%Y/%m}.{ext}", "{x}", "{"]),
    st.sampled_from(["22:00-06:00", "25:00-01:00", "6-7", "08:00-08:00"]),
    st.dates(),
)
values = scalars | st.lists(scalars, max_size=3)


def table(name: str) -> st.SearchStrategy[dict]:
    keys = st.sampled_from([*TABLE_KEYS[name], "Path", "junk", ""])
    return st.dictionaries(keys, values, max_size=7)


folders = st.sampled_from(["a", "b", "a/b", "~/x", "~/PDFOCR", "..", ""])
plausible_inbox = st.fixed_dictionaries(
    {"path": folders, "outformat": st.sampled_from(["docx", "TXT", "doc"])},
    optional={"lang": st.sampled_from(["german", "Klingon"]), "outbox": folders, "ocr": values},
)
# Mostly the real tables and keys, so that many documents get deep into validation...
likely_documents = st.fixed_dictionaries(
    {},
    optional={
        **{name: table(name) for name in ("api", "watch", "files", "credits")},
        "inbox": st.lists(plausible_inbox | table("inbox"), max_size=3),
    },
)
# ...and anything at all under random names.
random_tables = st.dictionaries(any_text, values | st.dictionaries(any_text, values, max_size=2))
random_documents = st.dictionaries(
    any_text | st.sampled_from(list(TABLE_KEYS)),
    random_tables | st.lists(random_tables, max_size=2) | values,
    max_size=4,
)
# ...and sets of inboxes alone, to exercise the duplicate/nesting/loop checks.
inbox_documents = st.fixed_dictionaries({"inbox": st.lists(plausible_inbox, max_size=3)})
documents = likely_documents | random_documents | inbox_documents
PROPERTY_SOURCE = Path(tempfile.gettempdir()) / "pdfocr-property" / "config.toml"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=documents)
def test_any_document_is_a_config_or_a_config_error(document: dict) -> None:
    if isinstance(document.get("api"), dict):
        document["api"]["key"] = SECRET
    text = tomli_w.dumps(document)
    try:
        config = parse_config(text, PROPERTY_SOURCE, env={})
    except ConfigError as error:
        assert SECRET not in str(error)
        assert error.line is None or 1 <= error.line <= len(text.splitlines())
    else:
        assert isinstance(config, Config)
        assert SECRET not in repr(config)


# --- Folders compared by identity: no other path to an inbox slips through -----------------------


@contextmanager
def bind_mount(source: Path, target: Path) -> Iterator[Path]:
    """`target` shows the folder `source` under another path for the block's length; the test
    is skipped where mounting is not allowed. Always unmounted: tmp_path is deleted later, and
    deleting through a mount would empty its source."""
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        pytest.skip("bind mounts need Linux and mount(8)")
    target.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "--bind", str(source), str(target)], capture_output=True, text=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting is not permitted here: {mounted.stderr.strip() or 'no reason'}")
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], check=False).returncode != 0:
            subprocess.run(["umount", "--lazy", str(target)], check=True)


@pytest.fixture
def inbox_dir(source: Path) -> Path:
    folder = source.parent / "in"
    folder.mkdir()
    return folder


@pytest.fixture
def second_path(inbox_dir: Path) -> Iterator[Path]:
    """The inbox folder again, bind-mounted at conf/mnt: as a second mount of one share."""
    with bind_mount(inbox_dir, inbox_dir.parent / "mnt") as mounted:
        yield mounted


def refusal(source: Path, text: str) -> ConfigError:
    """The ConfigError `load_config` (as used at start and on reload) raises for this file."""
    source.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(source, env={})
    return caught.value


def assert_located(error: ConfigError, source: Path, key: str, line: int) -> None:
    assert (error.key, error.line) == (key, line)
    assert str(error).startswith(f"{source}:{line}: {key}: ")


PDF_INBOX = '[[inbox]]\npath = "in"\noutformat = "pdf"\n'


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_an_outbox_that_is_a_symlink_to_an_inbox_is_refused(source: Path, inbox_dir: Path) -> None:
    (source.parent / "out").symlink_to(inbox_dir, target_is_directory=True)
    error = refusal(source, '[files]\noutbox = "out"\n' + PDF_INBOX)
    assert_located(error, source, "files.outbox", 2)
    assert f"{inbox_dir} is the folder of inbox[1]" in error.message
    assert "converted again and paid again" in error.message
    assert "set outbox to a folder outside every inbox" in error.message


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_an_outbox_inside_an_inbox_through_a_symlinked_parent_is_refused(
    source: Path, inbox_dir: Path
) -> None:
    (source.parent / "shared").symlink_to(inbox_dir, target_is_directory=True)
    error = refusal(source, PDF_INBOX + 'outbox = "shared/results"\n')
    assert_located(error, source, "inbox[1].outbox", 4)
    assert f"{inbox_dir / 'results'} is inside inbox[1]" in error.message
    assert "paid again" in error.message


def test_an_outbox_that_is_an_inbox_mounted_a_second_time_is_refused(
    source: Path, inbox_dir: Path, second_path: Path
) -> None:
    error = refusal(source, f"# mine\n[files]\noutbox = '{second_path}'\n" + PDF_INBOX)
    assert_located(error, source, "files.outbox", 3)
    assert error.message.startswith(
        f"{second_path} is the same folder as inbox[1] ({inbox_dir}) under another path ("
    )
    assert "second mount" in error.message
    assert "its results would be taken as new files, converted again and paid again" in str(error)
    assert "set outbox to a folder outside every inbox" in error.message


def test_a_folder_not_created_yet_below_a_second_mount_of_an_inbox_is_refused(
    source: Path, inbox_dir: Path, second_path: Path
) -> None:
    """It would be created inside the inbox: its nearest existing folder is the inbox."""
    error = refusal(source, PDF_INBOX + 'failed = "mnt/not/yet"\n')
    assert not (inbox_dir / "not").exists()
    assert_located(error, source, "inbox[1].failed", 4)
    assert f"is inside inbox[1] ({inbox_dir}), reached under another path" in error.message
    assert not (inbox_dir / "not").exists()  # checking created nothing


def test_folders_not_created_yet_on_both_sides_of_two_mounts_are_compared(
    source: Path, inbox_dir: Path, second_path: Path
) -> None:
    """in/scans and mnt/scans do not exist yet, but would be one folder once created."""
    text = "[[inbox]]\npath = 'in/scans'\noutformat = 'pdf'\noutbox = 'mnt/scans'\n"
    error = refusal(source, text)
    assert_located(error, source, "inbox[1].outbox", 4)
    assert f"is the same folder as inbox[1] ({inbox_dir / 'scans'}) under" in error.message


def test_the_state_folder_inside_an_inbox_by_identity_is_refused(
    source: Path, inbox_dir: Path, second_path: Path
) -> None:
    error = refusal(source, PDF_INBOX + "[files]\nstate_dir = 'mnt/.state'\n")
    assert_located(error, source, "files.state_dir", 5)
    assert f"is inside inbox[1] ({inbox_dir}), reached under another path" in error.message
    assert "journal and logs" in error.message


def test_an_archive_that_is_an_inbox_by_identity_is_refused(
    source: Path, inbox_dir: Path, second_path: Path
) -> None:
    error = refusal(source, PDF_INBOX + "archive = 'mnt'\n")
    assert_located(error, source, "inbox[1].archive", 4)
    assert "is the same folder as inbox[1]" in error.message
    assert "originals archived there would be converted again" in error.message


def test_an_inbox_holding_a_default_folder_by_identity_is_refused(source: Path, home: Path) -> None:
    (home / "PDFOCR" / "outbox").mkdir(parents=True)
    with bind_mount(home / "PDFOCR", source.parent / "pdfocr") as mounted:
        error = refusal(source, f"[[inbox]]\npath = '{mounted}'\noutformat = 'pdf'\n")
    assert_located(error, source, "inbox[1].path", 2)
    assert f"contains the default outbox folder {home / 'PDFOCR' / 'outbox'}, under" in str(error)
    assert "set outbox to a folder outside every inbox in [files]" in error.message


@pytest.mark.parametrize(
    ("second", "words"),
    [
        ("mnt", "same folder as inbox[1] ({inbox}) under another path"),
        ("mnt/sub", "nested with inbox[1] ({inbox}) under another path"),
    ],
)
def test_two_inboxes_that_are_one_folder_by_identity_are_refused(
    source: Path, inbox_dir: Path, second_path: Path, second: str, words: str
) -> None:
    (inbox_dir / "sub").mkdir()
    error = refusal(source, PDF_INBOX + f"[[inbox]]\npath = '{second}'\noutformat = 'txt'\n")
    assert_located(error, source, "inbox[2].path", 5)
    assert words.format(inbox=inbox_dir) in error.message


def test_proper_rules_beside_a_second_mount_still_load(
    source: Path, inbox_dir: Path, second_path: Path
) -> None:
    """The outbox beside the inbox, and an inbox inside the outbox's tree, are fine: only
    folders in (or being) an inbox make loops."""
    (source.parent / "out").mkdir()
    text = (
        "[files]\noutbox = 'out'\nstate_dir = 'state'\n"
        f"{PDF_INBOX}[[inbox]]\npath = 'out/in'\noutformat = 'docx'\noutbox = 'mnt/..'\n"
    )
    source.write_text(text, encoding="utf-8")
    config = load_config(source, env={})
    assert [rule.path for rule in config.inboxes] == [inbox_dir, source.parent / "out" / "in"]
    assert config.inboxes[1].outbox == source.parent


def test_names_not_created_yet_are_compared_as_the_file_system_compares_them(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where case is ignored, "In" and "in" would become one folder once created."""
    text = "[[inbox]]\npath = 'new/In'\noutformat = 'pdf'\noutbox = 'new/in'\n"
    assert parse(text, source).inboxes[0].outbox == source.parent / "new" / "in"
    monkeypatch.setattr(config_module, "_folds_case", lambda folder: True)
    with pytest.raises(ConfigError) as caught:
        parse(text, source)
    assert_located(caught.value, source, "inbox[1].outbox", 4)
    assert "is the same folder as inbox[1]" in caught.value.message


def test_case_folding_is_found_out_from_the_folder_itself(tmp_path: Path) -> None:
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "Entry").touch()
    assert config_module._folds_case(folder) == (folder / "eNTRY").exists()
