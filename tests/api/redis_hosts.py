"""What the rate budget's Redis tests run in processes of their own, as hosts would: kept light to import,
because each process is a fresh interpreter (spawn)."""

from __future__ import annotations

import random
import threading
import time

from letsjobit.api.ratelimit import RateBudget
from letsjobit.api.ratelimit_redis import RedisStore

LIMIT, WINDOW = 10, 1.0


def redis_budget(url: str, name: str = "rate-budget-test", **options) -> RateBudget:
    limit, window = options.pop("limit", LIMIT), options.pop("window", WINDOW)
    store = RedisStore(url, name, keep_seconds=60, reconnects=options.pop("reconnects", 1))
    return RateBudget(limit, window, margin_seconds=0.02, store=store, **options)


def host_requests(url: str, names: list[str], threads: int, per_thread: int, ready, results) -> None:
    """One host: for each budget name, its own budget and ``threads`` threads each making ``per_thread``
    requests of 0-30 ms, all started once every host is ready; puts ``{name: start times}`` on ``results``.
    """
    starts: dict[str, list[float]] = {name: [] for name in names}

    def work(budget: RateBudget, name: str) -> None:
        for _ in range(per_thread):
            slot = budget.acquire()
            starts[name].append(time.time())
            time.sleep(random.uniform(0, 0.03))  # the request on the wire
            budget.release(slot)

    budgets = {name: redis_budget(url, name) for name in names}
    workers = [
        threading.Thread(target=work, args=(budget, name))
        for name, budget in budgets.items()
        for _ in range(threads)
    ]
    ready.wait()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(starts)


def hold_slots_until_killed(url: str, count: int, held) -> None:
    budget = redis_budget(url)
    for _ in range(count):
        budget.acquire()  # never released: this process dies with its requests in flight
    held.set()
    time.sleep(60)
