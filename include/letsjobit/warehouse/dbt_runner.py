"""Run the dbt project in ``sql/`` on one DuckDB file, in this process, through dbt's Python runner.

``run(database, state_dir, ...)`` writes the profile (the file to build, DuckDB settings, threads),
runs ``dbt build`` (every model, then its tests, in dependency order) and returns what each node did;
a failed model or test raises :class:`DbtBuildError` naming it and dbt's message.

dbt's target folder (its manifest and partial-parse state) and logs live under ``state_dir``, not in
the project, so the project can be read-only (an image) and a second build in the same place re-parses
only what changed. The profile is the same from build to build (the build file's path is fixed by
the runner), because a change to it makes dbt parse the whole project again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from letsjobit import files
from letsjobit.warehouse import project

log = logging.getLogger(__name__)

PROFILE = "letsjobit"


class DbtBuildError(RuntimeError):
    """dbt could not build the warehouse; the message names the failing models and tests."""


@dataclass(frozen=True)
class NodeResult:
    name: str
    resource_type: str  # model, test, ...
    status: str
    seconds: float
    message: str | None


def profile(database: Path, spill_dir: Path, threads: int, memory_limit: str | None) -> dict[str, Any]:
    # The database's options, given when dbt-duckdb opens it (config_options), not as its `settings`,
    # which it SETs again on every cursor: DuckDB refuses to set temp_directory once a query spilled
    # there, so a build that spilled (10M visits under a memory limit) failed at its next model.
    options: dict[str, Any] = {
        # Row order in a table is no contract here, and not keeping it makes large builds faster.
        "preserve_insertion_order": False,
        "temp_directory": str(spill_dir),
        # The build file is private until the runner fsyncs and publishes it, and a build that crashes
        # is thrown away: syncing each of dbt's many small commits to disk buys nothing (~1.5 s a build).
        "fsync_mode": "NONE",
        # A checkpoint after an incremental model's delete would rewrite ("vacuum") every row group the
        # delete touched: 1.2 s for fct_visits when a window run replaces 22 days of 1M visits, more
        # than the model itself. The runner rewrites a table once half its stored rows are deleted ones
        # instead (build._compact).
        "max_vacuum_tasks": 0,
    }
    if memory_limit:
        options["memory_limit"] = memory_limit
    # Every model reading the lake binds the same parquet footers again; read each one once. (A
    # setting: the parquet extension it needs is loaded after the database opens.)
    settings = {"parquet_metadata_cache": True}
    return {
        PROFILE: {
            "target": "build",
            "outputs": {
                "build": {
                    "type": "duckdb",
                    "path": str(database),
                    "schema": "main",
                    "threads": threads,
                    "config_options": options,
                    "settings": settings,
                }
            },
        }
    }


def run(
    database: Path,
    state_dir: Path,
    *,
    command: str = "build",  # or "compile", "docs generate", ...
    arguments: tuple[str, ...] = (),
    threads: int | None = None,
    memory_limit: str | None = None,
    project_dir: Path = project.PROJECT_DIR,
) -> list[NodeResult]:
    """``dbt <command>`` on ``database``; raises DbtBuildError when a node fails."""
    from dbt.cli.main import dbtRunner  # dbt takes seconds to import; only a build needs it

    state_dir.mkdir(parents=True, exist_ok=True)
    spill = database.parent / "spill"
    spill.mkdir(exist_ok=True)
    threads = threads or 1
    files.write_text(
        state_dir / "profiles.yml",
        yaml.safe_dump(profile(database, spill, threads, memory_limit), sort_keys=False),
    )
    common = [
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        str(state_dir),
        "--target-path",
        str(state_dir / "target"),
        "--log-path",
        str(state_dir / "logs"),
        "--no-version-check",
        "--no-send-anonymous-usage-stats",
    ]
    # A build writes no manifest.json (the whole project as JSON, ~0.3 s a build, and the parse that
    # made it is cached here); run_results.json is written below, for whoever debugs a build.
    no_manifest = ["--no-write-json"] if command == "build" else []
    args = [*command.split(), *common, *no_manifest, *arguments]
    manifest = _manifest(common, project_dir, database)
    if command == "parse":  # what every other command starts with, once per process and project version
        return []
    log.info("dbt %s on %s", command, database)
    _forget_compilation(manifest)
    try:
        outcome = dbtRunner(manifest=manifest).invoke(args)
    finally:
        _close_database()
    if no_manifest and outcome.result is not None and hasattr(outcome.result, "write"):
        outcome.result.write(str(state_dir / "target" / "run_results.json"))
    raw = list(getattr(outcome.result, "results", None) or ())
    results = [_node_result(result) for result in raw]
    failed = [node for node in results if node.status in ("error", "fail", "runtime error")]
    if failed or not outcome.success:
        examples = _failing_rows(database, [result for result in raw if result.status == "fail"])
        details = "; ".join(
            f"{node.resource_type} {node.name} {node.status}: {node.message}"
            + (f", e.g. {examples[node.name]}" if node.name in examples else "")
            for node in failed
        )
        raise DbtBuildError(
            f"dbt {command} failed: {details or outcome.exception or 'see the dbt log above'}"
        ) from outcome.exception
    return results


# The parsed project, by project folder, content digest and database name: parsing costs seconds, and
# a process that builds more than once (the tests, the benchmark, a long-lived worker) parses each
# version once. The parse names every relation after the database (dbt-duckdb: the file's stem), so a
# manifest parsed for another file name would point the build at a database that is not there.
_MANIFESTS: dict[tuple[str, str, str], Any] = {}


def _manifest(common: list[str], project_dir: Path, database: Path) -> Any:
    from dbt.cli.main import dbtRunner

    key = (str(project_dir), project.digest(project_dir), database.stem)
    if key not in _MANIFESTS:
        outcome = dbtRunner().invoke(["parse", *common])
        if not outcome.success:
            raise DbtBuildError(f"dbt could not parse the project {project_dir}: {outcome.exception}")
        _MANIFESTS.clear()
        _MANIFESTS[key] = outcome.result
    return _MANIFESTS[key]


def _forget_compilation(manifest: Any) -> None:
    """Let dbt compile the cached manifest's nodes as if for the first time.

    dbt marks a node whose ephemeral models (the staging layer) it has inlined as CTEs, and skips the
    inlining when it compiles a marked node again: in a second invocation on the same manifest the
    model's SQL would name a CTE that is not there."""
    for node in manifest.nodes.values():
        if hasattr(node, "extra_ctes_injected"):
            node.extra_ctes_injected = False
            node.extra_ctes = []
            node.compiled = False


def _failing_rows(database: Path, failures: list[Any], limit: int = 5) -> dict[str, list[tuple]]:
    """Up to ``limit`` rows each failed test found (its query returns the offending rows), so the
    error names the records at fault rather than a count."""
    import duckdb

    examples: dict[str, list[tuple]] = {}
    if not failures:
        return examples
    connection = duckdb.connect(str(database), read_only=True)
    try:
        for failure in failures:
            sql = getattr(failure.node, "compiled_code", None)
            if sql:
                try:
                    examples[failure.node.name] = connection.execute(
                        f"select * from ({sql}) as failing limit {limit}"
                    ).fetchall()
                except duckdb.Error as error:
                    log.warning("could not re-run failed test %s: %s", failure.node.name, error)
    finally:
        connection.close()
    return examples


def _close_database() -> None:
    """dbt-duckdb keeps its DuckDB instance open after an invocation, for the next one in this
    process; the runner reopens the file itself and publishes it, so the file must be closed now."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None


def _node_result(result: Any) -> NodeResult:
    node = result.node
    return NodeResult(
        name=node.name,
        resource_type=str(node.resource_type),
        status=str(result.status),
        seconds=round(result.execution_time or 0.0, 3),
        message=result.message,
    )
