# kubatch operator image: slim, pinned base, non-root, dependencies pinned by constraints.txt.
#   docker build -t kubatch:dev .
#   kind load docker-image kubatch:dev
# BASE_IMAGE is any Debian bookworm image with Python 3.11 (`python` and its venv module);
# `kubatch local images` builds this file with buildah on a debootstrapped local base.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY operator ./operator
RUN python -m venv /opt/kubatch \
 && /opt/kubatch/bin/pip install --upgrade pip \
 && /opt/kubatch/bin/pip install -c constraints.txt .

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="kubatch" \
      org.opencontainers.image.description="AWS Batch, rebuilt as a Kubernetes-native operator" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/kubatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 kubatch \
 && useradd --system --uid 10001 --gid kubatch --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin kubatch
COPY --from=build /opt/kubatch /opt/kubatch
USER 10001:10001
EXPOSE 8080 8081
ENTRYPOINT ["kubatch", "operator"]
