# MinIO for a cortexlite environment on Nomad: one S3 store for bundles and models (any S3 store will do).
#
# The same job as minio.nomad.json (the API form, for `nomad job run -json`). The image is the release
# compose/docker-compose.yml pins.
#
# Before the first run:
#
# 1. The credentials, in the job's Nomad Variable (the job holds none; its task reads
#    nomad/jobs/minio without any policy):
#
#      nomad var put nomad/jobs/minio MINIO_ROOT_USER=cortexlite MINIO_ROOT_PASSWORD="$(openssl rand -hex 24)"
#
# 2. A host volume named minio-data in the client's configuration (the job is placed only on a client
#    that has it):
#
#      client {
#        host_volume "minio-data" {
#          path = "/opt/minio-data"
#        }
#      }
#
# The task uses the host's network, so MinIO answers on every address of the node: 9000 (S3 API) and
# 9001 (console). Put a firewall in front of them on a shared network.

job "minio" {
  type        = "service"
  datacenters = ["*"]

  group "minio" {
    count = 1

    volume "data" {
      type      = "host"
      source    = "minio-data"
      read_only = false
    }

    network {
      mode = "host"

      port "api" {
        static = 9000
      }

      port "console" {
        static = 9001
      }
    }

    service {
      name     = "minio"
      provider = "nomad"
      port     = "api"

      check {
        name     = "live"
        type     = "http"
        path     = "/minio/health/live"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 10
      interval = "5m"
      delay    = "10s"
      mode     = "delay"
    }

    task "minio" {
      driver = "docker"

      config {
        image        = "minio/minio:RELEASE.2024-12-18T13-15-44Z"
        network_mode = "host"
        args         = ["server", "/data", "--address", ":9000", "--console-address", ":9001"]
      }

      volume_mount {
        volume      = "data"
        destination = "/data"
        read_only   = false
      }

      # Values quoted as JSON: the env file parser reads JSON escapes, and a bare `#` would end a value.
      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/minio" }}
          MINIO_ROOT_USER={{ .MINIO_ROOT_USER.Value | toJSON }}
          MINIO_ROOT_PASSWORD={{ .MINIO_ROOT_PASSWORD.Value | toJSON }}
          {{ end }}
          EOT
        destination = "secrets/minio.env"
        env         = true
        change_mode = "restart"
        perms       = "0600"
      }

      resources {
        cpu    = 500
        memory = 1024
      }

      kill_timeout = "30s"
    }
  }
}
