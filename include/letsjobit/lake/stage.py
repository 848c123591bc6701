"""Staging: a run's raw pages -> typed parquet tables in `_staging/<run>/`, with bounded memory.

`stage_run(run_id, layout)` reads every raw part of the run (`layout.raw_run(run_id)`), flattens the
pages in batches (`flatten.py`, in a pool of worker processes), keeps the latest fetched copy of each
visit, and writes typed parquet to `_staging/<run>/<table>/visit_date=YYYY-MM-DD/` for the three data
tables and `data_issues` (the flattener's issues). Any run can be replayed: staging reads only the raw
pages. The validation gate then audits the staged tables, and `publish.py` publishes its output.

Memory is bounded by a batch of pages, not by the size of the run:

1. each worker flattens one batch of pages at a time and writes its rows, sorted by `visit_date`, to
   Arrow spill files (one bare IPC message per partition, on disk);
2. deduplication needs only each visit's id, fetch time and read position;
3. then one job per `visit_date` partition gathers that partition's messages from every spill file, in
   reading order, leaves out the older copies, and writes the partition of each table as parquet row
   groups of bounded size.

Rows with no `visit_date` are staged in the null partition (`parquet.NULL_PARTITION`), where the
validation gate finds and quarantines them.

Over 500 lines: the three phases share the private batch and spill types, and the spill's format (what
a worker writes, what a partition job reads back) is one decision best read in one place.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import re
import shutil
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from letsjobit import config, files
from letsjobit.config import DataLayout
from letsjobit.lake import flatten, schema
from letsjobit.lake.parquet import NULL_PARTITION, partition_name
from letsjobit.quality import suites

log = logging.getLogger(__name__)

SEQUENCE_COLUMN = "_seq"  # spill only: the visit's read position, to keep the latest copy of a visit

RAW_READ_BYTES = 4 * 2**20
# ~4,000 visits: a worker holds one batch of parsed pages at a time (~100 MB). Bigger batches mean
# fewer, larger spill chunks per partition, but more memory: at 1M visits on 2 idle cores, 30/40/60-page
# batches ran in the same ~48-50 s (medians within noise) at ~820/~870/~920 MiB PSS summed.
PAGES_PER_BATCH = 40
MAX_WORKERS = 2
ROWS_PER_FILE = 2_000_000  # a partition rolls over to a new file past this many rows
ROW_GROUP_BYTES = 64 * 2**20  # a partition's rows are written out as a row group past this size

_PART_RE = re.compile(r"part-(.+)\.jsonl\.gz")
_SEQUENCE_BITS = 32  # _seq = batch number << 32 | row of the visit in its batch
# The _seq of an issue about a visit without _id: batch number << 32 | this | row of the issue (visits of
# a batch number far fewer), so that a copy of that record read twice is dropped like a visit's.
_UNPLACED_SEQUENCE = 1 << (_SEQUENCE_BITS - 1)


@dataclass
class StageResult:
    """What `stage_run` wrote; small and JSON-able (dates as ISO text) for XCom."""

    run_id: str
    path: str
    rows: dict[str, int]  # rows staged per data table, after deduplication
    issues: int  # data_issues rows the flattener staged (values it could not read, unusable structures)
    pages: int
    parts: int
    visits_read: int  # visits with an id read from the pages, duplicates included
    duplicates_dropped: int  # older copies of a visit fetched more than once
    # Extra raw parts a visit was listed in (a visit rescheduled while a window run read two of its
    # dates is in both listings, counted by both, staged once): what reconciliation subtracts.
    visits_in_several_parts: int
    partitions: list[str]  # visit_date partitions of the staged data tables (ISO dates, NULL_PARTITION)
    visits_without_date: int
    unknown_fields: dict[str, list[str]] = field(default_factory=dict)
    workers: int = 1
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def raw_parts(layout: DataLayout, run_id: str) -> list[Path]:
    """The run's raw parts in a stable order (by chunk name)."""
    run_dir = layout.raw_run(run_id)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no raw pages for run {run_id!r}: {run_dir} does not exist")
    return sorted(path for path in run_dir.iterdir() if _PART_RE.fullmatch(path.name))


@dataclass(frozen=True)
class _Batch:
    number: int
    source: str  # part file name, for error messages
    first_line: int
    lines: list[bytes]


@dataclass
class _BatchSummary:
    number: int
    source: str  # the raw part the batch was read from
    pages: int
    rows: dict[str, int]
    issues: int
    unknown_fields: dict[str, set[str]]
    visit_ids: pa.Table  # visit_id, fetched_at, _seq of every visit of the batch, to find duplicates
    unplaced_ids: pa.Table  # the same for the batch's visits without _id, by ERP id (unplaced_identity)
    spilled: dict[str, list[SpillChunk]]  # table -> where each partition's rows are in its spill file
    cpu_seconds: float = 0.0


@dataclass
class _TableSummary:
    name: str
    rows: int
    partitions: dict[str, int]  # partition value -> rows
    cpu_seconds: float = 0.0


def _iter_raw_lines(path: Path) -> Iterator[bytes]:
    """The lines of a gzip file (several gzip members too), decompressed in large chunks.

    Twice as fast as iterating `gzip.open`, whose small reads dominate on big pages.
    """
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    tail = b""
    with open(path, "rb") as compressed:
        while chunk := compressed.read(RAW_READ_BYTES):
            while chunk:
                text = decompressor.decompress(chunk)
                chunk = b""
                if decompressor.eof:  # a new gzip member may follow
                    chunk = decompressor.unused_data
                    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                lines = (tail + text).split(b"\n")
                tail = lines.pop()
                yield from lines
    if not decompressor.eof and tail + decompressor.flush():
        raise flatten.RawPageError(f"{path}: truncated gzip stream")
    if tail:
        yield tail


def _iter_batches(parts: list[Path], pages_per_batch: int) -> Iterator[_Batch]:
    """The raw lines of every part, in batches of pages; a batch never spans two parts."""
    number = 0
    for part in parts:
        lines: list[bytes] = []
        first_line = 1
        for line_number, line in enumerate(_iter_raw_lines(part), start=1):
            if not lines:
                first_line = line_number
            lines.append(line)
            if len(lines) == pages_per_batch:
                yield _Batch(number, part.name, first_line, lines)
                number += 1
                lines = []
        if lines:
            yield _Batch(number, part.name, first_line, lines)
            number += 1


def _spill_path(spill: Path, table: str, number: int) -> Path:
    return spill / table / f"batch-{number:07d}.arrows"


SpillChunk = tuple[str, int, int]
"""(partition, byte offset, byte size) of one partition's rows, an IPC message in a spill file"""


def _spill_schema(name: str) -> pa.Schema:
    return schema.LAKE_TABLES[name].append(pa.field(SEQUENCE_COLUMN, pa.int64()))


def _write_spill(table: pa.Table, path: Path) -> list[SpillChunk]:
    """Write a table sorted by partition as one IPC record batch message per partition.

    Bare messages with their offsets (the schema is the table's, known to the reader): a writer of one
    partition reads just its message from each spill file, without parsing a file footer every time.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Stable: rows of one partition keep their reading order.
    order = pc.sort_indices(table, sort_keys=[(schema.PARTITION_COLUMN, "ascending", "at_end")])
    ordered = table.take(order).combine_chunks()
    runs = pc.run_end_encode(ordered.column(schema.PARTITION_COLUMN).combine_chunks())
    chunks: list[SpillChunk] = []
    offset = start = 0
    with open(path, "wb") as sink:
        for end, day in zip(runs.run_ends.to_pylist(), runs.values.to_pylist(), strict=True):
            (batch,) = ordered.slice(start, end - start).to_batches()
            message = batch.serialize()
            sink.write(message)
            chunks.append((NULL_PARTITION if day is None else day.isoformat(), offset, message.size))
            offset += message.size
            start = end
    return chunks


def _read_spill_chunk(path: Path, offset: int, size: int, spill_schema: pa.Schema) -> pa.RecordBatch:
    with open(path, "rb") as source:
        source.seek(offset)
        return pa.ipc.read_record_batch(pa.py_buffer(source.read(size)), spill_schema)


def _flatten_batch(batch: _Batch, run_id: str, spill: Path, pseudonymise_key: str | None) -> _BatchSummary:
    """Worker: parse and flatten one batch of pages, write its spill files, return the counts."""
    cpu = time.process_time()
    collecting = gc.isenabled()
    gc.disable()  # JSON trees have no cycles; the collector would only slow the allocation storm down
    try:
        pages = [
            flatten.parse_page(line, f"{batch.source}:{batch.first_line + offset}")
            for offset, line in enumerate(batch.lines)
            if line.strip()
        ]
        flat = flatten.flatten_pages(pages, run_id, pseudonymise_key=pseudonymise_key)
        del pages
        base = batch.number << _SEQUENCE_BITS
        visit_sequence = pc.add(pa.array(range(flat.visits.num_rows), pa.int64()), base)
        issue_sequence, unplaced_ids = _issue_sequences(flat.issues, flat.issue_parents, base)
        sequences = {
            "visits": visit_sequence,
            "visit_lines": visit_sequence.take(flat.line_parents),
            "line_extra_data": visit_sequence.take(flat.extra_data_parents),
            schema.DATA_ISSUES_TABLE: issue_sequence,
        }
        spilled = {}
        for name, table in {**flat.tables(), schema.DATA_ISSUES_TABLE: flat.issues}.items():
            if table.num_rows:
                spilled[name] = _write_spill(
                    table.append_column(SEQUENCE_COLUMN, sequences[name]),
                    _spill_path(spill, name, batch.number),
                )
        return _BatchSummary(
            number=batch.number,
            source=batch.source,
            pages=flat.pages,
            rows={name: table.num_rows for name, table in flat.tables().items()},
            issues=flat.issues.num_rows,
            unknown_fields=flat.unknown_fields,
            visit_ids=pa.table(
                {
                    "visit_id": flat.visits.column("visit_id"),
                    "fetched_at": flat.visits.column("fetched_at"),
                    SEQUENCE_COLUMN: visit_sequence,
                }
            ),
            unplaced_ids=unplaced_ids,
            spilled=spilled,
            cpu_seconds=time.process_time() - cpu,
        )
    finally:
        if collecting:
            gc.enable()


def _issue_sequences(issues: pa.Table, parents: pa.Array, base: int) -> tuple[pa.Array, pa.Table]:
    """The _seq of each issue row and the identities of the batch's visits without _id.

    An issue about a landed visit goes with the visit's copy (dropped with an older one). One about a
    visit without _id gets a _seq of its own, keyed by the record's ERP id: paging under drift can list
    such a record twice, and it must stay one issue. Other issues about no visit (a page whose data is
    not a list, an entry that is not an object) are NULL: never an older copy, always kept.
    """
    sequence = pc.add(parents.cast(pa.int64()), base)
    unplaced = pc.equal(issues.column("check_name"), suites.VISIT_ID_PRESENT.name)
    positions = pc.indices_nonzero(unplaced).to_pylist()
    own = [base | _UNPLACED_SEQUENCE | position for position in positions]
    if positions:
        replaced = sequence.to_pylist()
        for position, value in zip(positions, own, strict=True):
            replaced[position] = value
        sequence = pa.array(replaced, pa.int64())
    rows = issues.take(pa.array(positions, pa.int64()))
    identities = pa.table(
        {
            "visit_id": pa.array([unplaced_identity(raw) for raw in rows.column("raw_value").to_pylist()]),
            "fetched_at": rows.column("fetched_at"),
            SEQUENCE_COLUMN: pa.array(own, pa.int64()),
        },
        schema=pa.schema(
            [("visit_id", pa.string()), ("fetched_at", schema.DATA_ISSUES.field("fetched_at").type),
             (SEQUENCE_COLUMN, pa.int64())]
        ),
    )  # fmt: skip
    return sequence, identities


def unplaced_identity(raw_value: str | None) -> str:
    """What identifies a visit without _id: its ERP id (the API's other visit id), else its whole record."""
    try:
        record = orjson.loads(raw_value) if raw_value is not None else None
    except orjson.JSONDecodeError:
        record = None
    if isinstance(record, dict) and record.get("id") is not None:
        return "id:" + orjson.dumps(record["id"]).decode()
    return f"record:{raw_value}"


def _older_copies(visit_ids: list[pa.Table]) -> pa.Array:
    """_seq of every visit that was read again later: keep the latest fetched (then the last read)."""
    ids = pa.concat_tables(visit_ids) if visit_ids else pa.table({"visit_id": pa.array([], pa.string())})
    if ids.num_rows == 0:
        return pa.array([], pa.int64())
    counts = ids.group_by("visit_id").aggregate([("visit_id", "count")])
    repeated = counts.filter(pc.greater(counts.column("visit_id_count"), 1)).column("visit_id")
    if len(repeated) == 0:
        return pa.array([], pa.int64())
    copies = ids.filter(pc.is_in(ids.column("visit_id"), value_set=repeated.combine_chunks())).sort_by(
        [("visit_id", "ascending"), ("fetched_at", "descending"), (SEQUENCE_COLUMN, "descending")]
    )
    visit_id = copies.column("visit_id").combine_chunks()
    first_of_visit = pc.not_equal(visit_id.slice(1), visit_id.slice(0, len(visit_id) - 1))
    is_older = pa.concat_arrays([pa.array([False]), pc.invert(first_of_visit)])
    return copies.column(SEQUENCE_COLUMN).combine_chunks().filter(is_older)


def _visits_in_several_parts(summaries: list[_BatchSummary]) -> int:
    """How many more (visit, raw part) pairs there are than visits: 0 unless a visit was listed twice."""
    if len({summary.source for summary in summaries}) < 2:
        return 0
    pairs = pa.concat_tables(
        [
            pa.table(
                {
                    "visit_id": summary.visit_ids.column("visit_id"),
                    "part": pa.repeat(summary.source, summary.visit_ids.num_rows).cast(pa.string()),
                }
            )
            for summary in summaries
        ]
    )
    distinct_pairs = pairs.group_by(["visit_id", "part"]).aggregate([]).num_rows
    distinct_visits = pairs.group_by("visit_id").aggregate([]).num_rows
    return distinct_pairs - distinct_visits


Sources = dict[str, list[tuple[Path, int, int]]]
"""table -> (spill file, offset, size) of the partition's rows, in reading order"""


def _write_partition(partition: str, sources: Sources, older: pa.Array, target: Path) -> _TableSummary:
    """Worker: one partition of every table, gathered from the spill, older copies left out."""
    cpu = time.process_time()
    rows: dict[str, int] = {}
    for name, table_sources in sources.items():
        rows[name] = _write_partition_of(name, partition, table_sources, older, target)
    return _TableSummary(partition, sum(rows.values()), rows, time.process_time() - cpu)


def _write_partition_of(
    name: str, partition: str, sources: list[tuple[Path, int, int]], older: pa.Array, target: Path
) -> int:
    """One table's rows of one partition as parquet files of row groups of about ROW_GROUP_BYTES."""
    table_schema = schema.LAKE_TABLES[name]
    spill_schema = _spill_schema(name)
    directory = target / name / partition_name(partition)
    directory.mkdir(parents=True)
    writer: pq.ParquetWriter | None = None
    files = rows_in_file = rows = 0
    pending: list[pa.RecordBatch] = []
    pending_bytes = 0
    try:
        for position, (path, offset, size) in enumerate(sources):
            batch = _read_spill_chunk(path, offset, size, spill_schema)
            if len(older):
                batch = batch.filter(pc.invert(pc.is_in(batch.column(SEQUENCE_COLUMN), value_set=older)))
            if batch.num_rows:
                pending.append(batch)
                pending_bytes += batch.nbytes
            if pending and (pending_bytes >= ROW_GROUP_BYTES or position == len(sources) - 1):
                if writer is None or rows_in_file >= ROWS_PER_FILE:
                    if writer is not None:
                        writer.close()
                    path = directory / f"part-{files:05d}.parquet"
                    writer = pq.ParquetWriter(path, table_schema, compression=schema.LAKE_COMPRESSION)
                    files += 1
                    rows_in_file = 0
                # One chunk per column: the parquet writer pays a fixed cost per chunk and column.
                group = pa.Table.from_batches([pa.concat_batches(pending)]).drop_columns([SEQUENCE_COLUMN])
                group = group.cast(table_schema)
                writer.write_table(group)
                rows_in_file += group.num_rows
                rows += group.num_rows
                pending, pending_bytes = [], 0
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # every row of the partition was an older copy
        directory.rmdir()
    return rows


class _InlineExecutor(Executor):
    """Runs each job at once in this process (one worker: no process start-up, easy to debug)."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(error)
        return future


def default_workers() -> int:
    """The CPUs, at most MAX_WORKERS; 1 inside a daemonic process (a Celery prefork worker's task),
    which may not start children of its own."""
    if multiprocessing.current_process().daemon:
        return 1
    return min(MAX_WORKERS, os.cpu_count() or 1)


def _executor(workers: int) -> Executor:
    if workers <= 1:
        return _InlineExecutor()
    # fork: the workers need nothing but this module, and spawn would re-import the caller's main
    # module (Airflow's task runner, a script) in every worker.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))


def _flatten_all(
    executor: Executor,
    workers: int,
    parts: list[Path],
    run_id: str,
    spill: Path,
    pseudonymise_key: str | None,
    pages_per_batch: int,
) -> list[_BatchSummary]:
    """Flatten every batch of every part; one batch waits while each worker runs one (bounded memory)."""
    summaries: list[_BatchSummary] = []
    pending: set[Future] = set()
    try:
        for batch in _iter_batches(parts, pages_per_batch):
            pending.add(executor.submit(_flatten_batch, batch, run_id, spill, pseudonymise_key))
            if len(pending) > workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                summaries.extend(future.result() for future in done)
        done, pending = wait(pending)
        summaries.extend(future.result() for future in done)
    finally:
        for future in pending:
            future.cancel()
    return sorted(summaries, key=lambda summary: summary.number)


def stage_run(
    run_id: str,
    layout: DataLayout,
    *,
    pseudonymise_key: str | None | type[Ellipsis] = ...,
    workers: int | None = None,
    pages_per_batch: int = PAGES_PER_BATCH,
) -> StageResult:
    """Flatten a run's raw pages into typed staged tables; replaces any earlier staging of the run.

    `pseudonymise_key` defaults to `config.pseudonymise_key()`; `workers` to the CPUs (at most
    MAX_WORKERS); with 1 worker everything runs in this process.
    """
    started = time.monotonic()
    key = config.pseudonymise_key() if pseudonymise_key is ... else pseudonymise_key
    workers = workers or default_workers()
    parts = raw_parts(layout, run_id)
    final = layout.staging_run(run_id)
    layout.staging.mkdir(parents=True, exist_ok=True)
    for stale in layout.staging.glob(f".{run_id}.tmp-*"):  # scratch of an attempt that died
        shutil.rmtree(stale, ignore_errors=True)
    work = layout.staging / f".{run_id}.tmp-{uuid.uuid4().hex[:8]}"
    spill, staged = work / "spill", work / "staged"
    spill.mkdir(parents=True)
    staged.mkdir()
    log.info("Staging run %s: %d raw part(s), %d worker(s), into %s", run_id, len(parts), workers, final)
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[phase] = round(now - clock, 3)
        clock = now

    main_cpu = time.process_time()
    try:
        with _executor(workers) as executor:
            summaries = _flatten_all(executor, workers, parts, run_id, spill, key, pages_per_batch)
            lap("flatten")
            older = pa.concat_arrays(
                [
                    _older_copies([summary.visit_ids for summary in summaries]),
                    _older_copies([summary.unplaced_ids for summary in summaries]),  # their issue rows
                ]
            )
            in_several_parts = _visits_in_several_parts(summaries)
            lap("dedupe")
            sources: dict[str, Sources] = {}
            for summary in summaries:
                for name, partitions in summary.spilled.items():
                    path = _spill_path(spill, name, summary.number)
                    for partition, offset, size in partitions:
                        sources.setdefault(partition, {}).setdefault(name, []).append((path, offset, size))
            # Biggest partitions first, so that the workers finish together.
            jobs = [
                executor.submit(_write_partition, partition, sources[partition], older, staged)
                for partition in sorted(sources, key=lambda p: -sum(len(v) for v in sources[p].values()))
            ]
            written = [job.result() for job in jobs]
            lap("write")
            for name in schema.LAKE_TABLES:
                (staged / name).mkdir(exist_ok=True)
        # CPU seconds of the work itself, whatever else the machine runs (inline: counted in flatten/write).
        timings["cpu_flatten"] = round(sum(summary.cpu_seconds for summary in summaries), 3)
        timings["cpu_write"] = round(sum(job.cpu_seconds for job in written), 3)
        if workers > 1:
            timings["cpu_main"] = round(time.process_time() - main_cpu, 3)
        shutil.rmtree(spill)
        files.replace_dir(staged, final, work / "previous")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    unknown: dict[str, set[str]] = {}
    for summary in summaries:
        for table, names in summary.unknown_fields.items():
            unknown.setdefault(table, set()).update(names)
    for table, names in sorted(unknown.items()):
        log.warning(
            "Run %s: %s carry fields the reference does not list, kept in extra_fields: %s",
            run_id, table, ", ".join(sorted(names)),
        )  # fmt: skip
    visits_read = sum(summary.rows["visits"] for summary in summaries)
    partitions = written
    rows = {name: sum(job.partitions.get(name, 0) for job in partitions) for name in schema.TABLES}
    visits_without_date = sum(
        job.partitions.get("visits", 0) for job in partitions if job.name == NULL_PARTITION
    )
    result = StageResult(
        run_id=run_id,
        path=str(final),
        rows=rows,
        issues=sum(job.partitions.get(schema.DATA_ISSUES_TABLE, 0) for job in partitions),
        pages=sum(summary.pages for summary in summaries),
        parts=len(parts),
        visits_read=visits_read,
        duplicates_dropped=len(older),
        visits_in_several_parts=in_several_parts,
        partitions=sorted(
            job.name for job in partitions if any(job.partitions.get(name) for name in schema.TABLES)
        ),
        visits_without_date=visits_without_date,
        unknown_fields={table: sorted(names) for table, names in sorted(unknown.items())},
        workers=workers,
        seconds=round(time.monotonic() - started, 3),
        timings=timings,
    )
    if in_several_parts:
        log.warning(
            "Run %s: %d visit(s) were listed in more than one raw part (rescheduled while the run read "
            "their dates); each is staged once, its latest fetched copy",
            run_id, in_several_parts,
        )  # fmt: skip
    log.info(
        "Staged run %s: %d pages, %d visits read, %d duplicates dropped, rows %s, %d data issues, %d partitions in %.1f s",
        run_id, result.pages, visits_read, result.duplicates_dropped, result.rows, result.issues,
        len(result.partitions), result.seconds,
    )  # fmt: skip
    return result
