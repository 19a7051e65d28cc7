# Neurobugurt in a container: the same `make` steps as on a workstation (tests/test_deploy.py
# checks that the install is `make install` and the command is the recipe of `make run`).
#   docker build -t neurobugurt .
#   docker run -d --name neurobugurt -e TELEGRAM_TOKEN -e VK_TOKEN -e VK_POST_TOKEN \
#     -v neurobugurt-data:/app/data neurobugurt
FROM python:3.11-slim

# The CPU build of torch: without this index pip resolves torch to the CUDA build (GBs).
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL} \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

# make for the install; an unprivileged user owning the app folder and its data volume.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 neurobugurt \
    && install -d -o neurobugurt -g neurobugurt /app /app/data

WORKDIR /app
COPY --chown=neurobugurt:neurobugurt . /app
USER neurobugurt
RUN make install

# Database, corpus and retrained models live here; secrets come only from the environment
# (config.yaml reads ${TELEGRAM_TOKEN}, ${VK_TOKEN}, ${VK_POST_TOKEN}).
VOLUME ["/app/data"]
HEALTHCHECK --interval=60s --timeout=15s --start-period=120s --retries=3 \
    CMD [".venv/bin/python", "-m", "bot", "--health"]
# The recipe of `make run` without make in between: `docker stop`'s SIGTERM reaches the bot
# itself (PID 1), which stops polling and closes the database cleanly.
CMD [".venv/bin/python", "-m", "bot"]
