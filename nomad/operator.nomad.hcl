# The operator of a cortexlite environment on Nomad: one allocation running `cortexlite -e prod operator`.
#
# The HCL form of operator.nomad.json, which is what `cortexlite up` registers for an environment named
# `prod` (rendered by cortexlite/nomad/system_jobs.py, with a `cortexlite.spec` digest in the meta that
# this file lacks, so `up` replaces a job registered from it with its own rendering).
#
# It autoscales the environment's APIs through Nomad's scale API: every second it sums the running
# allocations' in-flight requests, every CORTEXLITE_OPERATOR_INTERVAL seconds it decides a count. It
# needs nothing but the Nomad API: the policy of each API comes from its job.
#
# The image: `cortexlite up -e prod` builds it (cortexlite/operator:<content hash>, the runtime image
# plus the control plane) and pushes it to the environment's registry (`env add --registry`); the
# reference below is a placeholder. (`cortexlite image build` builds the runtime and gateway images only.)
#
# The template writes the environment's definition into CORTEXLITE_HOME (the task's local/ directory,
# which outlives a restart of the task, so the scaler's state does too). Its delimiters are ones the
# text never contains: it is copied as written.
#
# ACLs: the task uses its workload identity (`identity { env = true }` puts NOMAD_TOKEN in its
# environment). Attach a policy to the job that lets it list and read jobs and allocations and scale
# groups; it registers nothing, so it needs no submit-job:
#
#   # operator-policy.hcl
#   namespace "default" {
#     capabilities = ["list-jobs", "read-job", "scale-job"]
#   }
#
#   nomad acl policy apply -namespace default -job cortexlite-operator cortexlite-operator ./operator-policy.hcl

job "cortexlite-operator" {
  type        = "service"
  datacenters = ["dc1"]

  meta = {
    "cortexlite.role" = "operator"
    "cortexlite.env"  = "prod"
  }

  group "operator" {
    count = 1

    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    task "operator" {
      driver = "docker"

      config {
        image        = "registry.local:5000/cortexlite/operator:0123456789ab"
        network_mode = "host"
        args         = ["-e", "prod", "operator"]
      }

      env {
        NOMAD_ADDR                   = "http://${attr.unique.network.ip-address}:4646"
        CORTEXLITE_HOME              = "/local/cortexlite"
        CORTEXLITE_OPERATOR_INTERVAL = "10"
        HOME                         = "/tmp"
      }

      template {
        data            = <<-EOT
          current: prod
          environments:
            prod:
              backend: nomad
          EOT
        destination     = "local/cortexlite/config.yaml"
        change_mode     = "restart"
        left_delimiter  = "[[cortexlite-literal:"
        right_delimiter = ":cortexlite-literal]]"
        perms           = "0644"
      }

      identity {
        env = true
      }

      resources {
        cpu    = 300
        memory = 256
      }

      kill_timeout = "15s"
    }
  }
}
