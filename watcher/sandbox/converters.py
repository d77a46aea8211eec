"""Real, deterministic conversions of what the sandbox accepts, and the check of an upload.

Kept apart from the service rules because this is the only part that needs the office
libraries (python-docx, openpyxl, python-pptx, imported when first used) and the only part that
looks inside files: tests (and the chaos benchmark) call `convert` to know the exact bytes a
correct client must file, without starting a sandbox. Nothing here knows of HTTP or charges:
an upload the service would refuse raises `Unsupported`, which the service turns into its
retcode 400 reply.
"""

from __future__ import annotations

import io
import re
import zipfile

PROTECTED_MSG = "The PDF is password or permission protected; unlock it before uploading."
_FIXED_DATE = b"2000-01-01T00:00:00Z"
_CORE_DATES = re.compile(
    rb"(<(dcterms:created|dcterms:modified|cp:lastPrinted)\b[^>]*>)[^<]*(</\2>)"
)
_XML_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class Unsupported(ValueError):
    """An upload the service refuses before charging; the message is shown to the user."""


def _inspect(data: bytes) -> tuple[str, int]:
    """("pdf" or "image", page count) of an upload, or Unsupported as the service refuses it."""
    if not data:
        raise Unsupported("The uploaded file is empty (sandbox).")
    if b"%PDF" in data[:1024]:
        from pypdf import PdfReader

        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                raise Unsupported(PROTECTED_MSG)
            pages = len(reader.pages)
        except Unsupported:
            raise
        except Exception as exc:
            raise Unsupported(f"The PDF could not be read (sandbox): {exc}") from exc
        if pages == 0:
            raise Unsupported("The PDF could not be read (sandbox): it has no pages.")
        return "pdf", pages
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception as exc:
        raise Unsupported("Unsupported file type (sandbox): send a PDF or an image.") from exc
    return "image", 1


def convert(data: bytes, kind: str, outformat: str) -> bytes:
    """The real, deterministic conversion of a validated upload: same input, same bytes."""
    if outformat == "pdf":
        return data
    if kind == "pdf":
        from pypdf import PdfReader

        texts = [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]
    else:
        texts = [""]  # the sandbox does no real OCR of images
    if outformat == "txt":
        return "\n\f\n".join(texts).encode("utf-8")
    lines = [_XML_UNSAFE.sub("", text).splitlines() for text in texts]
    writers = {"docx": _write_docx, "xlsx": _write_xlsx, "pptx": _write_pptx}
    out = io.BytesIO()
    writers[outformat](lines, out)
    return _normalize_zip(out.getvalue())


def _write_docx(pages: list[list[str]], out: io.BytesIO) -> None:
    from docx import Document

    document = Document()
    for number, lines in enumerate(pages):
        if number:
            document.add_page_break()  # type: ignore[no-untyped-call]
        for line in lines:
            document.add_paragraph(line)
    document.save(out)


def _write_xlsx(pages: list[list[str]], out: io.BytesIO) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    for default in list(workbook.worksheets):  # the empty sheet every new workbook starts with
        workbook.remove(default)
    for number, lines in enumerate(pages, start=1):
        sheet = workbook.create_sheet(f"Page {number}")
        for row, line in enumerate(lines, start=1):
            sheet.cell(row=row, column=1, value=line).data_type = "s"  # "=x" stays text
    workbook.save(out)


def _write_pptx(pages: list[list[str]], out: io.BytesIO) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation()
    for lines in pages:
        slide = presentation.slides.add_slide(presentation.slide_layouts[6])  # blank
        box = slide.shapes.add_textbox(Inches(0.5), Inches(0.5), Inches(9), Inches(6.5))
        box.text_frame.word_wrap = True
        box.text_frame.text = "\n".join(lines)
    presentation.save(out)


def _normalize_zip(blob: bytes) -> bytes:
    """Rewrite an Office zip with fixed timestamps, so equal inputs give byte-identical files."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            payload = source.read(info)
            if info.filename == "docProps/core.xml":
                payload = _CORE_DATES.sub(rb"\g<1>" + _FIXED_DATE + rb"\g<3>", payload)
            entry = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            target.writestr(entry, payload, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()
