"""Independent re-statements of the reference's rules, to check the simulator against its ground truth."""

from __future__ import annotations

import requests

TRUE_VALUES = (True, 1, "1", "true")


def is_true(value) -> bool:
    return value in TRUE_VALUES and value is not False


def get(
    sim, path: str = "/visits", params: dict | None = None, session: requests.Session | None = None, **kwargs
) -> requests.Response:
    caller = session or requests
    headers = {"Authorization": f"Bearer {sim.api_key}"}
    return caller.get(sim.base_url + path, params=params, headers=headers, timeout=10, **kwargs)


def fetch_all(
    sim, params: dict | None = None, session: requests.Session | None = None
) -> tuple[list[dict], list[dict]]:
    """(every visit, every page's meta) by following nextStart until remainingRecords is 0."""
    visits, metas, start = [], [], 0
    session = session or requests.Session()
    while True:
        answer = get(sim, params={**(params or {}), "pagination": start}, session=session)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        visits += body["data"]
        metas.append(body["meta"])
        if body["meta"]["remainingRecords"] == 0:
            return visits, metas
        start = body["meta"]["nextStart"]
