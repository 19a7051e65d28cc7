# Neurobugurt in a container: the same `make` steps as on a workstation.
#   docker build -t neurobugurt .
#   docker run -e TELEGRAM_TOKEN -e VK_TOKEN -v neurobugurt-data:/app/data neurobugurt
FROM python:3.11-slim

# The CPU build of torch: without this index pip resolves torch to the CUDA build (GBs).
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 neurobugurt

WORKDIR /app
COPY --chown=neurobugurt:neurobugurt . /app
USER neurobugurt
RUN make install

# Database, corpus and trained models live here; secrets come only from the environment.
VOLUME ["/app/data"]
CMD ["make", "run"]
