# A project's dependency image: the runtime image plus what the project's dependencies.sh and
# requirements.txt install, made once per (runtime image, dependency files) so replicas start without pip.
#
# Works with the classic builder. `cortexlite deploy` writes the context:
#   Dockerfile
#   project/dependencies.sh      the project's script (absent when it has none); run first, as Cortex did
#   project/requirements.txt     the project's requirements (absent when it has none)
#   project/wheelhouse/          wheels for --wheelhouse installs (absent otherwise)
# Only these files are in the image's build: dependencies.sh runs in project/, without the rest of the project.
#
# Build arguments: RUNTIME_IMAGE (cortexlite/runtime:<hash>), PIP_INDEX_URL, CORTEXLITE_WHEELHOUSE (1: --no-index).
# PIP_CERT comes from the runtime image when it was built with --ca-cert.
ARG RUNTIME_IMAGE
FROM ${RUNTIME_IMAGE}
ARG PIP_INDEX_URL=
ARG CORTEXLITE_WHEELHOUSE=0
COPY project/ /tmp/cortexlite-project/
RUN set -eu; \
    project=/tmp/cortexlite-project; \
    [ -n "${PIP_INDEX_URL:-}" ] || unset PIP_INDEX_URL; \
    if [ -f "$project/dependencies.sh" ]; then \
        echo "running dependencies.sh"; (cd "$project" && bash dependencies.sh); \
    fi; \
    if [ "$CORTEXLITE_WHEELHOUSE" = 1 ]; then set -- --no-index --find-links "$project/wheelhouse"; else set --; fi; \
    if [ -f "$project/requirements.txt" ]; then \
        pip install --no-cache-dir --no-input --disable-pip-version-check "$@" -r "$project/requirements.txt"; \
    fi; \
    rm -rf "$project"
LABEL cortexlite.image="dependencies"
