# spindex container image for scheduled jobs (Azure Container Apps Jobs, Kubernetes CronJobs):
#   docker build -t spindex:0.1.0 .
#   docker run --rm --env-file spindex.env spindex:0.1.0 delta        # or acl, full
# Configuration comes only from SPINDEX_... environment variables and mounted files at run time;
# nothing secret is baked into the image.

# ---- build: a virtual environment with the runtime dependencies only ----
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# The dependency layer is rebuilt only when pyproject.toml changes. The list is read from
# [project].dependencies, so test extras never enter the image.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --requirement requirements.txt

# The source tree keeps its repository layout: ingest/ finds schemas/index.json beside it.
COPY ingest /app/ingest
COPY jobs /app/jobs
COPY sandbox /app/sandbox
COPY schemas /app/schemas
RUN /opt/venv/bin/python -m compileall -q /app

# ---- runtime ----
FROM python:3.11-slim AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    SPINDEX_DATA_DIR=/var/lib/spindex

RUN groupadd --gid 10001 spindex \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/spindex --shell /usr/sbin/nologin spindex \
 && install --directory --owner 10001 --group 10001 --mode 0750 /var/lib/spindex

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

WORKDIR /app
USER 10001:10001

ENTRYPOINT ["python", "-m", "jobs"]
CMD ["delta"]
