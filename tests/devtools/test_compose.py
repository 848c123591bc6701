"""docker-compose.yaml, Dockerfile and .env.example, checked without a Docker engine.

The file parses, every service runs a command that exists (Airflow 3's own CLI parser judges the Airflow
ones), the mounts and variables line up with what the code reads, secrets have no defaults, the Airflow
image is the official one of the pinned Airflow version with the runtime set only, and the dashboard has
its own image with the dashboard set and no Airflow. The sets themselves: test_requirements.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
from letsjobit import config

from .compose import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    PROJECT_ROOT,
    MissingVariable,
    command_argv,
    dockerfile_instructions,
    dockerfile_stages,
    interpolate,
    load_compose,
    read_env_file,
    variables_used,
)
from .requirement_sets import DASHBOARD, RUNTIME

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
    "flower": "celery flower",
}
# Inside the official image AIRFLOW_HOME is /opt/airflow; the project root is laid over it.
CONTAINER_ROOT = PurePosixPath("/opt/airflow")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|API_KEY|PSEUDONYMISE_KEY|^AIRFLOW_CONN_")
DUMMY_SECRETS = {
    "POSTGRES_PASSWORD": "pg-test",
    "AIRFLOW__CORE__FERNET_KEY": "Mt3ZQ9aXG3j2_HFQOAuZ4eQSdJrB0pGSySw3q1ovAys=",
    "AIRFLOW__API_AUTH__JWT_SECRET": "jwt-test",
    "AIRFLOW__API__SECRET_KEY": "secret-test",
    "_AIRFLOW_WWW_USER_PASSWORD": "admin-test",
}


@pytest.fixture(scope="module")
def raw() -> dict:
    return load_compose()


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file()


@pytest.fixture(scope="module")
def services(raw, env_example) -> dict[str, dict]:
    """Services as compose sees them with .env.example plus the secrets a user fills in."""
    return interpolate(raw, {**env_example, **DUMMY_SECRETS})["services"]


def pinned(name: str, requirement_set=RUNTIME) -> str:
    version = requirement_set.locked().get(name)
    assert version, f"{name} is not pinned in {requirement_set.lock.name}"
    return version


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source (a host path or a named volume), without the mode suffix."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def environment(service: dict) -> dict[str, str]:
    return {name: str(value) for name, value in (service.get("environment") or {}).items()}


def test_compose_file_has_the_official_airflow_3_services_and_the_pipelines_own(raw):
    assert set(raw["services"]) >= {
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
        "letsjobit-simulator",
        "dashboard",
    }
    common = raw["x-airflow-common"]["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert all("healthcheck" in raw["services"][name] for name in ("postgres", "redis", "airflow-worker"))


def test_every_airflow_command_parses_with_airflow_3s_own_cli(services, tmp_path):
    commands = {name: command_argv(services[name]["command"]) for name in AIRFLOW_SERVICES}
    expected = {**AIRFLOW_SERVICES, "airflow-worker": "celery worker --queues default"}
    assert {name: " ".join(argv) for name, argv in commands.items()} == expected
    # The init script and the healthchecks run `airflow ...` lines too.
    script = services["airflow-init"]["command"][-1]
    for line in script.splitlines():
        if line.strip().startswith("airflow "):
            commands[f"airflow-init: {line.strip()}"] = command_argv(line)[1:]
    for name, service in services.items():
        test = (service.get("healthcheck") or {}).get("test", [])
        if test[:1] == ["CMD-SHELL"] and test[1].startswith("airflow "):
            commands[f"{name} healthcheck"] = command_argv(test[1].replace("${HOSTNAME}", "host"))[1:]
    assert "airflow-init: airflow db migrate" in commands

    verdicts = parse_with_airflow_cli(
        list(commands.values()), environment(services["airflow-scheduler"]), tmp_path
    )

    rejected = {
        name: verdicts[" ".join(argv)] for name, argv in commands.items() if verdicts[" ".join(argv)] != "ok"
    }
    assert rejected == {}


def test_worker_healthcheck_names_the_celery_app_airflow_runs(services, tmp_path):
    test = services["airflow-worker"]["healthcheck"]["test"][1]
    app = re.search(r"--app (\S+)", test)[1]
    verdict = import_in_airflow(app, environment(services["airflow-worker"]), tmp_path)
    assert verdict == "Celery"


def test_python_services_run_modules_that_exist_with_arguments_they_accept(services):
    from letsjobit.devtools import bootstrap
    from letsjobit.simulator.__main__ import parse_args as simulator_args

    simulator = command_argv(services["letsjobit-simulator"]["command"])
    assert simulator[:3] == ["python", "-m", "letsjobit.simulator"]
    parsed = simulator_args(simulator[3:])
    assert (parsed.host, parsed.port) == ("0.0.0.0", 8000)  # noqa: S104 - inside its container
    assert services["airflow-init"]["environment"]["LETSJOBIT_API_URL"].startswith(
        "http://letsjobit-simulator:8000/"
    )

    # The init script's bootstrap line, with bash's expansion of the service's own environment.
    init_env = environment(services["airflow-init"])
    script = services["airflow-init"]["command"][-1].replace("\\\n", " ")
    line = next(line for line in script.splitlines() if "letsjobit.devtools.bootstrap" in line)
    argv = [re.sub(r"\$\{(\w+)\}", lambda match: init_env[match[1]], part) for part in command_argv(line)]
    assert argv[:3] == ["python", "-m", "letsjobit.devtools.bootstrap"]
    options = bootstrap.parse_args(argv[3:])
    assert (options.admin_username, options.pool_slots) == ("admin", config.API_POOL_SLOTS)

    # The dashboard's own launcher builds the `streamlit run` line; it must listen beyond loopback.
    dashboard = command_argv(services["dashboard"]["command"])
    assert dashboard[:3] == ["python", "-m", "letsjobit.dashboard"]
    exec_argv = dashboard_exec_argv(dashboard[3:])
    assert exec_argv[1:4] == ["-m", "streamlit", "run"]
    app = Path(exec_argv[4])
    assert app == PROJECT_ROOT / "include" / "letsjobit" / "dashboard" / "app.py" and app.is_file()
    assert exec_argv[exec_argv.index("--server.address") + 1] == "0.0.0.0"  # noqa: S104 - inside its container
    assert exec_argv[exec_argv.index("--server.port") + 1] == "8501"
    assert mounts(services["dashboard"])["/opt/airflow/include"] == "./include"
    assert pinned("streamlit", DASHBOARD)


def test_mounts_lay_the_project_over_the_image_where_the_code_looks(services):
    # The package is installed, not put on a path: no image sets a PYTHONPATH.
    assert not [env for keyword, env in dockerfile_instructions() if keyword == "ENV" and "PYTHONPATH" in env]
    # include/letsjobit/config.py finds the project root two levels above itself, and sql/ below it.
    for name in ("airflow-scheduler", "airflow-worker", "airflow-dag-processor", "airflow-apiserver"):
        bound = mounts(services[name])
        for folder in ("dags", "plugins", "include", "sql"):
            assert bound[str(CONTAINER_ROOT / folder)] == f"./{folder}", (name, folder)
            assert (PROJECT_ROOT / folder).is_dir(), folder
    assert config.SQL_DIR.relative_to(config.PROJECT_ROOT) == Path("sql")


def test_the_data_dir_is_one_named_volume_shared_by_everything_that_reads_or_writes_it(services, raw):
    users = {
        name: service for name, service in services.items() if "LETSJOBIT_DATA_DIR" in environment(service)
    }
    assert {"airflow-worker", "airflow-scheduler", "dashboard", "airflow-init"} <= set(users)
    for name, service in users.items():
        data_dir = environment(service)["LETSJOBIT_DATA_DIR"]
        assert mounts(service).get(data_dir) == "letsjobit-data", name
    assert "letsjobit-data" in raw["volumes"]
    assert mounts(services["dashboard"])  # read-only is enough for the dashboard
    assert all(volume.endswith(":ro") for volume in services["dashboard"]["volumes"])


def test_pipeline_variables_are_the_ones_config_reads_and_reach_the_services_that_need_them(services):
    read_by_code = set(
        re.findall(
            r'environ\.get\("(LETSJOBIT_\w+)"', (PROJECT_ROOT / "include/letsjobit/config.py").read_text()
        )
    )
    assert read_by_code >= {
        "LETSJOBIT_API_URL",
        "LETSJOBIT_API_KEY",
        "LETSJOBIT_DATA_DIR",
        "LETSJOBIT_PSEUDONYMISE_KEY",
    }
    given = {
        name
        for service in services.values()
        for name in environment(service)
        if name.startswith("LETSJOBIT_")
    }
    # Read by letsjobit.devtools.bootstrap through its command line, not by the pipeline.
    deployment_only = {"LETSJOBIT_API_POOL_SLOTS"}
    assert given - deployment_only <= read_by_code
    worker = environment(services["airflow-worker"])
    assert {"LETSJOBIT_DATA_DIR", "LETSJOBIT_PSEUDONYMISE_KEY"} <= set(worker)
    # The key goes to the init service only, which stores it in the connection.
    holders = {name for name, service in services.items() if "LETSJOBIT_API_KEY" in environment(service)}
    assert holders == {"airflow-init"}


def test_every_variable_compose_reads_is_documented_in_env_example_and_nothing_else_is(env_example):
    used = set(variables_used(COMPOSE_FILE.read_text()))
    assert used == set(env_example)
    # Each variable sits in a block (no blank line) that opens with a comment saying what it is.
    undocumented, block_has_comment = [], False
    for line in ENV_EXAMPLE.read_text().splitlines():
        if not line.strip():
            block_has_comment = False
        elif line.startswith("#"):
            block_has_comment = True
        elif not block_has_comment:
            undocumented.append(line.partition("=")[0])
    assert undocumented == []


def test_no_secret_has_a_default_and_compose_refuses_to_start_without_the_required_ones(raw, env_example):
    uses = variables_used(COMPOSE_FILE.read_text())
    secrets = {name for name in uses if SECRET_NAME.search(name)}
    assert secrets >= set(DUMMY_SECRETS) | {"LETSJOBIT_API_KEY", "LETSJOBIT_PSEUDONYMISE_KEY"}
    for name in secrets:
        assert env_example[name] == "", f"{name} has a value in .env.example"
        for op, arg in uses[name]:
            assert op in (":?", None) or (op == ":-" and arg == ""), f"{name} has a default: {op}{arg}"
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        interpolate(raw, env_example)


def test_airflow_services_run_the_official_airflow_image_and_the_dashboard_its_own(services):
    version = pinned("apache-airflow")
    python = re.search(r"-p (3\.\d+)", (PROJECT_ROOT / "Makefile").read_text())[1]  # `make lock` target
    stages = dockerfile_stages()
    assert {name: stage.base for name, stage in stages.items()} == {
        "dashboard": f"python:{python}-slim",
        "airflow": f"apache/airflow:{version}-python{python}",
    }
    # A plain `docker build .` builds the last stage: the Airflow image, as before there were two.
    assert list(stages)[-1] == "airflow"

    built = {name: service for name, service in services.items() if "build" in service}
    assert set(built) == set(services) - {"postgres", "redis"}
    targets = {
        name: (service["build"]["context"], service["build"]["target"]) for name, service in built.items()
    }
    assert targets == {name: (".", "dashboard" if name == "dashboard" else "airflow") for name in built}
    images = {name: service["image"] for name, service in built.items()}
    assert images.pop("dashboard") == f"letsjobit-dashboard:{pinned('streamlit', DASHBOARD)}"
    assert set(images.values()) == {f"letsjobit-airflow:{version}"}
    assert pinned("apache-airflow-providers-celery")


def pip_installs(stage) -> list[str]:
    return [run for run in stage.arguments("RUN") if "pip install" in run]


def test_the_airflow_image_installs_the_runtime_set_then_the_project_without_dependencies():
    stage = dockerfile_stages()["airflow"]
    copies = stage.arguments("COPY")
    assert any(re.search(r"\brequirements\.txt /opt/airflow/requirements\.txt$", copy) for copy in copies)
    # Exactly two installs: the runtime lock, then the package with nothing more. No other set gets in.
    installs = pip_installs(stage)
    assert len(installs) == 2, installs
    assert re.search(r"pip install .*-r /opt/airflow/requirements\.txt$", installs[0]), installs[0]
    assert re.search(r"pip install .*--no-deps -e /opt/airflow$", installs[1]), installs[1]
    assert not [line for line in copies + installs if "requirements-" in line]
    assert any("pyproject.toml" in copy for copy in copies)
    for folder in ("include", "dags", "plugins", "sql"):
        assert any(copy.endswith(f"{folder}/ /opt/airflow/{folder}/") for copy in copies), folder
        assert (PROJECT_ROOT / folder).is_dir(), f"the Dockerfile copies {folder}/, which is missing"


def test_the_dashboard_image_installs_the_dashboard_set_then_the_project_and_no_airflow(services):
    from letsjobit.dashboard import access

    stage = dockerfile_stages()["dashboard"]
    copies = stage.arguments("COPY")
    assert "requirements-dashboard.txt /opt/airflow/requirements-dashboard.txt" in copies
    installs = pip_installs(stage)
    assert len(installs) == 2, installs
    assert re.search(r"pip install .*-r /opt/airflow/requirements-dashboard\.txt$", installs[0]), installs[0]
    assert re.search(r"pip install .*--no-deps -e /opt/airflow$", installs[1]), installs[1]
    assert not [line for line in copies if re.search(r"requirements(-dev)?\.txt", line)]
    assert not [name for name in DASHBOARD.locked() if name.startswith("apache-airflow")]
    # Editable at the project root, as in the Airflow image: config.PROJECT_ROOT is then /opt/airflow, where
    # compose mounts the sign-in's settings (access.SECRETS_FILE) and the data volume.
    assert {"pyproject.toml /opt/airflow/pyproject.toml", "include/ /opt/airflow/include/"} <= set(copies)
    secrets = CONTAINER_ROOT / access.SECRETS_FILE.relative_to(config.PROJECT_ROOT)
    assert mounts(services["dashboard"])[str(secrets.parent)] == "./.streamlit"
    assert stage.arguments("USER") and stage.arguments("USER")[-1].split(":")[0] != "0"

    # Nothing of Airflow's in the service either: no Airflow setting, no Airflow command.
    dashboard = services["dashboard"]
    assert not [name for name in environment(dashboard) if name.startswith(("AIRFLOW", "CONNECTION_CHECK"))]
    assert command_argv(dashboard["command"])[:3] == ["python", "-m", "letsjobit.dashboard"]


def dashboard_exec_argv(arguments: list[str]) -> list[str]:
    """The command line ``python -m letsjobit.dashboard ARGUMENTS`` would exec, without executing it."""
    from letsjobit.dashboard import server

    captured: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server.os, "execv", lambda path, argv: captured.extend(argv))
        server.main(arguments)
    return captured


# --- helpers running the installed Airflow in a subprocess (its own AIRFLOW_HOME and configuration) ----

PARSE_SCRIPT = """
import json, sys
from airflow.cli.cli_parser import get_parser
verdicts = {}
for argv in json.loads(sys.argv[1]):
    try:
        args = get_parser().parse_args(argv)
        verdicts[" ".join(argv)] = "ok" if callable(getattr(args, "func", None)) else "no command"
    except SystemExit as exit:
        verdicts[" ".join(argv)] = f"rejected (exit {exit.code})"
print(json.dumps(verdicts))
"""

IMPORT_SCRIPT = """
import importlib, sys
module, _, name = sys.argv[1].rpartition(".")
print(type(getattr(importlib.import_module(module), name)).__name__)
"""


def _airflow_env(service_env: dict[str, str], home: Path) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LETSJOBIT_"))}
    return {
        **inherited,
        **service_env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        # The metadata DB is never touched by parsing; keep Airflow from reaching for PostgreSQL anyway.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "LETSJOBIT_DATA_DIR": str(home / "data"),
    }


def parse_with_airflow_cli(argvs: list[list[str]], service_env: dict[str, str], home: Path) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, json.dumps(argvs)],
        env=_airflow_env(service_env, home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def import_in_airflow(dotted: str, service_env: dict[str, str], home: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_SCRIPT, dotted],
        env=_airflow_env(service_env, home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]


def test_the_connection_airflow_init_makes_from_env_example_is_one_the_client_accepts(services, monkeypatch):
    from letsjobit.api.errors import LetsJobItConfigError
    from letsjobit.api.settings import ClientSettings

    init = environment(services["airflow-init"])
    for name in ("LETSJOBIT_API_URL", "LETSJOBIT_API_KEY", "LETSJOBIT_CONN_EXTRA"):
        monkeypatch.setenv(name, init[name])
    # What letsjobit.devtools.bootstrap stores: the connection every entry point reads from these variables.
    connection = config.api_connection()
    assert connection["extra"] == {"allow_insecure_http": True}
    extras = connection["extra"]
    settings = ClientSettings(base_url=connection["host"], api_key="k", **extras)
    assert settings.base_url == "http://letsjobit-simulator:8000/api/v2"
    # The extras are what makes plain http to the simulator service acceptable.
    with pytest.raises(LetsJobItConfigError, match="plain http"):
        ClientSettings(base_url=init["LETSJOBIT_API_URL"], api_key="k")


# --- who may look: published ports -----------------------------------------------------------------------

LOOPBACK = "127.0.0.1"


def published(service: dict) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of each published port; a bare "HOST:CONTAINER" binds
    every interface, which the empty address stands for."""
    found = []
    for port in service.get("ports", []):
        parts = str(port).rsplit(":", 2)
        found.append(tuple(parts) if len(parts) == 3 else ("", *parts))
    return found


def test_with_the_example_settings_every_published_port_binds_loopback_only(services):
    ports = {name: published(service) for name, service in services.items() if service.get("ports")}
    assert {"airflow-apiserver", "dashboard", "flower"} <= set(ports)
    assert {name: {address for address, _, _ in bound} for name, bound in ports.items()} == {
        name: {LOOPBACK} for name in ports
    }


def test_a_service_published_beyond_loopback_has_a_sign_in_in_front(raw, env_example, tmp_path, monkeypatch):
    from letsjobit.dashboard import access

    wide = {**env_example, **DUMMY_SECRETS}
    wide.update({name: "0.0.0.0" for name in env_example if name.endswith("_ADDRESS")})  # noqa: S104
    services = interpolate(raw, wide)["services"]
    opened = {
        name
        for name, service in services.items()
        for address, _, _ in published(service)
        if address != LOOPBACK
    }
    # Flower has no sign-in: no setting publishes it beyond loopback.
    assert opened == {"airflow-apiserver", "dashboard"}

    # The API server: Airflow's simple auth manager with a password per user, not its all-admins mode.
    api = environment(services["airflow-apiserver"])
    assert api["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert api["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    assert api.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "false").lower() == "false"

    # The dashboard, launched as compose launches it: refused without the OIDC sign-in, served with it.
    command = command_argv(services["dashboard"]["command"])[3:]
    monkeypatch.setattr(access, "SECRETS_FILE", tmp_path / "secrets.toml")
    with pytest.raises(access.ExposureRefused):
        dashboard_exec_argv(command)
    (tmp_path / "secrets.toml").write_text(
        "[auth]\nredirect_uri = 'http://dash.example.com/oauth2callback'\ncookie_secret = 'c'\n"
        "client_id = 'id'\nclient_secret = 's'\nserver_metadata_url = 'https://idp.example.com/.well-known/openid-configuration'\n"
    )
    assert "streamlit" in dashboard_exec_argv(command)
    assert mounts(services["dashboard"])["/opt/airflow/.streamlit"] == "./.streamlit"
    assert (PROJECT_ROOT / ".streamlit" / "secrets.toml.example").is_file()


def test_the_sign_in_secrets_stay_out_of_git_and_the_image():
    assert ".streamlit/secrets.toml" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert ".streamlit/secrets.toml" in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
