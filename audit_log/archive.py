r"""Archives of the log: gzip'd CSV written and read back by PostgreSQL's own ``COPY``, with a manifest.

An archive is two files in one directory: ``<stem>.csv.gz``, the output of
``COPY (SELECT <columns> FROM <partition or table> WHERE ... ORDER BY id) TO
STDOUT WITH (FORMAT csv, HEADER)`` compressed with gzip, and
``<stem>.manifest.json``, which says what it holds (table, columns and their
SQL types, the time range, row count, first and last id) and how to check it
(SHA-256 of the compressed file and of the CSV text).

Why CSV through ``COPY`` rather than Parquet: every column keeps PostgreSQL's
own text form (``jsonb`` with its exact numbers, ``timestamptz`` with its
offset, ``uuid``, ``bigint``), which ``COPY ... FROM`` reads back into the
same values, so a loaded entry is byte-identical to the archived one; psql's
``\copy``, pandas, DuckDB and spreadsheets read it; and it needs no new
dependency. Parquet would need pyarrow (tens of megabytes) and maps ``jsonb``
to a string and ``timestamptz`` to an instant without its text form.

Rows are streamed in both directions (``copy_expert`` on psycopg2,
``cursor.copy()`` on psycopg 3): a partition is never held in memory. The
session settings that change how values print are pinned while copying (as
for sealing), so the file's text does not depend on the connection's time zone.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import hashlib
import io
import json
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from . import __version__, sql
from .seal import pinned_settings

#: Name endings of the two files of an archive.
DATA_SUFFIX = ".csv.gz"
MANIFEST_SUFFIX = ".manifest.json"
#: Manifest ``format``: bumped if the file layout ever changes.
FORMAT = "audit-log-archive/1 (csv, gzip)"

_CHUNK = 1 << 16
_FIELD_LIMIT = 1 << 30
#: zlib's own default: within a few percent of level 9's size at a third of its time.
_COMPRESS_LEVEL = 6

#: The table's columns in table order, with their SQL types (parameter: the quoted table name).
_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


class ArchiveError(Exception):
    """An archive cannot be written, verified or loaded; the message says why and what to do."""


@dataclass(frozen=True)
class Manifest:
    """What an archive holds and how to check it (stored as ``<stem>.manifest.json``).

    Attributes:
        table: The log table the rows came from.
        partition: The partition they came from (None: an unpartitioned log).
        columns: ``[name, SQL type]`` of every column, in the file's order.
        range_start: ISO start of the time range (inclusive), None if open.
        range_end: ISO end of the time range (exclusive).
        rows: How many entries the file holds.
        min_id: The lowest entry id (None when empty).
        max_id: The highest entry id (None when empty).
        sha256: SHA-256 of the ``.csv.gz`` file, hex.
        csv_sha256: SHA-256 of the CSV text inside it, hex.
        created_at: When the archive was written (ISO, UTC).
        package_version: This package's version.
        postgresql_version: The server's ``server_version``.
        format: :data:`FORMAT`.
    """

    table: str
    partition: str | None
    columns: list[list[str]]
    range_start: str | None
    range_end: str | None
    rows: int
    min_id: int | None
    max_id: int | None
    sha256: str
    csv_sha256: str
    created_at: str
    package_version: str
    postgresql_version: str
    format: str = FORMAT

    def to_json(self) -> str:
        """Return the manifest as indented JSON text."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read a manifest file.

        Raises:
            ArchiveError: If it is missing, not JSON or lacks a field.
        """
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            raise ArchiveError(f"No manifest {path}: an archive is its .csv.gz file and this manifest.") from None
        except (ValueError, TypeError) as error:
            raise ArchiveError(f"{path} is not an archive manifest: {error}") from error


@dataclass(frozen=True)
class Archive:
    """An archive on disk: its two files and its manifest."""

    data: Path
    manifest_path: Path
    manifest: Manifest


def paths(directory: Path, stem: str) -> tuple[Path, Path]:
    """Return the data file and manifest paths of the archive ``stem`` in ``directory``."""
    return directory / f"{stem}{DATA_SUFFIX}", directory / f"{stem}{MANIFEST_SUFFIX}"


def locate(path: str | Path) -> tuple[Path, Path]:
    """Return the data file and manifest of the archive named by either of its files."""
    path = Path(path)
    name = path.name
    for suffix in (DATA_SUFFIX, MANIFEST_SUFFIX):
        if name.endswith(suffix):
            return paths(path.parent, name[: -len(suffix)])
    raise ArchiveError(f"{path} is not an archive: give its {DATA_SUFFIX} file or its {MANIFEST_SUFFIX} manifest.")


# --- streaming COPY, either driver ---------------------------------------------------------


def copy_out(cursor: CursorWrapper, statement: str, write: Callable[[bytes], Any]) -> None:
    """Run ``COPY ... TO STDOUT`` and hand its output to ``write`` chunk by chunk."""
    raw = cursor.cursor
    # Driver errors become Django's (IntegrityError ...), as for cursor.execute().
    with cursor.db.wrap_database_errors:
        if hasattr(raw, "copy_expert"):  # psycopg2

            class _Sink:
                def write(self, data: bytes) -> None:
                    write(data)

            raw.copy_expert(statement, _Sink(), size=_CHUNK)
        else:  # psycopg 3
            with raw.copy(statement) as copy:
                for data in copy:
                    write(bytes(data))


def copy_in(cursor: CursorWrapper, statement: str, chunks: Iterator[bytes]) -> int:
    """Run ``COPY ... FROM STDIN`` feeding it ``chunks``; return how many rows it loaded."""
    raw = cursor.cursor
    with cursor.db.wrap_database_errors:
        if hasattr(raw, "copy_expert"):  # psycopg2 reads from a file-like object

            class _Source:
                def read(self, size: int = -1) -> bytes:
                    # Any length is accepted: each chunk is sent as one CopyData message.
                    return next(chunks, b"")

            raw.copy_expert(statement, _Source(), size=_CHUNK)
        else:
            with raw.copy(statement) as copy:
                for chunk in chunks:
                    copy.write(chunk)
    return int(raw.rowcount)


class _Buffer:
    """Gather COPY's rows (one call each) into large writes: gzip's per-call cost is most of the time otherwise."""

    def __init__(self, write: Callable[[bytes], Any]) -> None:
        self.target = write
        self.pending = bytearray()

    def write(self, data: bytes) -> None:
        self.pending += data
        if len(self.pending) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.target(bytes(self.pending))
            self.pending.clear()


class _HashingWriter(io.RawIOBase):
    """A binary file that hashes what passes through it on its way to another one."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.target.write(view)
        return len(view)


def table_columns(cursor: CursorWrapper, table: str) -> list[list[str]]:
    """Return ``[name, SQL type]`` of each column of ``table`` (a Django ``db_table``), in table order."""
    cursor.execute(_COLUMNS, [sql.quote_name(table)])
    return [[name, sql_type] for name, sql_type in cursor.fetchall()]


def _select(table: str, source: str, columns: list[list[str]], where: str, pk: str) -> str:
    names = ", ".join(sql.quote_ident(name) for name, _ in columns)
    return f"SELECT {names} FROM {sql.quote_name(source)} WHERE {where} ORDER BY {sql.quote_ident(pk)}"


# --- reading a file back -------------------------------------------------------------------


@dataclass(frozen=True)
class FileSummary:
    """What re-reading an archive's data file found."""

    sha256: str
    csv_sha256: str
    header: list[str]
    rows: int
    min_id: int | None
    max_id: int | None


def summarise(data: Path, pk: str) -> FileSummary:
    """Re-read an archive's data file: hash it, decompress it, parse the CSV, count rows and ids.

    Raises:
        ArchiveError: If the file is not gzip'd CSV with a header naming ``pk``.
    """
    file_digest, csv_digest = hashlib.sha256(), hashlib.sha256()

    def decompressed() -> Iterator[str]:
        with data.open("rb") as raw:
            hashing = _HashingReader(raw, file_digest)
            with gzip.GzipFile(fileobj=hashing, mode="rb") as unzipped:
                plain = io.BufferedReader(_HashingReader(unzipped, csv_digest), _CHUNK)
                yield from io.TextIOWrapper(plain, encoding="utf-8", newline="")

    # A field may hold up to PostgreSQL's 1 GB, far past the csv module's default limit (128 KiB).
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    try:
        reader = csv.reader(decompressed())
        header = next(reader, [])
        if pk not in header:
            raise ArchiveError(f"{data}: its CSV header does not name the key column {pk!r}.")
        position = header.index(pk)
        # The file is in id order (ORDER BY id): the first and last records hold the lowest and highest
        # id. deque() consumes the rest in C, keeping only the last: ~1 s per million rows, not ~10.
        first = next(reader, None)
        rows, low, high = 0, None, None
        if first is not None:
            tail = deque(enumerate(reader, start=2), maxlen=1)
            rows, last = tail[0] if tail else (1, first)
            low, high = int(first[position]), int(last[position])
    except (OSError, EOFError, csv.Error, ValueError, IndexError, UnicodeDecodeError) as error:
        raise ArchiveError(f"{data} is damaged: {error}") from error
    return FileSummary(file_digest.hexdigest(), csv_digest.hexdigest(), header, rows, low, high)


class _HashingReader(io.RawIOBase):
    """A binary file that hashes what is read through it."""

    def __init__(self, source: BinaryIO | io.BufferedIOBase, digest: Any) -> None:
        self.source = source
        self.digest = digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(len(buffer))
        self.digest.update(data)
        buffer[: len(data)] = data
        return len(data)


def verify(path: str | Path, pk: str = "id") -> Archive:
    """Check an archive against its manifest: both hashes, the header, the row count and the ids.

    Args:
        path: Its ``.csv.gz`` file or its manifest.
        pk: The key column.

    Raises:
        ArchiveError: On any difference, saying which.
    """
    data, manifest_path = locate(path)
    manifest = Manifest.read(manifest_path)
    if not data.exists():
        raise ArchiveError(f"No data file {data} beside the manifest {manifest_path}.")
    found = summarise(data, pk)
    columns = [name for name, _ in manifest.columns]
    expected = (manifest.sha256, manifest.csv_sha256, columns, manifest.rows, manifest.min_id, manifest.max_id)
    actual = (found.sha256, found.csv_sha256, found.header, found.rows, found.min_id, found.max_id)
    labels = ("SHA-256 of the file", "SHA-256 of the CSV", "columns", "row count", "first id", "last id")
    wrong = [label for label, want, got in zip(labels, expected, actual, strict=True) if want != got]
    if wrong:
        raise ArchiveError(
            f"{data} does not match its manifest ({', '.join(wrong)} differ): the file was changed or damaged. "
            "Restore it from a copy; it is not loaded."
        )
    return Archive(data, manifest_path, manifest)


# --- writing -------------------------------------------------------------------------------


def write(
    connection: BaseDatabaseWrapper,
    directory: str | Path,
    *,
    table: str,
    pk: str,
    stem: str,
    source: str | None = None,
    range_start: datetime.datetime | None = None,
    range_end: datetime.datetime | None = None,
    at: str = "at",
) -> Archive:
    """Write the entries of ``source`` in ``[range_start, range_end)`` to an archive in ``directory``, verified.

    The file is written to a temporary name in ``directory``, fsync'd, read
    back (decompressed, parsed, counted, hashed) and compared with a count of
    the same rows made in the same transaction, then renamed into place. An
    archive of the same name with the same content is kept as it is (so a
    retention run that failed after archiving can be run again); one with
    other content is never overwritten.

    Args:
        connection: The database connection.
        directory: Where the archive goes (created if missing).
        table: The log table (``db_table``), recorded in the manifest.
        pk: Its key column.
        stem: The archive's name without suffix.
        source: The partition to read (default: ``table``).
        range_start: Oldest moment included (None: no lower bound).
        range_end: Moment before which rows are included (None: no upper bound).
        at: The time column.

    Returns:
        The archive.

    Raises:
        ArchiveError: If the file cannot be written or does not verify, or
            another archive of that name exists.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data, manifest_path = paths(directory, stem)
    source = source or table
    conditions = ["TRUE"]
    if range_start is not None:
        conditions.append(f"{sql.quote_ident(at)} >= {sql.quote_literal(range_start.isoformat())}::timestamptz")
    if range_end is not None:
        conditions.append(f"{sql.quote_ident(at)} < {sql.quote_literal(range_end.isoformat())}::timestamptz")
    where = " AND ".join(conditions)
    handle, temporary_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=directory)
    temporary = Path(temporary_name)
    outer = connection.in_atomic_block
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            if not outer:
                # Our own transaction: one snapshot for the COPY and the count that checks it.
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            columns = table_columns(cursor, table)
            with open(handle, "wb") as raw, pinned_settings(cursor):
                hashing = _HashingWriter(raw)
                with gzip.GzipFile(
                    filename="", mode="wb", fileobj=hashing, compresslevel=_COMPRESS_LEVEL, mtime=0
                ) as out:
                    statement = (
                        f"COPY ({_select(table, source, columns, where, pk)}) TO STDOUT WITH (FORMAT csv, HEADER)"
                    )
                    buffer = _Buffer(out.write)
                    copy_out(cursor, statement, buffer.write)
                    buffer.flush()
                raw.flush()
                os.fsync(raw.fileno())
            key = sql.quote_ident(pk)
            cursor.execute(f"SELECT count(*), min({key}), max({key}) FROM {sql.quote_name(source)} WHERE {where}")
            rows, low, high = cursor.fetchone()
            cursor.execute("SHOW server_version")
            [server_version] = cursor.fetchone()
        found = summarise(temporary, pk)
        if (found.rows, found.min_id, found.max_id) != (rows, low, high):
            raise ArchiveError(
                f"The archive of {source} read back as {found.rows} rows (ids {found.min_id}-{found.max_id}) but the "
                f"database holds {rows} (ids {low}-{high}): nothing was archived or removed."
            )
        if found.header != [name for name, _ in columns]:
            raise ArchiveError(f"The archive of {source} read back with other columns than the table's.")
        manifest = Manifest(
            table=table,
            partition=sql.bare_name(source) if source != table else None,
            columns=columns,
            range_start=range_start.isoformat() if range_start is not None else None,
            range_end=range_end.isoformat() if range_end is not None else None,
            rows=rows,
            min_id=low,
            max_id=high,
            sha256=found.sha256,
            csv_sha256=found.csv_sha256,
            created_at=datetime.datetime.now(datetime.UTC).isoformat(),
            package_version=__version__,
            postgresql_version=server_version,
        )
        _place(temporary, data, manifest.sha256)
    finally:
        temporary.unlink(missing_ok=True)
    if manifest_path.exists():
        existing = Manifest.read(manifest_path)
        if (existing.sha256, existing.rows) != (manifest.sha256, manifest.rows):
            raise ArchiveError(f"{manifest_path} exists and describes another archive: move it away first.")
        return Archive(data, manifest_path, existing)
    _write_new(manifest_path, manifest.to_json().encode())
    return Archive(data, manifest_path, manifest)


def _place(temporary: Path, target: Path, sha256: str) -> None:
    """Move a verified file into place, never over another file (a same-content one is kept)."""
    try:
        os.link(temporary, target)  # fails if the target exists, unlike rename
    except FileExistsError:
        if _sha256(target) != sha256:
            raise ArchiveError(
                f"{target} exists with other content: it is not overwritten. Move it away (or archive to another "
                "directory) and run again."
            ) from None
    else:
        _fsync_directory(target.parent)


def _write_new(target: Path, content: bytes) -> None:
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with open(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, target)
        _fsync_directory(target.parent)
    finally:
        Path(name).unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- loading -------------------------------------------------------------------------------


def load_into(connection: BaseDatabaseWrapper, archive: Archive, target: str) -> int:
    """COPY a verified archive's rows into ``target`` (a table or partition), in the open transaction.

    The columns are named as the manifest lists them, so a log table that
    gained columns since keeps their defaults. Rows keep their ids; the id
    sequence is not touched (ids are only generated by default).

    Returns:
        How many rows were loaded.

    Raises:
        ArchiveError: If the table lacks a column of the archive or has it with another type.
    """
    manifest = archive.manifest
    with connection.cursor() as cursor:
        current = dict(table_columns(cursor, manifest.table))
        wrong = [f"{name} ({sql_type})" for name, sql_type in manifest.columns if current.get(name) not in (sql_type,)]
        if wrong:
            raise ArchiveError(
                f"{manifest.table} has no column of the same type for {', '.join(wrong)}: migrate the log so it has "
                "them, then load again."
            )
        names = ", ".join(sql.quote_ident(name) for name, _ in manifest.columns)
        statement = f"COPY {sql.quote_name(target)} ({names}) FROM STDIN WITH (FORMAT csv, HEADER)"
        with pinned_settings(cursor), gzip.open(archive.data, "rb") as source:
            return copy_in(cursor, statement, iter(lambda: source.read(_CHUNK), b""))
