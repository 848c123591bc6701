"""Benchmark: full extraction from the simulator, our client vs dlt 1.31's rest_api source; prints figures.

    .venv/bin/python bench/bench_extract.py                      # everything (~15 min)
    .venv/bin/python bench/bench_extract.py --quick              # smaller, one repeat (~4 min)
    .venv/bin/python bench/bench_extract.py --only speed --skip-dlt --repeats 5

The simulator runs as its own process (sliding window, 100 requests / 10 s, full pages of 100) and each
extraction runs in a fresh child process, so its wall time and peak RSS are its own. Scenarios:

* speed: 20,000 visits at 0 / 100 / 300 ms latency. Ours is ``extract.extract_to_raw`` (pages to a gzip
  JSON-lines part); dlt is ``rest_api_source`` with an offset paginator on ``pagination`` and
  ``meta.totalRecords``, Bearer auth, a filesystem destination (jsonl) in a temp dir. dlt's visits/s is
  taken over its extract step (the part bound by the API), its wall time over the whole run.
* drift: 3 visits deleted and 3 inserted every 4 list requests (100 ms latency); visits that existed for
  the whole extraction but were not delivered are counted as lost.
* long window: the server's window is 30 s (100 requests / 30 s) while both clients are left at their
  defaults (ours assumes the documented 10 s): it must pace to the server's headers.
* memory: ours at 5,000 and 20,000 visits with the rate limit off: peak RSS must not grow with visits.

The "% of ceiling" is visits/s over the documented ceiling: 100 requests / 10 s x 100 visits = 1,000/s.
The 429s are the simulator's limiter count (requests it refused), i.e. caused by the client.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests
from letsjobit.simulator.process import simulator_process

KEY = "bench-key-7f3e2d1c0b9a"
CEILING_VISITS_PER_SECOND = 100 / 10 * 100
ANCHOR = "2026-11-01"


# --------------------------------------------------------------------------------------------------
# children: one extraction each, reporting JSON on stdout


def child_ours(base_url: str, workdir: Path, ids_path: Path | None) -> dict:
    from letsjobit.api.client import LetsJobItClient
    from letsjobit.api.settings import ClientSettings
    from letsjobit.config import DataLayout
    from letsjobit.lake import extract

    layout = DataLayout(workdir / "data")
    # The memory scenario turns the simulator's limit off; the client is then told so too.
    window_requests = int(os.environ.get("BENCH_REQUESTS_PER_WINDOW", "100"))
    settings = ClientSettings(
        base_url=base_url, api_key=KEY, rate_state_dir=layout.state, requests_per_window=window_requests
    )
    started = time.monotonic()
    with LetsJobItClient(settings) as client:
        result = extract.extract_to_raw(client, "bench", "full", {}, layout)
    wall = time.monotonic() - started
    if ids_path is not None:
        ids = sorted(
            {v["_id"] for page in extract.read_raw_pages(result.part_path) for v in page["body"]["data"]}
        )
        ids_path.write_text(json.dumps(ids))
    return {
        "ok": True,
        "visits": result.distinct_visits,
        "wall": wall,
        "api_wall": wall,
        "retries": result.retries,
        "drift_events": result.drift_events,
    }


def child_dlt(base_url: str, workdir: Path, ids_path: Path | None) -> dict:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    os.chdir(workdir)
    import dlt
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {
                "base_url": base_url + "/",
                "auth": {"type": "bearer", "token": KEY},
                "paginator": {
                    "type": "offset",
                    "limit": 100,
                    "offset_param": "pagination",
                    "limit_param": "limit",
                    "total_path": "meta.totalRecords",
                },
            },
            "resources": [
                {
                    "name": "visits",
                    "endpoint": {"path": "visits", "data_selector": "data"},
                    "write_disposition": "replace",
                }
            ],
        }
    )
    out = workdir / "dlt_out"
    pipeline = dlt.pipeline(
        pipeline_name="bench",
        destination=dlt.destinations.filesystem(bucket_url=out.as_uri()),
        dataset_name="letsjobit",
        pipelines_dir=str(workdir / "pipelines"),
    )
    started = time.monotonic()
    try:
        pipeline.extract(source, loader_file_format="jsonl")
        api_wall = time.monotonic() - started
        pipeline.normalize()
        pipeline.load()
    except Exception as exc:  # the figure is that it failed, and how
        root = exc
        while root.__cause__ is not None or root.__context__ is not None:
            root = root.__cause__ or root.__context__
        reason = str(root).strip().splitlines()[0][:160] if str(root).strip() else ""
        return {
            "ok": False,
            "error": f"{type(root).__name__}: {reason}",
            "wall": time.monotonic() - started,
            "visits": 0,
        }
    wall = time.monotonic() - started
    ids = []
    for path in out.glob("letsjobit/visits/*"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            ids.extend(json.loads(line)["_id"] for line in handle if line.strip())
    if ids_path is not None:
        ids_path.write_text(json.dumps(sorted(set(ids))))
    return {"ok": True, "visits": len(set(ids)), "rows": len(ids), "wall": wall, "api_wall": api_wall}


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and
    exec, so a child would report its parent's peak if that was higher."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(tool: str, base_url: str, want_ids: bool = False, env: dict | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"bench-{tool}-") as tmp:
        ids_path = Path(tmp) / "ids.json"
        command = [sys.executable, __file__, "--child", tool, "--base-url", base_url, "--workdir", tmp]
        if want_ids:
            command += ["--ids", str(ids_path)]
        done = subprocess.run(
            command,
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
            env={**os.environ, **(env or {})},
        )
        if done.returncode != 0:
            return {
                "ok": False,
                "error": done.stderr.strip().splitlines()[-1:] or ["?"],
                "visits": 0,
                "wall": 0,
            }
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if want_ids and ids_path.exists():
            result["ids"] = json.loads(ids_path.read_text())
        return result


# --------------------------------------------------------------------------------------------------
# the simulator's admin endpoints


def admin(sim, name: str, payload: dict | None = None) -> dict:
    url = f"{sim.root_url}/_sim/{name}"
    answer = (
        requests.get(url, timeout=120) if payload is None else requests.post(url, json=payload, timeout=120)
    )
    answer.raise_for_status()
    return answer.json()


def truth_ids(sim) -> set[str]:
    return {visit["_id"] for visit in admin(sim, "truth")["data"]}


@contextmanager
def simulator(visits: int, *, rate_limit: int = 100, window: float = 10, latency_ms: float = 0, faults=None):
    args = [
        "--visits",
        str(visits),
        "--seed",
        "7",
        "--anchor-date",
        ANCHOR,
        "--rate-limit",
        str(rate_limit),
        "--rate-window",
        str(window),
        "--rate-mode",
        "sliding",
        "--latency-ms",
        str(latency_ms),
    ]
    if faults:
        args += ["--faults", json.dumps(faults)]
    with simulator_process(*args, api_key=KEY, stderr=subprocess.DEVNULL) as sim:
        yield sim


def measured(sim, tool: str, want_ids: bool = False, env: dict | None = None) -> dict:
    admin(sim, "reset", {"counters": True, "rate_limit": True})
    result = run_child(tool, sim.base_url, want_ids, env)
    counters = admin(sim, "counters")
    result.update(
        requests=counters["requests_total"],
        limiter_429=counters["rate_limited_429"],
        max_in_window=counters["max_requests_in_window"],
    )
    return result


# --------------------------------------------------------------------------------------------------
# scenarios


def scenario_speed(args, rows: list[dict]) -> None:
    with simulator(args.visits) as sim:
        for latency in args.latencies:
            admin(sim, "config", {"latency_ms": latency})
            for tool, repeats in (("ours", args.repeats), ("dlt", args.dlt_repeats)):
                if tool == "dlt" and args.skip_dlt:
                    continue
                runs = [measured(sim, tool) for _ in range(repeats)]
                rows.append(summarise(f"speed {args.visits:,} visits, {latency:g} ms", tool, runs))
                print_row(rows[-1])


def scenario_drift(args, rows: list[dict]) -> None:
    faults = {"drift_every": 4, "drift_deletes": 3, "drift_inserts": 3, "seed": 3}
    for tool in ("ours", "dlt"):
        if tool == "dlt" and args.skip_dlt:
            continue
        with simulator(args.visits, latency_ms=100) as sim:
            before = truth_ids(sim)
            admin(sim, "faults", faults)
            run = measured(sim, tool, want_ids=True)
            after = truth_ids(sim)
            delivered = set(run.pop("ids", []))
            persistent = before & after
            run["lost"] = len(persistent - delivered)
            run["persistent"] = len(persistent)
            run["deleted_during"] = len(before - after)
            row = summarise(f"drift {args.visits:,} visits, 3 del + 3 ins / 4 req", tool, [run])
            row["note"] = (
                f"{run['lost']} of {run['persistent']:,} visits that existed throughout lost"
                f" ({run['deleted_during']} deleted during the run)"
            )
            rows.append(row)
            print_row(row)


def scenario_long_window(args, rows: list[dict]) -> None:
    visits = args.long_window_visits
    for tool in ("ours", "dlt"):
        if tool == "dlt" and args.skip_dlt:
            continue
        with simulator(visits, window=30) as sim:
            run = measured(sim, tool)
            row = summarise(
                f"long window {visits:,} visits, 100 req / 30 s", tool, [run], ceiling=100 / 30 * 100
            )
            row["note"] = (
                "completed"
                if run.get("ok") and run["visits"] == visits
                else (
                    f"FAILED after {run['requests']} requests, {run['visits']} visits loaded: {run.get('error', '')}"
                )
            )
            rows.append(row)
            print_row(row)


def scenario_memory(args, rows: list[dict]) -> None:
    for visits in args.memory_visits:
        with simulator(visits, rate_limit=0) as sim:
            unpaced = {"BENCH_REQUESTS_PER_WINDOW": "1000000"}
            runs = [measured(sim, "ours", env=unpaced) for _ in range(max(1, min(args.repeats, 2)))]
            row = summarise(f"memory {visits:,} visits, no rate limit", "ours", runs, ceiling=None)
            rows.append(row)
            print_row(row)


# --------------------------------------------------------------------------------------------------
# reporting


def summarise(
    scenario: str, tool: str, runs: list[dict], ceiling: float | None = CEILING_VISITS_PER_SECOND
) -> dict:
    ok = [r for r in runs if r.get("ok")]
    if not ok:
        return {
            "scenario": scenario,
            "tool": tool,
            "runs": len(runs),
            "failed": runs[0].get("error"),
            "requests": runs[0].get("requests"),
            "limiter_429": runs[0].get("limiter_429"),
            "visits": 0,
            "wall": runs[0].get("wall", 0),
            "rss_mb": runs[0].get("rss_mb"),
        }
    api_rates = [r["visits"] / r["api_wall"] for r in ok if r.get("api_wall")]
    rate = statistics.median(api_rates) if api_rates else 0.0
    return {
        "scenario": scenario,
        "tool": tool,
        "runs": len(runs),
        "visits": statistics.median(r["visits"] for r in ok),
        "visits_per_s": rate,
        "pct_ceiling": None if ceiling is None else 100 * rate / ceiling,
        "limiter_429": statistics.median(r["limiter_429"] for r in ok),
        "requests": statistics.median(r["requests"] for r in ok),
        "max_in_window": max(r["max_in_window"] for r in ok),
        "wall": statistics.median(r["wall"] for r in ok),
        "rss_mb": statistics.median(r["rss_mb"] for r in ok),
        "failed": None if len(ok) == len(runs) else f"{len(runs) - len(ok)} of {len(runs)} runs failed",
    }


HEADER = "| scenario | tool | visits | visits/s | % of ceiling | 429s caused | requests | wall s | peak RSS MB | note |"


def format_row(row: dict) -> str:
    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    note = " ".join(str(row.get("note") or row.get("failed") or "").split())[:160]
    return (
        f"| {row['scenario']} | {row['tool']} | {num(row.get('visits'), ',.0f')} | {num(row.get('visits_per_s'), ',.0f')} "
        f"| {num(row.get('pct_ceiling'), '.0f')} | {num(row.get('limiter_429'), '.0f')} | {num(row.get('requests'), '.0f')} "
        f"| {num(row.get('wall'), '.1f')} | {num(row.get('rss_mb'), '.0f')} | {note} |"
    )


def print_row(row: dict) -> None:
    print(format_row(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--visits", type=int, default=20_000)
    parser.add_argument("--latencies", type=lambda s: [float(x) for x in s.split(",")], default=[0, 100, 300])
    parser.add_argument("--repeats", type=int, default=3, help="runs of our client per scenario (median)")
    parser.add_argument("--dlt-repeats", type=int, default=1, help="runs of dlt per scenario (it is slow)")
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--only", choices=["speed", "drift", "long-window", "memory"], action="append")
    parser.add_argument("--long-window-visits", type=int, default=12_000)
    parser.add_argument(
        "--memory-visits", type=lambda s: [int(x) for x in s.split(",")], default=[5_000, 20_000]
    )
    parser.add_argument("--quick", action="store_true", help="10,000 visits, one repeat")
    parser.add_argument("--child", choices=["ours", "dlt"], help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ids", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = (child_ours if args.child == "ours" else child_dlt)(args.base_url, args.workdir, args.ids)
        result["rss_mb"] = peak_rss_mb()
        sys.stdout.write(json.dumps(result) + "\n")
        return

    if args.quick:
        args.visits, args.repeats, args.long_window_visits = 10_000, 1, 11_000
    scenarios = args.only or ["speed", "drift", "long-window", "memory"]
    rows: list[dict] = []
    print(
        f"bench_extract: {', '.join(scenarios)}; ceiling {CEILING_VISITS_PER_SECOND:,.0f} visits/s",
        flush=True,
    )
    print(HEADER + "\n|---|---|---|---|---|---|---|---|---|---|", flush=True)
    started = time.monotonic()
    for name in scenarios:
        {
            "speed": scenario_speed,
            "drift": scenario_drift,
            "long-window": scenario_long_window,
            "memory": scenario_memory,
        }[name](args, rows)
    print(
        f"\n({time.monotonic() - started:.0f} s)\n\n" + HEADER + "\n|---|---|---|---|---|---|---|---|---|---|"
    )
    for row in rows:
        print(format_row(row))


if __name__ == "__main__":
    main()
