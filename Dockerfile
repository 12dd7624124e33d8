# One image for the three Dagster roles of alert_pipeline (see docker-compose.yml):
#   user_code  dagster code-server start -h 0.0.0.0 -p 4000 -m alert_pipeline.definitions  (default CMD)
#   webserver  dagster-webserver -h 0.0.0.0 -p 3000 -w /opt/dagster/dagster_home/workspace.yaml
#   daemon     dagster-daemon run -w /opt/dagster/dagster_home/workspace.yaml
# Shape follows dagster-io/dagster examples/deploy_docker, folded into one image because the
# webserver and the daemon need the same dagster / dagster-postgres versions as the code server.
# No secrets are baked in: Postgres credentials come from the environment at run time (.env).

# --- build: the project's wheel, with pinned build tools (nothing of this stage is shipped) -------
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
RUN pip install --no-cache-dir setuptools==80.9.0 wheel==0.45.1
COPY pyproject.toml README.md ./
COPY alert_pipeline ./alert_pipeline
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

# --- runtime ----------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    ALERT_PIPELINE_HOME=/opt/dagster/data \
    MPLCONFIGDIR=/tmp/matplotlib

# Non-root user. The directories that become named-volume mount points are created here and
# owned by that user: Docker seeds an empty named volume with the image's directory (including
# ownership), so the volumes are writable by the non-root user on first start.
RUN groupadd --system --gid 10001 dagster \
    && useradd --system --uid 10001 --gid dagster --home-dir /opt/dagster \
        --no-create-home --shell /usr/sbin/nologin dagster \
    && mkdir -p "${DAGSTER_HOME}/storage" \
        "${ALERT_PIPELINE_HOME}/incoming" \
        "${ALERT_PIPELINE_HOME}/warehouse" \
        "${ALERT_PIPELINE_HOME}/quarantine" \
        "${ALERT_PIPELINE_HOME}/reports" \
    && chown -R dagster:dagster "${DAGSTER_HOME}" "${ALERT_PIPELINE_HOME}"

# Dependencies first, exactly as locked (own layer: rebuilt only when the lock changes).
COPY deploy/requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --no-deps --requirement /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself, without resolving anything, and a consistency check of the result.
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && pip check \
    && rm -rf /tmp/wheels

# Instance config (Postgres storage, QueuedRunCoordinator, limits) and the Compose workspace,
# read-only (owned by root) inside the user-writable DAGSTER_HOME.
COPY deploy/dagster.yaml deploy/workspace.yaml ${DAGSTER_HOME}/

WORKDIR ${DAGSTER_HOME}
USER 10001:10001

EXPOSE 4000 3000

# Health of the default role (the gRPC code server). docker-compose.yml overrides the check for
# the webserver (GET /server_info) and the daemon (dagster-daemon liveness-check).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]

CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "alert_pipeline.definitions", "--location-name", "alert_pipeline"]
