"""The data dictionary (docs/data_dictionary.md), generated from the SQL models' headers, the macros'
comments and the analyses' questions; ``python -m letsjobit.warehouse.build dictionary`` writes it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from letsjobit import config, files
from letsjobit.warehouse.models import (
    BUILD_RELATIONS,
    column_docs,
    load_analyses,
    load_macros,
    load_models,
)

log = logging.getLogger(__name__)

DATA_DICTIONARY = config.PROJECT_ROOT / "docs" / "data_dictionary.md"


class DictionaryError(ValueError):
    """A model, macro or analysis lacks the documentation the dictionary needs."""


def analysis_sql(path: Path) -> str:
    """An analysis file's query, without its leading comment block."""
    lines = path.read_text().splitlines()
    while lines and (lines[0].startswith("--") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines).strip()


def analysis_question(path: Path) -> str:
    """An analysis file's leading comment: the question it answers."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("--"):
            break
        lines.append(line.removeprefix("--").strip())
    return " ".join(lines)


def render_data_dictionary(sql_dir: Path = config.SQL_DIR) -> str:
    """docs/data_dictionary.md: every relation and column, generated from the model headers."""
    models = load_models(sql_dir)
    out = [
        "# Data dictionary",
        "",
        "Generated from the headers of the SQL models in `sql/` by "
        "`python -m letsjobit.warehouse.build dictionary`; do not edit by hand "
        "(a test fails when this file is stale).",
        "",
        "Readers of `warehouse.duckdb` see `marts` (for analysis), `intermediate` (kept for incremental "
        "builds and debugging) and `build` (the runner's state). `staging` views read the lake and exist "
        "only during a build.",
        "",
    ]
    for layer in ("marts", "intermediate", "staging"):
        out += [f"## {layer}", ""]
        for model in sorted((m for m in models if m.layer == layer), key=lambda m: m.name):
            docs = column_docs(model, models)
            out += [
                f"### {model.relation}",
                "",
                model.summary[:1].upper() + model.summary[1:],
                "",
                f"- grain: {model.grain}",
                f"- key: `{', '.join(model.key)}`"
                + "".join(f" (`{column}` may be null)" for column in model.key_nullable),
                f"- materialized: {model.materialized}"
                + (f" (replaces `{model.replace_where}`)" if model.replace_where else ""),
                f"- source: `{model.path.relative_to(sql_dir.parent)}`",
                "",
            ]
            if model.description:
                out += [_unwrap(model.description), ""]
            out += ["| column | description |", "|---|---|"]
            out += [f"| `{column}` | {text} |" for column, text in docs.items()]
            out.append("")
    out += [
        "## macros",
        "",
        "Created in schema `marts` of the warehouse file by `sql/macros/*.sql`; call them like "
        "functions, e.g. `marts.nps(sum(promoters), sum(detractors), sum(rated_visits))` over "
        "`marts.kpi_daily` or `marts.fct_visit_measures`.",
        "",
        "| macro | definition | source |",
        "|---|---|---|",
    ]
    for path in load_macros(sql_dir):
        for signature, text in macro_docs(path):
            out.append(f"| `{signature}` | {text} | `{path.relative_to(sql_dir.parent)}` |")
    out += ["", "## build", ""]
    for relation, (summary, columns) in BUILD_RELATIONS.items():
        out += [f"### {relation}", "", summary, "", "| column | description |", "|---|---|"]
        out += [f"| `{column}` | {text} |" for column, text in columns.items()]
        out.append("")
    out += ["## analyses", ""]
    for path in load_analyses(sql_dir):
        out += [f"- `{path.relative_to(sql_dir.parent)}`: {analysis_question(path)}"]
    out.append("")
    return "\n".join(out)


_MACRO = re.compile(r"^create or replace macro ([a-z_]+\.[a-z_]+\([^)]*\))", re.MULTILINE)


def macro_docs(path: Path) -> list[tuple[str, str]]:
    """(signature, description) of each macro in a macro file: the comment block just above its
    ``create or replace macro``, without the leading ``name(...):`` that repeats the signature."""
    lines = path.read_text().splitlines()
    docs = []
    for number, line in enumerate(lines):
        match = _MACRO.match(line)
        if not match:
            continue
        comment: list[str] = []
        above = number - 1
        while above >= 0 and lines[above].startswith("--"):
            comment.insert(0, lines[above].removeprefix("--").strip())
            above -= 1
        text = " ".join(comment)
        signature = match.group(1)
        if ":" in text and text.split(":", 1)[0].replace(" ", "") == signature.replace(" ", ""):
            text = text.split(":", 1)[1].strip()
        if not text:
            raise DictionaryError(f"{path}: macro {signature} has no comment saying what it computes")
        docs.append((signature, text))
    return docs


def _unwrap(text: str) -> str:
    """Join a comment's wrapped lines into paragraphs (and keep '- ' list items on their own lines)."""
    paragraphs: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines: list[str] = []
        for line in block.splitlines():
            if line.startswith("- ") or not lines:
                lines.append(line.strip())
            else:
                lines[-1] += " " + line.strip()
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def write(path: Path = DATA_DICTIONARY) -> None:
    files.write_text(path, render_data_dictionary())
    log.info("wrote %s", path)
