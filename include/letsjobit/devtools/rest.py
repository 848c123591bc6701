"""Airflow's public REST API (v2) as the devtools use it: sign in, trigger a DAG run, wait for it to end.

The token comes from the simple auth manager's `/auth/token`; every call names what it asked for in
its error (`DistributedRunError`), never the password or the token.
"""

from __future__ import annotations

import requests

from letsjobit.devtools.services import DistributedRunError

FINISHED_STATES = ("success", "failed")


class RestClient:
    """Airflow's public REST API (v2) with a token from the simple auth manager."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        response = self.session.post(
            f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.base_url}/api/v2{path}", timeout=30)

    def send(self, method: str, path: str, body: dict) -> dict:
        response = self.session.request(method, f"{self.base_url}/api/v2{path}", json=body, timeout=30)
        if response.status_code >= 400:
            raise DistributedRunError(
                f"{method} {path} answered {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def dag_parsed(self, dag_id: str) -> bool:
        """Whether the DAG is known; an error with the stack traces when the DAG folder failed to import."""
        if self.get(f"/dags/{dag_id}").status_code == 200:
            return True
        errors = self.get("/importErrors").json().get("import_errors", [])
        if errors:
            raise DistributedRunError(
                "the DAG folder has import errors:\n" + "\n".join(error["stack_trace"] for error in errors)
            )
        return False

    def trigger(self, dag_id: str, run_id: str, conf: dict, logical_date: str | None) -> str:
        """Unpause the DAG and start a run of it; the run id."""
        self.send("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        self.send(
            "POST",
            f"/dags/{dag_id}/dagRuns",
            {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf},
        )
        return run_id

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """The run's state once it has ended (success or failed), else None."""
        state = self.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        return state if state in FINISHED_STATES else None
