"""What readers get from the dbt project besides the warehouse: dbt's documentation site, and the
example analyses compiled to plain SQL. Both run dbt on a private file, never on the published one.
(``python -m letsjobit.warehouse.build docs`` and ``... analyses``.)"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from letsjobit import config, files
from letsjobit.warehouse import dbt_runner, project

log = logging.getLogger(__name__)


def compile_analyses(layout: config.DataLayout, project_dir: Path = project.PROJECT_DIR) -> list[Path]:
    """The example analyses (``sql/analyses``, dbt analyses: they ``ref()`` the marts) compiled to
    plain SQL under ``<data dir>/analyses``, for a reader with the DuckDB CLI or any client."""
    target = layout.root / "analyses"
    layout.root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".warehouse-analyses-", dir=layout.root))
    state = layout.state / "dbt-analyses"
    try:
        dbt_runner.run(
            workdir / layout.warehouse.name,
            state,
            command="compile",
            arguments=("--select", "resource_type:analysis"),
            project_dir=project_dir,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for source in project.analyses(project_dir):
        compiled = state / "target" / "compiled" / "letsjobit" / "analyses" / source.name
        written.append(target / source.name)
        files.write_text(written[-1], compiled.read_text())
    log.info("%d analyses compiled to %s", len(written), target)
    return written


def docs(layout: config.DataLayout, project_dir: Path = project.PROJECT_DIR) -> Path:
    """dbt's documentation site as one HTML file (``dbt docs generate --static``): every model, source,
    column and test, and the lineage graph. Column types come from the published warehouse when there
    is one (read from a copy: a reader never blocks a build), else from the yml contracts alone."""
    target = layout.root / "docs" / "warehouse.html"
    layout.root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".warehouse-docs-", dir=layout.root))
    try:
        database = workdir / layout.warehouse.name
        arguments = ["--static"]
        if layout.warehouse.exists():
            shutil.copyfile(layout.warehouse, database)
        else:
            arguments.append("--empty-catalog")
        state = layout.state / "dbt-docs"
        dbt_runner.run(
            database, state, command="docs generate", arguments=tuple(arguments), project_dir=project_dir
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        files.write_bytes(target, (state / "target" / "static_index.html").read_bytes())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    log.info("warehouse documentation written to %s", target)
    return target
