"""The docs are true: every command a reader can copy from README.md or docs/*.md works on this
repository as written, every link lands, every repository path exists, and the README stays a front door.

Commands come from the fenced ```bash, ```sh, ```shell and ```console blocks (in a console block, the
lines starting with ``$ ``). A ``make <target>`` line must name a target of the Makefile (``make -n``
succeeds); a ``python -m <module>`` line must name a module importable from this repository (its
``__main__`` for a package); a ``--help`` line is run for real; every other command is in ``NOT_RUN``
with the reason it is not run here. docs/reference/ holds the vendor's API reference, copied verbatim.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
WRITTEN_DOCS = DOCS
REFERENCE_DOCS = sorted((ROOT / "docs" / "reference").glob("*.md"))

README_MAX_LINES = 200
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
PYTHON_PROGRAMS = {"python", "python3", ".venv/bin/python"}
PROJECT_PACKAGES = ("letsjobit", "tests")  # modules that must come from this repository, not elsewhere

# Commands the docs show that this test does not run, each with the reason. Keyed by the command as
# written (continuation lines joined, comments dropped), so a new or changed command must be added here
# on purpose; an entry no doc shows any more fails test_not_run_lists_only_commands_the_docs_show.
NOT_RUN = {
    "airflow connections add letsjobit_default --conn-type letsjobit "
    '--conn-host https://app.letsjobit.com/api/v2 --conn-password "$KEY"': "needs an Airflow metadata DB",
    "airflow connections add letsjobit_default --conn-json "
    '\'{"conn_type": "letsjobit", "host": "https://app.letsjobit.com/api/v2", "password": "...", '
    '"extra": {"max_concurrency": 4}}\'': "needs an Airflow metadata DB",
    'export AIRFLOW_CONN_LETSJOBIT_DEFAULT=\'{"conn_type": "letsjobit", '
    '"host": "https://app.letsjobit.com/api/v2", "password": "..."}\'': "sets the environment of a shell",
    "airflow dags trigger letsjobit_visits --conf '{\"full_refresh\": true}'": "needs a running Airflow",
    "airflow backfill create --dag-id letsjobit_visits --from-date 2026-10-01 --to-date 2026-10-31 "
    '--dag-run-conf \'{"lookback_days": 0, "lookahead_days": 0}\' --max-active-runs 1': "needs a running Airflow",
    "cp .env.example .env": "writes the user's secrets file into the repository",
    "docker compose up -d": "needs Docker",
    "docker compose exec airflow-scheduler airflow dags unpause letsjobit_visits": "needs Docker",
    "docker compose exec airflow-scheduler airflow dags trigger letsjobit_visits "
    "--conf '{\"full_refresh\": true}'": "needs Docker",
    'export LETSJOBIT_ALERT_EMAILS="data-team@example.com, on-call@example.com"': "sets the environment of a shell",
    'export AIRFLOW_CONN_SMTP_DEFAULT=\'{"conn_type": "smtp", "host": "smtp.example.com", "port": 587,\n'
    '  "login": "airflow@example.com", "password": "...", "extra": {"from_email": "airflow@example.com", '
    '"disable_ssl": true}}\'': "sets the environment of a shell",
    'export AIRFLOW__OPENLINEAGE__TRANSPORT=\'{"type": "http", "url": "http://localhost:5000"}\'': (
        "sets the environment of a shell"
    ),
    'export AIRFLOW__OPENLINEAGE__TRANSPORT=\'{"type": "file", "log_file_path": "/tmp/ol.jsonl", '
    '"append": true}\'': "sets the environment of a shell",
    "export AIRFLOW__OPENLINEAGE__NAMESPACE=letsjobit-prod": "sets the environment of a shell",
    "docker run -d --name keycloak -p 127.0.0.1:8180:8080 "
    "-e KC_BOOTSTRAP_ADMIN_USERNAME=admin -e KC_BOOTSTRAP_ADMIN_PASSWORD=admin "
    "quay.io/keycloak/keycloak:26.0 start-dev": "needs Docker and the network",
    "cp .streamlit/secrets.toml.example .streamlit/secrets.toml": "writes the user's secrets file into the repository",
    ".venv/bin/duckdb -readonly data/warehouse.duckdb": "needs a built warehouse (make run)",
    ".venv/bin/duckdb -readonly data/warehouse.duckdb < data/analyses/skip_reasons_last_30_days.sql": (
        "needs a built warehouse (make run)"
    ),
    ".venv/bin/python bench/bench_extract.py": "a benchmark: about 8 minutes",
    ".venv/bin/python bench/bench_extract.py --quick": "a benchmark: minutes",
    ".venv/bin/python bench/bench_flatten.py --visits 1000000": "a benchmark: minutes and 1 GiB",
    ".venv/bin/python bench/bench_flatten.py --visits 1000000 --floor": "a benchmark: minutes and 1 GiB",
    ".venv/bin/python bench/bench_warehouse.py --visits 1000000 10000000": "a benchmark: about 15 minutes",
    ".venv/bin/python bench/bench_warehouse.py --visits 1000000 --repeat 3 --floor": "a benchmark: about 7 minutes",
    ".venv/bin/python bench/validate_bench.py --visits 10000 100000 1000000": "a benchmark: minutes",
    ".venv/bin/python bench/simulator_throughput.py": "a benchmark: starts servers and clients",
}

# Paths the docs name that are made at run time, not kept in the repository.
NOT_IN_REPOSITORY = {
    "tests/output/": "the browser test's screenshots",
    ".streamlit/secrets.toml": "the user's own secrets (ignored by git)",
}
REPOSITORY_ENTRIES = (
    "include/",
    "dags/",
    "plugins/",
    "sql/",
    "tests/",
    "bench/",
    "docs/",
    ".streamlit/",
    ".ci/",
)
REPOSITORY_FILES = (
    "Makefile", "Dockerfile", "docker-compose.yaml", ".env.example", "pyproject.toml",
    "requirements.in", "requirements.txt", "requirements-dashboard.in", "requirements-dashboard.txt",
    "requirements-dev.in", "requirements-dev.txt",
)  # fmt: skip


@dataclass(frozen=True)
class Command:
    doc: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def words(self) -> list[str]:
        """The command's words without the leading VAR=value assignments."""
        words = shlex.split(self.text, comments=True)
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words.pop(0)
        return words


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the first line inside the fence
    language: str
    lines: tuple[str, ...]


def fenced_blocks(doc: Path) -> list[Block]:
    """Every fenced code block of a markdown file, indented ones (inside list items) included."""
    blocks, lines = [], doc.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[index])
        if not opening:
            index += 1
            continue
        indent, fence, language = opening.groups()
        body, start = [], index + 1
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            body.append(lines[index][len(indent) :] if lines[index].startswith(indent) else lines[index])
            index += 1
        blocks.append(Block(doc, start + 1, language.lower(), tuple(body)))
        index += 1
    return blocks


def prose(doc: Path) -> str:
    """The file without its fenced code blocks (their lines blanked, so line numbers hold)."""
    lines = doc.read_text().splitlines()
    for block in fenced_blocks(doc):
        for number in range(block.line - 2, block.line + len(block.lines)):
            if 0 <= number < len(lines):
                lines[number] = ""
    return "\n".join(lines)


def _complete(text: str) -> bool:
    """A shell command is complete when its quotes close and its last line does not continue."""
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


def commands(doc: Path) -> list[Command]:
    found = []
    for block in fenced_blocks(doc):
        if block.language not in SHELL_LANGUAGES:
            continue
        pending: list[str] = []
        first = 0
        for offset, raw in enumerate(block.lines):
            line = raw.rstrip()
            if not pending:
                if block.language == "console":
                    if not line.startswith("$ "):
                        continue  # output
                    line = line[2:]
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                first = block.line + offset
            pending.append(line)
            text = "\n".join(pending)
            if _complete(text):
                joined = re.sub(r"\s*\\\n\s*", " ", text)  # continuation lines
                words_only = shlex.join(shlex.split(joined, comments=True))
                found.append(Command(doc, first, _without_comment(joined, words_only)))
                pending = []
        assert not pending, f"{doc.name}:{first}: unfinished command {pending!r}"
    return found


def _without_comment(text: str, words_only: str) -> str:
    """The command as written, minus a trailing `# comment` (kept verbatim otherwise)."""
    for match in re.finditer(r"\s#", text):
        candidate = text[: match.start()].rstrip()
        try:
            if shlex.join(shlex.split(candidate, comments=True)) == words_only:
                return candidate
        except ValueError:
            continue
    return text.strip()


INLINE_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
INLINE_COMMAND = re.compile(r"^(?:[A-Z_]+=\S+ )*(?:make |(?:\.venv/bin/)?python3? -m )")


def inline_commands(doc: Path) -> list[Command]:
    """`make ...` and `python -m ...` written inline in the prose (tables included)."""
    text = prose(doc)
    return [
        Command(doc, text.count("\n", 0, match.start()) + 1, match.group(2).strip())
        for match in INLINE_CODE.finditer(text)
        if INLINE_COMMAND.match(match.group(2).strip())
    ]


BLOCK_COMMANDS = [command for doc in WRITTEN_DOCS for command in commands(doc)]
ALL_COMMANDS = BLOCK_COMMANDS + [command for doc in WRITTEN_DOCS for command in inline_commands(doc)]


def is_make(command: Command) -> bool:
    return command.words[:1] == ["make"]


def python_module(command: Command) -> str | None:
    words = command.words
    if len(words) >= 3 and words[0] in PYTHON_PROGRAMS and words[1] == "-m":
        return words[2]
    return None


def is_help(command: Command) -> bool:
    return command.words[-1:] == ["--help"]


MAKE_COMMANDS = [command for command in ALL_COMMANDS if is_make(command)]
MODULE_COMMANDS = [command for command in ALL_COMMANDS if python_module(command)]
HELP_COMMANDS = [command for command in ALL_COMMANDS if is_help(command)]
OTHER_COMMANDS = [
    command for command in BLOCK_COMMANDS if not is_make(command) and not python_module(command)
]


def _ids(items: list[Command]) -> list[str]:
    return [f"{command.where} {command.text[:60]}" for command in items]


def make_targets(command: Command) -> list[str]:
    return [word for word in command.words[1:] if not word.startswith("-") and "=" not in word]


def project_environment() -> dict[str, str]:
    """This repository's package first: never a copy installed from another checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT)])}


PROBE = """
import importlib.util, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
        found[name] = spec.origin if spec is not None else None
        if spec is not None and spec.submodule_search_locations is not None:
            main = importlib.util.find_spec(name + ".__main__")
            found[name + ".__main__"] = main.origin if main is not None else None
    except Exception as error:  # a parent package that is missing or fails to import
        found[name] = f"error: {type(error).__name__}: {error}"
print(json.dumps(found))
"""


_origins: dict[str, str | None] = {}


def origins(names: list[str]) -> dict[str, str | None]:
    """Where each module would be imported from (None: nowhere), found in one child interpreter."""
    missing = sorted(set(names) - set(_origins))
    if missing:
        result = subprocess.run(
            [sys.executable, "-c", PROBE, *missing],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=project_environment(),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        _origins.update(json.loads(result.stdout.splitlines()[-1]))
    return _origins


def assert_importable_from_this_repository(name: str, what: str, *, runnable: bool = False) -> None:
    found = origins([name])
    origin = found.get(name)
    assert origin is not None, f"{what}: no module {name}"
    assert not origin.startswith("error:"), f"{what}: {name}: {origin}"
    if runnable and f"{name}.__main__" in found:
        origin = found[f"{name}.__main__"]
        assert origin is not None, f"{what}: {name} is a package without __main__, so python -m cannot run it"
    if name.split(".")[0] in PROJECT_PACKAGES:
        assert Path(origin).resolve().is_relative_to(ROOT), (
            f"{what}: {name} comes from {origin}, not this repository"
        )


# --- commands ----------------------------------------------------------------------------------------


def test_the_docs_show_commands_of_every_kind():
    assert MAKE_COMMANDS and MODULE_COMMANDS and OTHER_COMMANDS, "the command extraction found nothing"


def _make(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", *arguments], capture_output=True, text=True, timeout=30, cwd=ROOT,
        env={key: value for key, value in os.environ.items() if not key.startswith("MAKE")},
    )  # fmt: skip


_rules: set[str] = set()


def makefile_rules() -> set[str]:
    """The targets the Makefile has a rule for, from make's own database (built-in rules off).

    `make -n <target>` alone is not enough: for a target without a rule that names an existing file or
    folder (`make docs`, with docs/ present) make has "nothing to be done" and succeeds.
    """
    if not _rules:
        lines = _make("-pRrq").stdout.splitlines()
        for previous, line in zip(["", *lines], lines, strict=False):
            rule = re.match(r"^([A-Za-z0-9._/-]+):(?!=)", line)
            if rule and not previous.startswith("# Not a target"):
                _rules.add(rule.group(1))
    return _rules


@pytest.mark.parametrize("command", MAKE_COMMANDS, ids=_ids(MAKE_COMMANDS))
def test_every_make_command_names_a_target_of_the_makefile(command):
    targets = make_targets(command)
    assert targets, f"{command.where}: `{command.text}` names no target"
    for target in targets:
        assert target in makefile_rules(), f"{command.where}: the Makefile has no target {target}"
        result = _make("-n", target)
        assert result.returncode == 0, f"{command.where}: make -n {target}: {result.stderr.strip()}"


@pytest.mark.parametrize("command", MODULE_COMMANDS, ids=_ids(MODULE_COMMANDS))
def test_every_python_module_command_runs_a_module_of_this_repository(command):
    assert_importable_from_this_repository(python_module(command), command.where, runnable=True)


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=_ids(HELP_COMMANDS))
def test_every_help_command_runs(command):
    words = command.words
    program = sys.executable if words[0] in PYTHON_PROGRAMS else words[0]
    if program.startswith(".venv/bin/"):
        program = str(Path(sys.executable).parent / Path(program).name)
    result = subprocess.run(
        [program, *words[1:]], capture_output=True, text=True, timeout=60, cwd=ROOT, env=project_environment()
    )

    assert result.returncode == 0, f"{command.where}: `{command.text}` failed: {result.stderr[-2000:]}"
    assert "usage:" in result.stdout.lower(), f"{command.where}: `{command.text}` printed no usage"


@pytest.mark.parametrize("command", OTHER_COMMANDS, ids=_ids(OTHER_COMMANDS))
def test_every_other_command_is_run_or_listed_with_the_reason_it_is_not(command):
    if is_help(command):
        return  # run by test_every_help_command_runs

    assert command.text in NOT_RUN, (
        f"{command.where}: `{command.text}` is neither run by this test nor in NOT_RUN with a reason"
    )


def test_not_run_lists_only_commands_the_docs_show():
    shown = {command.text for command in ALL_COMMANDS}

    assert set(NOT_RUN) - shown == set(), "NOT_RUN names commands no doc shows any more"


SCRIPT_COMMANDS = [
    command
    for command in OTHER_COMMANDS
    if len(command.words) > 1 and command.words[0] in PYTHON_PROGRAMS and command.words[1].endswith(".py")
]


@pytest.mark.parametrize("command", SCRIPT_COMMANDS, ids=_ids(SCRIPT_COMMANDS))
def test_every_script_a_command_runs_exists(command):
    assert (ROOT / command.words[1]).is_file(), f"{command.where}: no script {command.words[1]}"


# --- Python examples ---------------------------------------------------------------------------------


def python_imports(doc: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the doc's ```python blocks (for `from X import name`, X)."""
    found = []
    for block in fenced_blocks(doc):
        if block.language != "python":
            continue
        tree = ast.parse("\n".join(block.lines))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(block.line + node.lineno - 1, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((block.line + node.lineno - 1, node.module))
    return found


PYTHON_IMPORTS = [(doc, line, name) for doc in WRITTEN_DOCS for line, name in python_imports(doc)]


@pytest.mark.parametrize(
    "doc, line, name",
    PYTHON_IMPORTS,
    ids=[f"{doc.relative_to(ROOT)}:{line} {name}" for doc, line, name in PYTHON_IMPORTS],
)
def test_every_import_in_a_python_example_resolves(doc, line, name):
    assert_importable_from_this_repository(name, f"{doc.relative_to(ROOT)}:{line}")


# --- links and paths ---------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[(?:[^\]]*)\]\(([^)\s]+)\)|^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def links(doc: Path) -> list[tuple[int, str]]:
    text = INLINE_CODE.sub(lambda match: " " * len(match.group(0)), prose(doc))
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(1) or match.group(2))
        for match in LINK.finditer(text)
    ]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    found, seen = set(), {}
    for line in prose(doc).splitlines():
        heading = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            found.add(f"{base}-{count}" if count else base)  # GitHub numbers repeated headings
            seen[base] = count + 1
    return found


LINKS = [(doc, line, target) for doc in DOCS for line, target in links(doc)]


def test_the_docs_link_to_each_other():
    assert len(LINKS) > 20


@pytest.mark.parametrize(
    "doc, line, target",
    LINKS,
    ids=[f"{doc.relative_to(ROOT)}:{line} {target}" for doc, line, target in LINKS],
)
def test_every_link_points_at_a_file_of_this_repository(doc, line, target):
    where = f"{doc.relative_to(ROOT)}:{line}"
    assert not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE), (
        f"{where}: {target} leaves the repository"
    )
    path_part, _, fragment = target.partition("#")
    path = (doc.parent / path_part).resolve() if path_part else doc
    assert path.is_relative_to(ROOT), f"{where}: {target} points outside the repository"
    assert path.exists(), f"{where}: {target} does not exist"
    if fragment and path.suffix == ".md":
        assert fragment in anchors(path), f"{where}: {path.name} has no heading #{fragment}"


def repository_paths(doc: Path) -> list[tuple[int, str]]:
    """Inline code that names a file or folder of the repository (no placeholders, no globs)."""
    text, found = prose(doc), []
    for match in INLINE_CODE.finditer(text):
        span = match.group(2).strip()
        if re.search(r"[<>*{}\s]|\.\.\.", span):
            continue
        if span.startswith(REPOSITORY_ENTRIES) or span in REPOSITORY_FILES:
            found.append((text.count("\n", 0, match.start()) + 1, span.split("#")[0].split(":")[0]))
    return found


PATHS = [(doc, line, path) for doc in DOCS for line, path in repository_paths(doc)]


@pytest.mark.parametrize(
    "doc, line, path", PATHS, ids=[f"{doc.relative_to(ROOT)}:{line} {path}" for doc, line, path in PATHS]
)
def test_every_repository_path_the_docs_name_exists(doc, line, path):
    if path in NOT_IN_REPOSITORY:
        return

    assert (ROOT / path).exists(), f"{doc.relative_to(ROOT)}:{line}: `{path}` does not exist"


# --- the README and what no doc may say ----------------------------------------------------------------


def test_the_readme_is_a_front_door_of_at_most_200_lines():
    lines = len(README.read_text().splitlines())

    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move the details into docs/"


def _layout_tree(doc: Path) -> tuple[str, ...]:
    text = doc.read_text()
    start = text.index("\n## Layout\n")
    block = next(block for block in fenced_blocks(doc) if text.count("\n", 0, start) + 1 < block.line)
    return block.lines


def test_the_readme_and_the_architecture_show_the_same_layout_tree():
    assert _layout_tree(README) == _layout_tree(ROOT / "docs" / "architecture.md")


def test_the_readme_defines_every_kpi_the_warehouse_computes():
    macros = re.findall(
        r"create or replace macro marts\.(\w+)\(", (ROOT / "sql" / "macros" / "kpis.sql").read_text()
    )
    readme = README.read_text()
    table = readme[readme.index("## KPIs") :]

    assert macros, "no KPI macro found in sql/macros/kpis.sql"
    assert [name for name in macros if f"| `{name}` |" not in table] == []


FORBIDDEN = {
    "include.letsjobit": re.compile(r"include\.letsjobit"),
    "plugins/letsjobit": re.compile(r"plugins/letsjobit"),
    "an issue number": re.compile(r"\bissues?\s*(?:no\.?\s*)?#?\d+|(?<![\w&/])#\d+\b", re.IGNORECASE),
}


@pytest.mark.parametrize(
    "doc",
    WRITTEN_DOCS + REFERENCE_DOCS,
    ids=[str(d.relative_to(ROOT)) for d in WRITTEN_DOCS + REFERENCE_DOCS],
)
def test_no_doc_names_the_old_layout_or_an_issue_number(doc):
    text = doc.read_text()
    found = {
        what: sorted({match.group(0) for match in pattern.finditer(text)})
        for what, pattern in FORBIDDEN.items()
        if pattern.search(text)
    }

    assert found == {}, f"{doc.relative_to(ROOT)} mentions {found}"


def test_the_warehouse_doc_links_every_example_analysis():
    """The analyses live in sql/analyses/ only; docs/warehouse.md links each instead of copying its SQL."""
    doc = ROOT / "docs" / "warehouse.md"
    linked = {(doc.parent / target).resolve() for _, target in links(doc)}
    analyses = sorted((ROOT / "sql" / "analyses").glob("*.sql"))

    assert analyses, "no analysis in sql/analyses/"
    assert [path.name for path in analyses if path.resolve() not in linked] == []
