"""Command line: ``python -m letsjobit.simulator --port 0 --visits N --seed S ...``.

Prints exactly one line ``LISTENING <base_url>`` on stdout once it accepts connections, then serves until
SIGTERM or SIGINT. The API key comes from ``LETSJOBIT_API_KEY`` (or the simulator's default key), so it
never shows in a process listing; ``--api-key-file`` reads extra keys, one per line.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from datetime import date
from pathlib import Path

from letsjobit import config as project_config

from .auth import KEY_PLACEMENTS
from .bad_record_kinds import BAD_RECORD_KIND_NAMES, select_kinds
from .faults import FaultConfig
from .ratelimit import MODES
from .reads import SINGLE_VISIT_SHAPES
from .server import SimulatorServer
from .settings import SimulatorConfig
from .store import INSERT_POSITIONS


def _kind_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    try:
        return tuple(kind.name for kind in select_kinds(names))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SimulatorConfig()
    parser = argparse.ArgumentParser(
        prog="python -m letsjobit.simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=defaults.host, help="bind address (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--visits", type=int, default=defaults.visits)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--anchor-date",
        type=date.fromisoformat,
        default=None,
        help="YYYY-MM-DD the data is centred on (default: today, UTC)",
    )
    parser.add_argument("--days", type=int, default=defaults.days, help="days of history before the anchor")
    parser.add_argument("--days-ahead", type=int, default=defaults.days_ahead, help="days scheduled after it")
    parser.add_argument(
        "--bad-record-rate", type=float, default=0.0, help="share of visits with one deliberately bad value"
    )
    parser.add_argument(
        "--bad-record-kinds",
        type=_kind_names,
        default=None,
        metavar="KIND[,KIND...]",
        help=f"the bad record kinds to draw from (default: all): {', '.join(BAD_RECORD_KIND_NAMES)}",
    )
    parser.add_argument(
        "--unknown-field-rate",
        type=float,
        default=0.0,
        help="share of visits, lines and extraData entries with a field the reference does not list",
    )
    parser.add_argument("--api-key-file", type=Path, help="file with extra accepted keys, one per line")
    parser.add_argument("--page-size", type=int, default=defaults.page_size)
    parser.add_argument(
        "--rate-limit", type=int, default=defaults.rate_limit, help="requests per window; 0: off"
    )
    parser.add_argument("--rate-window", type=float, default=defaults.rate_window_seconds, help="seconds")
    parser.add_argument("--rate-mode", choices=MODES, default=defaults.rate_limit_mode)
    parser.add_argument("--count-rejected", action="store_true", help="429 answers count toward the window")
    parser.add_argument("--fractional-reset", action="store_true", help="X-Rate-Limit-Reset with decimals")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--insert-position", choices=INSERT_POSITIONS, default=defaults.insert_position)
    parser.add_argument(
        "--single-visit-shape", choices=SINGLE_VISIT_SHAPES, default=defaults.single_visit_shape
    )
    parser.add_argument(
        "--key-placement",
        choices=KEY_PLACEMENTS,
        default=defaults.key_placement,
        help="where the key is accepted: any (default), only the Authorization header, only the query string",
    )
    parser.add_argument(
        "--faults",
        type=json.loads,
        default={},
        help='fault settings as JSON, e.g. \'{"error_rate": 0.05, "seed": 1}\'',
    )
    parser.add_argument(
        "--admin-from-anywhere",
        action="store_true",
        help="let non-loopback clients use /_sim/* (e.g. inside a compose network)",
    )
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    keys = [project_config.api_key()]
    if args.api_key_file:
        keys += [line.strip() for line in args.api_key_file.read_text().splitlines() if line.strip()]
    sim = SimulatorServer(
        SimulatorConfig(
            visits=args.visits,
            seed=args.seed,
            anchor_date=args.anchor_date,
            days=args.days,
            days_ahead=args.days_ahead,
            bad_record_rate=args.bad_record_rate,
            bad_record_kinds=args.bad_record_kinds,
            unknown_field_rate=args.unknown_field_rate,
            api_keys=tuple(dict.fromkeys(keys)),
            host=args.host,
            port=args.port,
            page_size=args.page_size,
            rate_limit=args.rate_limit,
            rate_window_seconds=args.rate_window,
            rate_limit_mode=args.rate_mode,
            count_rejected=args.count_rejected,
            fractional_reset=args.fractional_reset,
            latency_ms=args.latency_ms,
            insert_position=args.insert_position,
            single_visit_shape=args.single_visit_shape,
            key_placement=args.key_placement,
            admin_from_anywhere=args.admin_from_anywhere,
            faults=FaultConfig.from_dict(args.faults),
        )
    )
    stopping = threading.Event()

    def stop(signum, frame) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sim.start()
    sys.stdout.write(f"LISTENING {sim.base_url}\n")
    sys.stdout.flush()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
