"""What the simulator can be told: ``SimulatorConfig`` (at start) and ``RUNTIME_SETTINGS`` (changeable later)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from letsjobit import config as project_config

from . import data
from .auth import KEY_PLACEMENTS
from .bad_record_kinds import select_kinds
from .faults import FaultConfig
from .ratelimit import MODES
from .reads import SINGLE_VISIT_SHAPES
from .store import INSERT_POSITIONS


@dataclass
class SimulatorConfig:
    """Everything the simulator can be told at start; all but the data can change at run time."""

    visits: int = 500
    seed: int = 7
    anchor_date: date | None = None  # None: today (UTC), so scheduled windows find data
    days: int = data.DEFAULT_DAYS  # history before the anchor date
    days_ahead: int = data.DEFAULT_DAYS_AHEAD  # schedule after it
    bad_record_rate: float = 0.0  # share of visits with one deliberately bad value (data-quality tests)
    bad_record_kinds: tuple[str, ...] | None = None  # names of BAD_RECORD_KINDS to draw from; None: all
    unknown_field_rate: float = 0.0  # share of visits, lines, extraData entries with an undocumented field
    api_keys: tuple[str, ...] = (project_config.SIMULATOR_DEFAULT_KEY,)
    host: str = "127.0.0.1"
    port: int = 0
    page_size: int = project_config.PAGE_SIZE
    rate_limit: int = project_config.RATE_LIMIT_REQUESTS  # per key per window; 0 disables
    rate_window_seconds: float = project_config.RATE_LIMIT_WINDOW_SECONDS
    rate_limit_mode: str = "fixed"  # or "sliding"
    count_rejected: bool = False  # do 429 answers of the limiter count toward the window?
    fractional_reset: bool = False  # X-Rate-Limit-Reset as "2.315" instead of the integer ceiling
    latency_ms: float = 0.0  # added to every API answer; requests in flight overlap
    insert_position: str = "end"  # where new visits go: end, start, random
    single_visit_shape: str = "list"  # GET /visits/{ID}: "data": [visit] (like the list) or the object
    key_placement: str = "any"  # "header" ignores a key in the query string; "query" ignores the header
    admin_from_anywhere: bool = False  # admin endpoints answer non-loopback clients too
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if isinstance(self.api_keys, str):
            self.api_keys = (self.api_keys,)
        self.api_keys = tuple(self.api_keys)
        if not self.api_keys or not all(self.api_keys):
            raise ValueError("api_keys must hold at least one non-empty key")
        if self.rate_limit_mode not in MODES:
            raise ValueError(f"rate_limit_mode must be one of {MODES}, got {self.rate_limit_mode!r}")
        if self.insert_position not in INSERT_POSITIONS:
            raise ValueError(
                f"insert_position must be one of {INSERT_POSITIONS}, got {self.insert_position!r}"
            )
        if self.single_visit_shape not in SINGLE_VISIT_SHAPES:
            raise ValueError(
                f"single_visit_shape must be one of {SINGLE_VISIT_SHAPES}, got {self.single_visit_shape!r}"
            )
        if self.key_placement not in KEY_PLACEMENTS:
            raise ValueError(f"key_placement must be one of {KEY_PLACEMENTS}, got {self.key_placement!r}")
        if self.page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {self.page_size}")
        if isinstance(self.faults, dict):
            self.faults = FaultConfig.from_dict(self.faults)
        for name in ("bad_record_rate", "unknown_field_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.bad_record_kinds is not None:
            self.bad_record_kinds = tuple(kind.name for kind in select_kinds(self.bad_record_kinds))


# Settings that POST /_sim/config and SimulatorServer.configure() may change at run time.
RUNTIME_SETTINGS = (
    "rate_limit",
    "rate_window_seconds",
    "rate_limit_mode",
    "count_rejected",
    "fractional_reset",
    "latency_ms",
    "insert_position",
    "single_visit_shape",
    "page_size",
    "key_placement",
)
