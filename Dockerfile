# One image for every lienthong process: the three registries, the gateway and
# the `lienthong` command. docker-compose.yml picks what each container runs:
#
#   docker build -t lienthong .
#   docker run --rm lienthong python -m services.population
#
# Kafka is not in here: compose runs the apache/kafka image next to it.

# ---- builder: the locked dependencies and the project, into one venv --------
FROM python:3.11-slim AS builder

# The uv that the Makefile uses, from PyPI like the Makefile gets it.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --root-user-action=ignore "uv==${UV_VERSION}"

# hdrhistogram has no wheel for linux/arm64 and is built from source there
# (this stage is thrown away: the compiler's exact version does not matter).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

ENV UV_PROJECT_ENVIRONMENT=/opt/lienthong/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
WORKDIR /src

# Dependencies first, exactly as uv.lock pins them (no dev tools): this layer
# is rebuilt only when the lock file changes, not on every code change.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself, installed as a wheel (not editable): the venv is
# all the runtime stage needs. genproto/ becomes the `lienthong` and `buf`
# packages, the data files (provinces, holidays, base salaries) come along.
COPY README.md ./
COPY common ./common
COPY services ./services
COPY gateway ./gateway
COPY scenarios ./scenarios
COPY cli ./cli
COPY brokers ./brokers
COPY databases ./databases
COPY conformance ./conformance
COPY genproto ./genproto
RUN uv sync --frozen --no-dev --no-editable

# ---- runtime -----------------------------------------------------------------
FROM python:3.11-slim AS runtime

# A user of its own; /data holds the SQLite files where no *_DB setting names
# a PostgreSQL URL (LIENTHONG_DATA_DIR), /pki is where compose mounts the
# identities' volume (a fresh named volume takes this directory's owner).
RUN groupadd --system --gid 10001 lienthong \
    && useradd --system --uid 10001 --gid lienthong --no-create-home \
        --home-dir /app --shell /usr/sbin/nologin lienthong \
    && mkdir -p /app /data /pki \
    && chown 10001:10001 /app /data /pki

COPY --from=builder /opt/lienthong/venv /opt/lienthong/venv

ENV PATH="/opt/lienthong/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LIENTHONG_DATA_DIR=/data

WORKDIR /app
# Numeric, so that a runtime can tell it is not root without reading /etc/passwd.
USER 10001:10001

# gateway, population, insurance, health (common/config.py DEFAULT_PORTS)
EXPOSE 50050 50051 50052 50053

CMD ["lienthong", "--help"]
