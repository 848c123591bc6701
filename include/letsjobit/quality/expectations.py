"""The checks of ``suites.py`` as Great Expectations runs them on a run's staged tables.

``build_suite`` turns a table's checks (declared in ``suites.py`` as class name and arguments) into a GX
ExpectationSuite; ``batches`` makes each loaded table's pandas batch; ``run_suites`` validates each batch
against its suite in one ephemeral context and renders the run's Data Docs. GX 1.x has no cross-table
expectation for pandas batches, so ``derive_columns`` computes the lookups of the orphan checks as
boolean columns of the child table, and a plain expectation checks each. GX is imported inside
functions only: it takes seconds to import.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from letsjobit.lake import schema
from letsjobit.quality import issues, reports, suites
from letsjobit.quality.suites import Check

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from letsjobit.quality.staged import StagedTable


def suite_parameters(expected_visits: int | None, rows_flattened: Mapping[str, int] | None) -> dict[str, int]:
    """The suites' run parameters: the reconciliation targets for the staged rows."""
    parameters = {}
    if expected_visits is not None:
        parameters[suites.EXPECTED_VISITS] = expected_visits
    for name, rows in (rows_flattened or {}).items():
        if name in schema.TABLES:  # other counts (data_issues, say) are not reconciled here
            parameters[suites.rows_flattened_parameter(name)] = rows
    return parameters


def batches(tables: Sequence[StagedTable]) -> dict[str, pd.DataFrame]:
    """The pandas batch GX validates of each loaded table, kept as its ``frame``: the checked columns and
    the lookup columns of the cross-table checks."""
    derived = derive_columns(
        {t.name: t.loaded for t in tables},
        keys={t.name: t.key for t in tables},
        parent_keys={t.name: t.parent_key for t in tables if t.parent_key is not None},
    )
    for table in tables:
        # Dates as datetime64 rather than one Python object per row; fetched_at is evidence, not checked.
        table.frame = table.loaded.drop_columns(["fetched_at"]).to_pandas(
            date_as_object=False, split_blocks=True
        )
        for column, values in derived.get(table.name, {}).items():
            table.frame[column] = values
    return {t.name: t.frame for t in tables}


def derive_columns(
    tables: Mapping[str, pa.Table], keys: Mapping[str, pa.Array], parent_keys: Mapping[str, pa.Array]
) -> dict[str, dict[str, np.ndarray]]:
    """The lookup columns of the cross-table checks, per child table, from the loaded (arrow) tables.

    ``keys``: each table's row keys (``key_strings`` of its KEYS); ``parent_keys``: each child row's
    parent key.
    """
    derived: dict[str, dict[str, np.ndarray]] = {}
    for child, parent in suites.PARENTS.items():
        if child not in tables or parent not in tables:
            continue
        # Position of each child's parent row (the first, if duplicated: key_unique reports those).
        position = pc.index_in(parent_keys[child], value_set=keys[parent])
        exists = position.is_valid()
        if child == "visit_lines":
            own = tables[child].column(schema.PARTITION_COLUMN).combine_chunks()
            theirs = tables[parent].column(schema.PARTITION_COLUMN).combine_chunks().take(position)
            both_null = pc.and_(own.is_null(), theirs.is_null())
            same = pc.or_(pc.fill_null(pc.equal(own, theirs), False), both_null)
            # An orphan has no visit to compare with; the orphan check reports it.
            matches = pc.or_(same, pc.invert(exists))
            derived[child] = {
                suites.VISIT_EXISTS: exists.to_numpy(zero_copy_only=False),
                suites.VISIT_DATE_MATCHES_VISIT: matches.to_numpy(zero_copy_only=False),
            }
        else:
            derived[child] = {suites.LINE_EXISTS: exists.to_numpy(zero_copy_only=False)}
    return derived


def build_suite(table: str, parameters: Mapping[str, int]):
    """The GX ExpectationSuite of a table; checks whose run parameter is not given are left out."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    suite = gx.ExpectationSuite(name=table)
    for check in suites.SUITES[table]:
        if check.parameter and check.parameter not in parameters:
            continue
        kwargs = dict(check.kwargs)
        if check.when:
            column, value = check.when
            kwargs["row_condition"] = Column(column) == value
        expectation_class = getattr(gxe, check.expectation)
        suite.add_expectation(
            expectation_class(
                **kwargs,
                meta={"check": check.name, "severity": check.severity.value},
                notes=f"{check.name} ({_what_happens(check)}): {check.description}",
            )
        )
    return suite


def _what_happens(check: Check) -> str:
    if check.action is None:
        return f"{check.severity.value}: a failure fails the run"
    limit = "never fails the run" if check.threshold is None else f"fails the run above {check.threshold:.0%}"
    return f"{check.severity.value}: {check.action.value}, {limit}"


def import_gx():
    """Great Expectations, imported on first use (DAG parsing must not pay for it)."""
    # GX logs hundreds of INFO lines about its docs decorators while importing, and one per context.
    for noisy in ("great_expectations._docs_decorators", "great_expectations.datasource.fluent.config"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def run_suites(
    run_id: str, frames: Mapping[str, pd.DataFrame], parameters: Mapping[str, int], report_folder: Path
) -> tuple[dict[str, Any], Path | None]:
    """Validate each frame against its suite in one ephemeral context; build Data Docs; results by check."""
    if not frames:
        return {}, None
    gx = import_gx()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        ),
    )
    source = context.data_sources.add_pandas("staged")
    gx_run = RunIdentifier(run_name=run_id, run_time=dt.datetime.now(dt.UTC))
    results: dict[str, Any] = {}
    for name, frame in frames.items():
        suite = context.suites.add(build_suite(name, parameters))
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("run")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=name, data=batch, suite=suite)
        )
        validation = definition.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=dict(parameters),
            # COMPLETE: every unexpected row's index, which is what gets NULLed, kept or quarantined.
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": issues.SAMPLE_SIZE},
            run_id=gx_run,
        )
        for expectation in validation.results:
            results[expectation.expectation_config.meta["check"]] = expectation
    return results, reports.build_data_docs(context, report_folder)
