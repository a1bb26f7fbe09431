# The gateway of a cortexlite environment on Nomad: one Traefik on every client (a system job).
#
# The HCL form of traefik.nomad.json, which is what `cortexlite up` registers for an environment named
# `prod` (cortexlite renders it in cortexlite/nomad/system_jobs.py and adds a `cortexlite.spec` digest to
# the meta; a job registered from this file lacks it, so `up` replaces it with its own rendering).
#
# Traefik's Nomad provider polls the local agent every 5 s and routes only services tagged `cortexlite`
# and `traefik.enable=true` (the API jobs' tags). Its API stays off; ping and Prometheus metrics are on
# the admin port. `${attr.unique.network.ip-address}` is left as written by the HCL parser and filled in
# by the client with the node's address.
#
# With ACLs on, the task uses its workload identity (`identity { env = true }` puts NOMAD_TOKEN in its
# environment); attach a policy that lets it read services (nomad/README.md, "ACLs"):
#
#   namespace "default" {
#     capabilities = ["read-job"]
#   }
#
#   nomad acl policy apply -namespace default -job cortexlite-gateway cortexlite-gateway ./gateway-policy.hcl

job "cortexlite-gateway" {
  type        = "system"
  datacenters = ["dc1"]

  meta = {
    "cortexlite.role" = "gateway"
    "cortexlite.env"  = "prod"
  }

  group "gateway" {
    network {
      mode = "host"

      port "web" {
        static = 8888
      }

      port "admin" {
        static = 8889
      }
    }

    service {
      name     = "cortexlite-gateway"
      provider = "nomad"
      port     = "web"
      tags     = ["cortexlite-gateway"]

      check {
        name     = "ping"
        type     = "http"
        path     = "/ping"
        port     = "admin"
        interval = "5s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "traefik" {
      driver = "docker"

      config {
        image        = "traefik:v3.7"
        network_mode = "host"
        args = [
          "--entrypoints.web.address=:8888",
          "--entrypoints.web.transport.respondingTimeouts.readTimeout=60s",
          "--entrypoints.web.transport.respondingTimeouts.writeTimeout=0s",
          "--entrypoints.web.transport.respondingTimeouts.idleTimeout=180s",
          "--entrypoints.web.http.maxHeaderBytes=65536",
          "--entrypoints.traefik.address=:8889",
          "--ping=true",
          "--ping.entrypoint=traefik",
          "--metrics.prometheus=true",
          "--metrics.prometheus.entrypoint=traefik",
          "--metrics.prometheus.addrouterslabels=true",
          "--metrics.prometheus.addserviceslabels=true",
          "--providers.nomad=true",
          "--providers.nomad.refreshInterval=5s",
          "--providers.nomad.exposedByDefault=false",
          "--providers.nomad.constraints=Tag(`cortexlite`)",
          "--log.format=json",
          "--accesslog=false",
        ]
      }

      env {
        NOMAD_ADDR = "http://${attr.unique.network.ip-address}:4646"
      }

      identity {
        env = true
      }

      resources {
        cpu    = 500
        memory = 256
      }

      kill_timeout = "10s"
    }
  }
}
