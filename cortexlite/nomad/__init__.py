"""The Nomad backend: jobs rendered as data, a typed API client, rollouts, status, logs and autoscaling."""
