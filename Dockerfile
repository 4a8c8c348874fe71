# One image for every streamgate component; docker-compose.yml picks the command per service.
FROM python:3.11-slim AS base
ENV PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY schemas ./schemas
COPY streamgate ./streamgate
COPY shared ./shared
COPY streams ./streams
COPY gateway_consumer ./gateway_consumer
COPY aggregation ./aggregation
COPY lakehouse ./lakehouse
COPY features ./features
COPY apps ./apps
COPY config ./config
COPY ops ./ops
RUN uv sync --frozen --no-dev
ENTRYPOINT ["streamgate"]
CMD ["--help"]
