# Prefect server for docker-compose.yml. Built rather than pulled so that its SQLAlchemy is pinned:
# prefect 3.8.8's scheduler fails under SQLAlchemy 2.1 ("Can't evaluate bulk DML statement").
FROM python:3.11-slim

ARG PREFECT_VERSION=3.8.8
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    PREFECT_HOME=/home/prefect/.prefect

RUN pip install "prefect==${PREFECT_VERSION}" "sqlalchemy[asyncio]>=2.0,<2.1" "asyncpg>=0.29" \
    && useradd --create-home --uid 1000 prefect
USER prefect
WORKDIR /home/prefect
EXPOSE 4200
CMD ["prefect", "server", "start", "--host", "0.0.0.0", "--port", "4200"]
