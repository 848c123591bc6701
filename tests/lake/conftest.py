"""Fixtures of the lake tests: the reference's own example visit, raw runs written as the extractor does,
runs staged and audited as the DAG does, a child process that dies on purpose, and a real S3 server on
loopback (moto's) holding a lake configured the way a deployment configures one (LETSJOBIT_LAKE_URL and
the AWS variables)."""

from __future__ import annotations

import copy
import gzip
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from letsjobit import config
from letsjobit.config import DataLayout
from letsjobit.lake import stage
from letsjobit.quality import audit

ROOT = Path(__file__).resolve().parents[2]

# The visit of the reference's "Get All Visits" example, verbatim (signature shortened as it is there).
REFERENCE_VISIT: dict[str, Any] = {
    "_id": "yKQhJZ9B7PTT85kWc",
    "driverId": "FEn9BJz93svSNPx7p",
    "name": "Liam",
    "date": "2020-03-31",
    "totalJobs": 1,
    "id": 10816703,
    "docType": "CALL OUT",
    "docNo": "H-017623",
    "serviceOrder": 3,
    "customer": "The Green Sleeve",
    "siteId": "30101308",
    "lat": 57.000000,
    "lng": -2.000000,
    "site": "The Green Sleeve",
    "address": "999 West High Street",
    "postCode": "AB51 3QR",
    "city": "INVERURIE",
    "obs": "Contact Info: The Green Sleeve, John: 01999999999 \r\n AQUARIUS TONE7/3 2001 - Side of the shop\r\n"
    "Access 9am - 5.30pm\r\nNo parking onsite ",
    "contactPerson": "John",
    "contactPhone": "01999999999",
    "emailMandatory": True,
    "priority": "3",
    "showItemsOnOrderSection": True,
    "hideEquipmentDetails": False,
    "hideDeliveryItemsSection": False,
    "signeeName": "John",
    "signeeEmail": "john@email.com",
    "subContractorIds": ["My Subcontractor"],
    "territory": "AB-Aberdeen",
    "useStartPauseStopStyleButtonsInJobs": True,
    "inMobileApp": True,
    "NPSMandatory": True,
    "precedencePriorityVisit": False,
    "closeVisitOnLastJobClose": False,
    "country": "GB",
    "companyId": "LPeaJNaLQT6RqcFdt",
    "time_windows": [{"earliest": 30600, "latest": 64800}],
    "required_skills": ["Plumber", "Hot water technician", "Installer"],
    "allowed_vehicles": [],
    "confirmClose": True,
    "inProgress": False,
    "closed": True,
    "skipped": False,
    "geocoding": None,
    "showDiscountAndBonusOnItemsOnOrder": False,
    "duration": 2100,
    "createdAt": "2020-03-09 15:48:17",
    "createdUser": "API",
    "hasChangesToSync": False,
    "modifieddAt": "2020-03-24 15:45:38",
    "modifyUser": "2pjP3L3S8JtZhLPoN",
    "servicing": False,
    "signeeRating": "5",
    "signature": "/9j/4AAQSkZJRgABAQEAAAAAA...",
    "appClientVersion": "1.7.163",
    "closeDate": "2020-03-24 15:45",
    "skippedReasonId": "",
}

# A line with every documented line field, and extraData entries with every documented attribute
# (the reference gives tables, not an example, for these).
REFERENCE_LINE: dict[str, Any] = {
    "actionItem": True,
    "allowRebrand": False,
    "brand": "Aquarius",
    "brandId": 12,
    "description": "Annual service",
    "hasBatch": False,
    "hasReturn": True,
    "id": 555001,
    "itemId": 987,
    "jobType": "repair",
    "location": "bar 2nd floor",
    "model": "TONE7/3",
    "modelId": 2001,
    "qty": 2,
    "serialNr": "SN-0001",
    "serialNrId": 77,
    "extraData": [
        {
            "type": "number",
            "caption": "Pressure (bar)",
            "description": "Read the gauge",
            "value": "1.5",
            "required": "required",
            "readonly": "",
            "max": 10,
            "min": 0,
            "name": "pressure",
            "pattern": "[0-9]+([\\.,][0-9]+)?",
            "step": 0.1,
        },
        {
            "type": "select",
            "caption": "Outcome",
            "value": "fixed",
            "options_values": "fixed | not fixed",
            "options_default": "fixed",
            "name": "outcome",
        },
    ],
}

FETCHED_AT = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)


def reference_visit(**changes: Any) -> dict[str, Any]:
    """A deep copy of the reference visit with one line, changed as asked (None values are kept)."""
    visit = copy.deepcopy(REFERENCE_VISIT)
    visit["lines"] = [copy.deepcopy(REFERENCE_LINE)]
    visit.update(changes)
    return visit


def raw_page(visits: list[Any], offset: int = 0, fetched_at: datetime = FETCHED_AT, data: Any = None) -> dict:
    """A raw page as the extractor writes it."""
    return {
        "offset": offset,
        "filters": {},
        "fetched_at": fetched_at.isoformat(),
        "body": {
            "meta": {
                "totalRecords": len(visits),
                "returnedRecords": len(visits),
                "remainingRecords": 0,
                "nextStart": offset + len(visits),
            },
            "data": visits if data is None else data,
        },
    }


def write_raw_part(layout: DataLayout, run_id: str, chunk: int | str, pages: list[dict]) -> Path:
    """Write pages to `raw/run_id=<run>/part-<chunk>.jsonl.gz` the way the extractor does."""
    path = layout.raw_part(run_id, chunk)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as out:
        for page in pages:
            out.write(orjson.dumps(page) + b"\n")
    return path


def visits_over_days(
    count: int, first_day: str = "2026-11-01", days: int = 3, prefix: str = "v"
) -> list[dict]:
    """`count` reference visits with distinct ids spread over `days` consecutive dates."""
    start = datetime.fromisoformat(first_day)
    return [
        reference_visit(_id=f"{prefix}{n:05d}", date=(start + timedelta(days=n % days)).date().isoformat())
        for n in range(count)
    ]


@pytest.fixture
def layout(tmp_path: Path) -> DataLayout:
    return DataLayout(tmp_path / "data")


def stage_pages(layout: DataLayout, run_id: str, visits: list[dict], per_page: int = 4, **options):
    """Write ``visits`` as one raw part of pages and stage the run."""
    pages = [raw_page(visits[n : n + per_page], offset=n) for n in range(0, len(visits), per_page)]
    write_raw_part(layout, run_id, "full", pages)
    return stage.stage_run(run_id, layout, workers=options.pop("workers", 1), **options)


def run_audit(layout: DataLayout, run_id: str) -> audit.AuditResult:
    """The validation gate, as the DAG runs it between stage and publish (not reconciled here)."""
    return audit.audit_run(run_id, layout, expected_visits=None)


def stage_and_audit(layout: DataLayout, run_id: str, visits: list[dict], **options):
    staged = stage_pages(layout, run_id, visits, **options)
    run_audit(layout, run_id)
    return staged


def die_in_child(script: str, *args) -> None:
    """Run ``script`` in a real child process that must die half-way (``os._exit(137)``, no cleanup)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        capture_output=True, text=True, env=env, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 137, done.stderr
    assert "finished" not in done.stdout


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 for the session, as `make scale-out` starts it: its endpoint URL."""
    from letsjobit.devtools.services import Processes, start_object_store

    processes = Processes(tmp_path_factory.mktemp("object-store"))
    try:
        yield start_object_store(processes, bucket="session").endpoint
    finally:
        processes.stop()


@pytest.fixture
def s3_layout(s3_endpoint, tmp_path, monkeypatch, request) -> DataLayout:
    """A bucket of its own and the layout `config.layout()` makes of LETSJOBIT_LAKE_URL=s3://<bucket>/lake
    with the AWS variables pointing at the server (scratch stays under the test's data dir)."""
    import boto3

    bucket = f"lake-{abs(hash(request.node.nodeid)) % 10**10}"
    variables = {
        "LETSJOBIT_DATA_DIR": str(tmp_path / "data"),
        "LETSJOBIT_LAKE_URL": f"s3://{bucket}/lake",
        "AWS_ACCESS_KEY_ID": "moto-test-key",
        "AWS_SECRET_ACCESS_KEY": "moto-test-secret-0f9e8d",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ALLOW_HTTP": "true",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return config.layout()
