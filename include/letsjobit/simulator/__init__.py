"""The LetsJobIt API v2 simulator: a real HTTP server with deterministic data, rate limit, faults and drift.

    from letsjobit.simulator import SimulatorConfig, SimulatorServer
    with SimulatorServer(SimulatorConfig(visits=500, seed=7, anchor_date=date(2026, 11, 1))) as sim:
        requests.get(sim.base_url + "/visits", headers={"Authorization": f"Bearer {sim.api_key}"})

Run it on its own with ``python -m letsjobit.simulator --port 0`` (prints ``LISTENING <base_url>``).
"""

from .data import generate_visits, iter_visit_chunks
from .faults import FAULT_KINDS, FaultConfig
from .server import SimulatorServer
from .settings import SimulatorConfig
from .store import VisitStore

__all__ = [
    "FAULT_KINDS",
    "FaultConfig",
    "SimulatorConfig",
    "SimulatorServer",
    "VisitStore",
    "generate_visits",
    "iter_visit_chunks",
]
