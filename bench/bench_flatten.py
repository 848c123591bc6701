"""Benchmark: flatten N simulated visits from raw pages into the staged lake tables, then publish them
into the lake (a full refresh); prints figures.

    .venv/bin/python bench/bench_flatten.py --visits 1000000          # the issue's target size
    .venv/bin/python bench/bench_flatten.py --visits 100000 --workers 1 --floor

The raw pages are generated once with the simulator's generator (the extractor's format: gzip JSON lines,
100 visits a page) and cached under --cache-dir, so a re-run measures only the lake. The figures are the
wall time of `stage.stage_run` (parse, flatten, coerce, dedupe, sort, write parquet), of
`publish.publish_run` (the staged tables become the lake's), and the peak resident memory of the whole
process tree (this process and its workers, summed, sampled every 50 ms). The validation gate is not
part of it: the staged tables are linked as the run's audited output, as a run without findings has it.
With --floor it first measures the floor: gunzip + orjson parse of the same pages, nothing else.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import importlib
import logging
import multiprocessing
import os
import shutil
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import psutil
from letsjobit import files
from letsjobit.config import DataLayout
from letsjobit.lake import publish, schema, stage

PAGE_SIZE = 100
GENERATION_BLOCK = 10_000
GZIP_LEVEL = 5  # the extractor's


def _generator(spec: str):
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function or "generate_visits")


def _write_part(args: tuple[str, Path, int, int, int, date]) -> None:
    """Generate visits [start, stop) and write them as raw pages of 100 to one part file."""
    spec, path, start, stop, seed, anchor = args
    generate_visits = _generator(spec)
    fetched = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    temporary = path.with_name(f".{path.name}.tmp")
    with gzip.open(temporary, "wb", compresslevel=GZIP_LEVEL) as out:
        for block in range(start, stop, GENERATION_BLOCK):
            visits = generate_visits(min(GENERATION_BLOCK, stop - block), seed, anchor, start=block)
            for offset in range(0, len(visits), PAGE_SIZE):
                data = visits[offset : offset + PAGE_SIZE]
                page_offset = block + offset
                page = {
                    "offset": page_offset,
                    "filters": {},
                    "fetched_at": (fetched + timedelta(milliseconds=page_offset // PAGE_SIZE)).isoformat(),
                    "body": {
                        "meta": {
                            "totalRecords": stop,
                            "returnedRecords": len(data),
                            "remainingRecords": max(0, stop - page_offset - len(data)),
                            "nextStart": page_offset + len(data),
                        },
                        "data": data,
                    },
                }
                out.write(orjson.dumps(page))
                out.write(b"\n")
    os.replace(temporary, path)


def raw_run(cache: Path, spec: str, visits: int, parts: int, seed: int, anchor: date) -> Path:
    """The cached raw run directory for these settings, generated (in parallel) when missing."""
    run_dir = cache / f"raw-{visits}-{parts}-{seed}-{anchor:%Y%m%d}" / "run_id=bench"
    if (run_dir / "_complete").exists():
        return run_dir
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    bounds = [visits * part // parts for part in range(parts + 1)]
    jobs = [
        (spec, run_dir / f"part-{part:03d}.jsonl.gz", bounds[part], bounds[part + 1], seed, anchor)
        for part in range(parts)
    ]
    # Split big parts into pieces for the generator pool, then concatenate (gzip members concatenate).
    pieces = []
    for spec_, path, start, stop, seed_, anchor_ in jobs:
        edges = list(range(start, stop, 50_000)) + [stop]
        for index, (low, high) in enumerate(zip(edges, edges[1:], strict=False)):
            pieces.append((spec_, path.with_name(f"{path.name}.{index:04d}"), low, high, seed_, anchor_))
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        pool.map(_write_part, pieces, chunksize=1)
    for _, path, *_ in jobs:
        with open(path, "wb") as out:
            for piece in sorted(path.parent.glob(f"{path.name}.*")):
                with open(piece, "rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
                piece.unlink()
    (run_dir / "_complete").touch()
    print(
        f"generated {visits:,} visits in {parts} part(s) in {time.monotonic() - started:.0f} s -> {run_dir}"
    )
    return run_dir


class PeakMemory:
    """Samples the memory of this process and its children in a background thread.

    RSS summed over processes counts the pages forked workers share with their parent once per
    process; PSS (proportional set size) splits shared pages between their sharers, so its sum is the
    memory the run really holds. Both are reported.
    """

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_single = 0
        self.own_cpu = 0.0  # this sampler's CPU, not the run's
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        children: list[psutil.Process] = []
        tick = 0
        while not self._stop.is_set():
            if tick % 5 == 0:  # listing children scans /proc: not every tick
                children = me.children(recursive=True)
            tick += 1
            rss = pss = single = 0
            for process in [me, *children]:
                try:
                    info = process.memory_full_info()
                except psutil.Error:
                    continue
                rss += info.rss
                pss += info.pss
                single = max(single, info.rss)
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_single = max(self.peak_single, single)
            self.own_cpu = time.thread_time()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure_floor(run_dir: Path) -> tuple[float, int]:
    """Seconds to gunzip and orjson-parse every page (one process), and the visits seen."""
    gc.disable()
    started = time.monotonic()
    visits = 0
    for part in sorted(run_dir.glob("part-*.jsonl.gz")):
        with gzip.open(part, "rb") as lines:
            for line in lines:
                visits += len(orjson.loads(line)["body"]["data"])
    gc.enable()
    return time.monotonic() - started, visits


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--visits", type=int, default=1_000_000)
    parser.add_argument("--parts", type=int, default=1, help="raw parts (a full refresh is one part)")
    parser.add_argument("--workers", type=int, default=None, help="flatten processes (default: CPUs, max 2)")
    parser.add_argument("--pages-per-batch", type=int, default=stage.PAGES_PER_BATCH)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--anchor", type=date.fromisoformat, default=date(2026, 11, 1))
    parser.add_argument("--generator", default="letsjobit.simulator.data:generate_visits")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/letsjobit-bench"))
    parser.add_argument("--floor", action="store_true", help="also time gunzip + orjson parse alone")
    parser.add_argument("--log", action="store_true", help="show the lake's log lines")
    args = parser.parse_args()
    if args.log:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    run_dir = raw_run(args.cache_dir, args.generator, args.visits, args.parts, args.seed, args.anchor)
    raw_bytes = sum(path.stat().st_size for path in run_dir.glob("part-*.jsonl.gz"))
    print(f"raw: {raw_bytes / 1e6:,.0f} MB gzip in {args.parts} part(s)")
    if args.floor:
        seconds, visits = measure_floor(run_dir)
        print(f"floor: gunzip + orjson parse of {visits:,} visits: {seconds:.1f} s (one process)")

    layout = DataLayout(args.cache_dir / "data")
    shutil.rmtree(layout.root, ignore_errors=True)
    layout.raw.mkdir(parents=True)
    os.symlink(run_dir, layout.raw / "run_id=bench")

    load = os.getloadavg()[0]
    with PeakMemory() as memory:
        started = time.monotonic()
        result = stage.stage_run(
            "bench", layout, workers=args.workers, pages_per_batch=args.pages_per_batch, pseudonymise_key=None
        )
        staged_seconds = time.monotonic() - started
        # What the gate leaves for a run without findings: the staged files, linked (not timed).
        for table in schema.LAKE_TABLES:
            files.link_tree(Path(result.path) / table, layout.audited("bench") / table)
        linked, publish_cpu = time.monotonic(), time.process_time()
        published = publish.publish_run("bench", layout, None)
        publish_seconds = time.monotonic() - linked
        publish_cpu = time.process_time() - publish_cpu  # this process, its writer threads included
        seconds = staged_seconds + publish_seconds
    staged_bytes = sum(
        path.stat().st_size
        for table in schema.LAKE_TABLES
        for path in (Path(result.path) / table).rglob("*.parquet")
    )
    timings = result.timings
    main_cpu = max(0.0, timings.get("cpu_main", 0.0) - memory.own_cpu)  # less the sampler's
    cpu = timings["cpu_flatten"] + timings["cpu_write"] + main_cpu
    print(
        f"stage_run: {result.visits_read:,} visits -> {result.rows['visits']:,} visits, "
        f"{result.rows['visit_lines']:,} lines, {result.rows['line_extra_data']:,} extraData rows, "
        f"{result.issues:,} data issues, {len(result.partitions)} partitions, {staged_bytes / 1e6:,.0f} MB parquet"
    )
    print(f"  workers {result.workers}, phases (s) {timings}")
    print(
        f"  publish_run: {sum(published.rows.values()):,} rows in {publish_seconds:.1f} s ({publish_cpu:.1f} s CPU); "
        f"flatten {staged_seconds:.1f} s + publish {publish_seconds:.1f} s"
    )
    print(
        f"  wall {seconds:.1f} s ({result.visits_read / seconds:,.0f} visits/s) with the machine's load at "
        f"{load:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"  CPU {cpu:.1f} s (flatten {timings['cpu_flatten']:.1f}, write {timings['cpu_write']:.1f}, "
        f"main {main_cpu:.1f}): at least {cpu / result.workers:.1f} s of wall on "
        f"{result.workers} otherwise idle CPUs"
    )
    print(
        f"  peak memory: {memory.peak_pss / 2**20:,.0f} MiB PSS summed over processes, "
        f"{memory.peak_rss / 2**20:,.0f} MiB RSS summed (shared pages counted per process), "
        f"largest process {memory.peak_single / 2**20:,.0f} MiB RSS"
    )
    scale = args.visits / 1_000_000
    print(
        f"  target per 1M visits (<= 60 s, <= 1 GiB): wall {'met' if seconds <= 60 * scale else 'NOT met'}, "
        f"memory {'met' if memory.peak_pss <= 2**30 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
