# The pipeline's two images, one build stage each; docker-compose.yaml builds both (`build: target:`).
#   dashboard  the KPI dashboard: Python and the pinned requirements-dashboard.txt, no Airflow
#   airflow    every Airflow component and the simulator: the official image of the pinned Airflow version
#              and Python, plus the pinned requirements.txt
# Each installs the project's code on top of its own set. The Airflow stage is the last one, so a plain
# `docker build .` still gives the Airflow image.

# --- dashboard ---------------------------------------------------------------------------------------------
FROM python:3.11-slim AS dashboard

# The project root sits where the Airflow image has it, so compose mounts the same paths into both and
# letsjobit.config.PROJECT_ROOT (two levels above the editable package) finds .streamlit/ and data/ there.
WORKDIR /opt/airflow
ENV LETSJOBIT_DATA_DIR=/opt/airflow/data \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY requirements-dashboard.txt /opt/airflow/requirements-dashboard.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements-dashboard.txt

# The package editable, as in the Airflow image: config.PROJECT_ROOT must be the project root, not
# site-packages. --no-deps: the pinned set above is everything it gets (pyproject lists no dependencies).
COPY pyproject.toml /opt/airflow/pyproject.toml
COPY include/ /opt/airflow/include/
RUN pip install --no-cache-dir --no-deps -e /opt/airflow

# Not root: the Airflow image's uid (group 0), which airflow-init gives the shared data volume to.
RUN useradd --uid 50000 --gid 0 --create-home dashboard \
    && mkdir -p /opt/airflow/data && chown 50000:0 /opt/airflow/data
USER 50000:0
EXPOSE 8501
# Without a sign-in it refuses to listen beyond loopback unless told where it is published: compose's
# command adds --published-address.
CMD ["python", "-m", "letsjobit.dashboard", "--address=0.0.0.0", "--port=8501"]

# --- airflow -----------------------------------------------------------------------------------------------
FROM apache/airflow:3.3.2-python3.11 AS airflow

# The project root inside the image: include/, dags/, plugins/, sql/ live under it, as in the repository,
# so letsjobit.config.PROJECT_ROOT and SQL_DIR resolve the same way (the package is installed editable).
ENV LETSJOBIT_DATA_DIR=/opt/airflow/data

# Dependencies first, so code edits do not re-install them. The official image wants pip as `airflow`.
# The runtime set only: the dashboard's Streamlit stack lives in the dashboard image.
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

# The `letsjobit` package (include/letsjobit/), installed editable so that it imports from anywhere and its
# provider entry point registers the `letsjobit` connection type.
COPY --chown=airflow:0 pyproject.toml /opt/airflow/pyproject.toml
COPY --chown=airflow:0 include/ /opt/airflow/include/
RUN pip install --no-cache-dir --no-deps -e /opt/airflow

# The code is baked in so workers on other machines need no bind mounts; compose mounts over it for development.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 sql/ /opt/airflow/sql/

# Mount points of the named volumes, created here so that Docker gives them to the airflow user.
RUN mkdir -p /opt/airflow/data /opt/airflow/auth
