"""Run the simulator CLI as a child process and wait for its ``LISTENING <base_url>`` line.

For code that needs the simulator in another process (the demo, benchmarks, multi-process tests):

    with simulator_process("--visits", "3000", "--seed", "42", api_key=key) as sim:
        sim.base_url   # http://127.0.0.1:PORT/api/v2
        sim.root_url   # http://127.0.0.1:PORT (admin endpoints under /_sim)

The key travels in the child's environment (``LETSJOBIT_API_KEY``), never on its command line. The child
is stopped with SIGTERM (SIGKILL after ``stop_timeout``) when the block ends, even on errors.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from letsjobit import config

LISTENING = "LISTENING "


@dataclass(frozen=True)
class SimulatorProcess:
    process: subprocess.Popen
    base_url: str

    @property
    def root_url(self) -> str:
        return self.base_url.removesuffix("/api/v2")


@contextlib.contextmanager
def simulator_process(
    *args: str,
    api_key: str | None = None,
    stderr=None,
    stop_timeout: float = 10.0,
) -> Iterator[SimulatorProcess]:
    """Start ``python -m letsjobit.simulator --port 0 *args``; yields once it accepts connections."""
    env = dict(os.environ)
    if api_key is not None:
        env["LETSJOBIT_API_KEY"] = api_key
    command = [sys.executable, "-m", "letsjobit.simulator", "--port", "0", *args]
    process = subprocess.Popen(
        command, cwd=config.PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    try:
        line = process.stdout.readline().strip() if process.stdout else ""
        if not line.startswith(LISTENING):
            raise RuntimeError(
                f"the simulator did not start: it printed {line!r}, exit code {process.poll()}"
            )
        yield SimulatorProcess(process, line[len(LISTENING) :])
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
