"""`pdfocr-watcher convert` end to end: the CLI, the runner and the client against a sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher import samplepdf
from watcher.cli import EXIT_ACCOUNT, EXIT_FILE, EXIT_OK, EXIT_SERVICE, main
from watcher.sandbox import Sandbox

SECRET = "sk-live-TEST-0123456789"


def write_config(tmp_path: Path, box: Sandbox, **api: object) -> Path:
    settings = {"key": box.key, "endpoint": box.url, "poll_interval": 0.1, **api}
    lines = ["[api]"] + [
        f"{name} = {value!r}".replace("'", '"') for name, value in settings.items()
    ]
    lines += ["[files]", f'state_dir = "{tmp_path / "state"}"']
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def convert(config: Path, *args: str) -> int:
    return main(["convert", "--config", str(config), *args])


def test_unicode_names_round_trip_to_the_users_name(
    sandbox: Sandbox, tmp_path: Path, capsys
) -> None:
    name = "Reçu n°7 — été (copie) ✓.pdf"
    source = samplepdf.write_pdf(tmp_path / "in" / name, ["Total 12 EUR"])
    out = tmp_path / "out"
    code = convert(
        write_config(tmp_path, sandbox), str(source), "--to", "txt", "--outdir", str(out)
    )
    assert code == EXIT_OK
    result = out / "Reçu n°7 — été (copie) ✓.txt"
    assert result.read_text() == "Total 12 EUR"
    assert source.exists()  # convert leaves the user's file where it is
    (charge,) = sandbox.ledger()
    assert charge.filename.startswith("Recu-n7-ete-copie-")
    printed = capsys.readouterr().out
    assert "uploading" in printed and "999 pages left" in printed


def test_a_taken_output_name_is_never_overwritten(sandbox: Sandbox, tmp_path: Path) -> None:
    source = samplepdf.write_pdf(tmp_path / "a.pdf", ["new"])
    (tmp_path / "a.txt").write_text("mine")
    assert convert(write_config(tmp_path, sandbox), str(source), "--to", "txt") == EXIT_OK
    assert (tmp_path / "a.txt").read_text() == "mine"
    assert (tmp_path / "a (2).txt").read_text() == "new"


def test_a_slow_conversion_is_cut_polled_and_charged_once(
    make_sandbox, tmp_path: Path, capsys
) -> None:
    box = make_sandbox(seconds_per_page=0.5, cut_after=0.2)
    source = samplepdf.write_pdf(tmp_path / "slow.pdf", ["one", "two"])
    assert convert(write_config(tmp_path, box), str(source), "--to", "docx") == EXIT_OK
    assert (tmp_path / "slow.docx").stat().st_size > 0
    assert [c.pages for c in box.ledger()] == [2]
    assert "waiting for the service" in capsys.readouterr().out


@pytest.mark.parametrize(
    "maker", [samplepdf.make_encrypted_pdf, samplepdf.make_permission_locked_pdf]
)
def test_locked_pdfs_are_refused_before_upload(
    sandbox: Sandbox, tmp_path: Path, capsys, maker
) -> None:
    source = tmp_path / "locked.pdf"
    source.write_bytes(maker(["secret"]))
    assert convert(write_config(tmp_path, sandbox), str(source), "--to", "txt") == EXIT_FILE
    assert sandbox.ledger() == []
    assert "protected" in capsys.readouterr().err


def test_not_a_pdf_and_empty_are_refused_before_upload(
    sandbox: Sandbox, tmp_path: Path, capsys
) -> None:
    (tmp_path / "page.pdf").write_text("<html><body>Not found</body></html>")
    (tmp_path / "empty.pdf").write_bytes(b"")
    config = write_config(tmp_path, sandbox)
    code = convert(config, str(tmp_path / "page.pdf"), str(tmp_path / "empty.pdf"), "--to", "txt")
    assert code == EXIT_FILE
    errors = capsys.readouterr().err
    assert "neither a PDF nor an image" in errors and "empty" in errors
    assert sandbox.ledger() == []


def test_bad_key_stops_with_the_account_exit_code(sandbox: Sandbox, tmp_path: Path, capsys) -> None:
    source = samplepdf.write_pdf(tmp_path / "a.pdf", ["x"])
    config = write_config(tmp_path, sandbox, key="not-the-key")
    assert convert(config, str(source), "--to", "txt") == EXIT_ACCOUNT
    assert "API key does not exist" in capsys.readouterr().err


def test_a_truncated_download_is_fetched_again(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.inject("truncate_download")
    source = samplepdf.write_pdf(tmp_path / "t.pdf", ["whole"])
    assert convert(write_config(tmp_path, sandbox), str(source), "--to", "docx") == EXIT_OK
    assert len(sandbox.ledger()) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_foreign_link_fails_the_file_and_writes_nothing(
    sandbox: Sandbox, tmp_path: Path, capsys
) -> None:
    sandbox.inject("foreign_link")
    source = samplepdf.write_pdf(tmp_path / "f.pdf", ["x"])
    assert convert(write_config(tmp_path, sandbox), str(source), "--to", "txt") == EXIT_SERVICE
    assert "unexpected place" in capsys.readouterr().err
    assert not (tmp_path / "f.txt").exists()


def test_the_key_never_reaches_the_output_even_at_debug(
    make_sandbox, tmp_path: Path, capsys
) -> None:
    box = make_sandbox(key=SECRET, seconds_per_page=0.3, cut_after=0.1)
    box.inject("http429")  # retried, then cut (524), then polled: every kind of request
    source = samplepdf.write_pdf(tmp_path / "k.pdf", ["x"])
    config = write_config(tmp_path, box)
    assert convert(config, "-v", str(source), "--to", "txt") == EXIT_OK
    captured = capsys.readouterr()
    everything = captured.out + captured.err
    assert "apikey=[redacted]" in everything  # the debug line that would have held it
    assert SECRET not in everything
