"""Tiny writer of real PDFs with a text layer, for tests, benchmarks and the first-run demo.

make_pdf needs nothing beyond the standard library, so a demo can create a sample file before
anything else works; pypdf reads the text back, which is what lets tests check a conversion
end to end. The protected variants use pypdf, because hand-writing PDF encryption is not worth it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

_HEADER = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"  # the binary comment tells tools the file is binary
_FONT_SIZE = 12
_LEADING = 14


def make_pdf(pages: Sequence[str]) -> bytes:
    """A valid PDF with one Letter page per string, each string as Helvetica text.

    Lines of a string become lines on the page. Characters Helvetica with WinAnsiEncoding
    cannot show the same as Latin-1 (anything outside Latin-1, and the C1 controls) become '?'.
    An empty sequence gives a structurally valid PDF with no pages.
    """
    if isinstance(pages, (str, bytes)):
        raise TypeError("pages must be a sequence of strings, one per page, not a single string")
    count = len(pages)
    page_ids = [4 + 2 * index for index in range(count)]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % page_id for page_id in page_ids), count),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for page_id, text in zip(page_ids, pages, strict=True):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]"
            b" /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        stream = _content_stream(text)
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    return _assemble(objects)


def write_pdf(path: str | PathLike[str], pages: Sequence[str]) -> Path:
    """Write make_pdf(pages) to path (creating missing folders) and return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(make_pdf(pages))
    return target


def make_encrypted_pdf(pages: Sequence[str], user_password: str = "secret") -> bytes:
    """A PDF that cannot be opened without user_password (the service refuses these)."""
    return _encrypt(make_pdf(pages), user_password, user_password + "-owner", locked=False)


def make_permission_locked_pdf(pages: Sequence[str]) -> bytes:
    """A PDF anyone can open (empty user password) but whose owner forbids copying, printing
    and editing: still encrypted, so the service refuses it as well."""
    return _encrypt(make_pdf(pages), "", "owner-secret", locked=True)


def _content_stream(text: str) -> bytes:
    """Draw each line of text from the top left, one leading apart (T* moves to the next line)."""
    commands = [b"BT", b"/F1 %d Tf" % _FONT_SIZE, b"%d TL" % _LEADING, b"72 720 Td"]
    for number, line in enumerate(text.splitlines()):
        if number:
            commands.append(b"T*")
        commands.append(b"(%s) Tj" % _pdf_string(line))
    commands.append(b"ET")
    return b"\n".join(commands)


def _pdf_string(text: str) -> bytes:
    """Body of a PDF literal string: ( ) and backslash escaped, non-ASCII as octal escapes."""
    out = []
    for char in text:
        code = ord(char)
        if char in "()\\":
            out.append("\\" + char)
        elif 32 <= code < 127:
            out.append(char)
        elif code < 32 or 0xA0 <= code <= 0xFF:
            out.append(f"\\{code:03o}")
        else:
            out.append("?")
    return "".join(out).encode("ascii")


def _assemble(objects: list[bytes]) -> bytes:
    """Number the objects from 1, then add the cross-reference table and trailer."""
    body = bytearray(_HEADER)
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (number, obj)
    xref_at = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    body += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(body)


def _encrypt(data: bytes, user_password: str, owner_password: str, *, locked: bool) -> bytes:
    from pypdf import PdfReader, PdfWriter
    from pypdf.constants import UserAccessPermissions as Perm

    permissions = Perm.all()
    if locked:
        for flag in (
            Perm.PRINT,
            Perm.MODIFY,
            Perm.EXTRACT,
            Perm.ADD_OR_MODIFY,
            Perm.FILL_FORM_FIELDS,
            Perm.EXTRACT_TEXT_AND_GRAPHICS,
            Perm.ASSEMBLE_DOC,
            Perm.PRINT_TO_REPRESENTATION,
        ):
            permissions &= ~flag
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password, permissions_flag=permissions)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
