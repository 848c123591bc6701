"""The hostname a Celery worker records on the task instances it runs.

Containers and machines have their own hostnames, so a real deployment does not need this. The
distributed run on one machine starts several workers on one host; pointing
``[core] hostname_callable`` here and giving each worker its own ``AIRFLOW_WORKER_NAME`` makes the
``task_instance.hostname`` column tell them apart, as it would on separate machines.
"""

from __future__ import annotations

import os
import socket

WORKER_NAME_VARIABLE = "AIRFLOW_WORKER_NAME"


def hostname() -> str:
    return os.environ.get(WORKER_NAME_VARIABLE) or socket.getfqdn()
