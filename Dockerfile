# One image for every NetScript process of the graph: gateways, background processors and the
# one-shot `init` job. compose.yaml (`netscript compose`) builds it and runs each process as
# `netscript <command>`, e.g. `netscript streams serve --host 0.0.0.0 --port 4437`.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so editing the app file or the schemas does not reinstall them.
COPY pyproject.toml README.md ./
COPY services ./services
COPY topology ./topology
RUN pip install . \
    && useradd --create-home --uid 10001 netscript \
    && mkdir -p /data \
    && chown netscript /data

# `netscript init` reads the app file and the schemas it declares from the working directory.
COPY netscript.toml ./
COPY schemas ./schemas

USER netscript
ENTRYPOINT ["netscript"]
CMD ["--help"]
