# The pipeline's Airflow image: the official image of the pinned Airflow version and Python, plus the
# pinned requirements.txt and the project's code. docker-compose.yaml builds it; the same image serves
# every Airflow component, the simulator and the dashboard.
FROM apache/airflow:3.3.2-python3.11

# The project root inside the image: include/, dags/, plugins/, sql/ live under it, as in the repository,
# so letsjobit.config.PROJECT_ROOT and SQL_DIR resolve the same way (the package is installed editable).
ENV LETSJOBIT_DATA_DIR=/opt/airflow/data

# Dependencies first, so code edits do not re-install them. The official image wants pip as `airflow`.
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
