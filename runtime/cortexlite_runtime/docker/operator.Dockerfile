# The cortexlite operator for Docker environments: the control plane on top of the runtime image.
#
# Works with the classic builder. `cortexlite up` writes the context:
#   Dockerfile
#   operator/requirements.txt   the control plane's dependencies (the runtime's are in the base already)
#   operator/wheelhouse/        wheels for --wheelhouse installs (absent otherwise)
#   cortexlite/                 the control plane's package, as installed on the host (pure Python)
# Build arguments: RUNTIME_IMAGE, PIP_INDEX_URL, CORTEXLITE_WHEELHOUSE (1: --no-index).
ARG RUNTIME_IMAGE
FROM ${RUNTIME_IMAGE}
ARG PIP_INDEX_URL=
ARG CORTEXLITE_WHEELHOUSE=0
COPY operator/ /tmp/cortexlite-operator/
RUN set -eu; \
    deps=/tmp/cortexlite-operator; \
    [ -n "${PIP_INDEX_URL:-}" ] || unset PIP_INDEX_URL; \
    if [ "$CORTEXLITE_WHEELHOUSE" = 1 ]; then set -- --no-index --find-links "$deps/wheelhouse"; else set --; fi; \
    pip install --no-cache-dir --no-input --disable-pip-version-check "$@" -r "$deps/requirements.txt"; \
    rm -rf "$deps"
COPY cortexlite/ /opt/cortexlite/cortexlite/
ENV PYTHONPATH=/opt/cortexlite
LABEL cortexlite.image="operator"
ENTRYPOINT ["python", "-m", "cortexlite"]
