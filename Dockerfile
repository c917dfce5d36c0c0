# syntax=docker/dockerfile:1
# subledger: one image for `serve`, `worker`, `projector` (see docker-compose.yml).

# Build wheels for the project and its pinned dependencies (no test extras).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system subledger \
    && useradd --system --gid subledger --home-dir /var/lib/subledger \
        --create-home --shell /usr/sbin/nologin subledger

# Installed from wheels only: no source tree, compilers or network needed here.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels subledger

# The working directory is the user's own, so the embedded default
# (sqlite:///./subledger.db) can write its file when no database is configured.
WORKDIR /var/lib/subledger
USER subledger
EXPOSE 8000

CMD ["subledger", "serve", "--host", "0.0.0.0"]
