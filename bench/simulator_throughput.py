"""How many requests per second the simulator serves on loopback (rate limit off), with keep-alive clients.

    .venv/bin/python bench/simulator_throughput.py --visits 20000 --clients 4 --seconds 5 [--latency-ms 0]

The simulator runs in its own process (the CLI), the clients in others, so neither measures the other's
GIL. Each client pages through the whole list with one requests.Session and reads every body; it does not
parse the JSON (that is the client's cost, not the server's). Prints one line per setting.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import psutil
import requests
from letsjobit.simulator.process import simulator_process

KEY = "bench-key-not-secret"


def client(base_url: str, seconds: float, total_pages: int, offset: int, results) -> None:
    session = requests.Session()
    headers = {"Authorization": f"Bearer {KEY}"}
    done = bytes_read = 0
    page = offset
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        answer = session.get(
            f"{base_url}/visits",
            params={"pagination": (page % total_pages) * 100},
            headers=headers,
            timeout=30,
        )
        answer.raise_for_status()
        bytes_read += len(answer.content)
        done += 1
        page += 1
    results.put((done, bytes_read))


def run(visits: int, clients: int, seconds: float, latency_ms: float) -> None:
    settings = ["--visits", str(visits), "--rate-limit", "0", "--latency-ms", str(latency_ms)]
    with simulator_process(*settings, "--anchor-date", "2026-11-01", api_key=KEY) as sim:
        results = multiprocessing.Queue()
        pages = max(1, -(-visits // 100))
        workers = [
            multiprocessing.Process(target=client, args=(sim.base_url, seconds, pages, i * 7, results))
            for i in range(clients)
        ]
        server_cpu = psutil.Process(sim.process.pid)
        cpu_before = sum(server_cpu.cpu_times()[:2])
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        totals = [results.get() for _ in workers]
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        server_cpu_seconds = sum(server_cpu.cpu_times()[:2]) - cpu_before
    requests_done = sum(t[0] for t in totals)
    megabytes = sum(t[1] for t in totals) / 1e6
    print(
        f"visits={visits:>7} clients={clients} latency={latency_ms:>5.0f} ms  "
        f"{requests_done / elapsed:8.1f} requests/s  {requests_done * 100 / elapsed:9.0f} visits/s  "
        f"{megabytes / elapsed:6.1f} MB/s  server CPU {1000 * server_cpu_seconds / max(1, requests_done):.2f} ms/request",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--visits", type=int, default=20000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0])
    args = parser.parse_args()
    for latency in args.latency_ms:
        for clients in args.clients:
            run(args.visits, clients, args.seconds, latency)


if __name__ == "__main__":
    main()
