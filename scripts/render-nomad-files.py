"""Write the JSON job files under nomad/ from the renderers cortexlite registers them with.

    .venv/bin/python scripts/render-nomad-files.py

traefik.nomad.json and operator.nomad.json are what `cortexlite up` registers for an environment
named `prod` (with placeholder images); iris.nomad.json is examples/iris as `deploy --dry-run -o json`
renders it (placeholder image and bundle). tests/unit/test_nomad_files.py fails when a file
drifts from its renderer; minio.nomad.json is written by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RENDERED = ("traefik.nomad.json", "operator.nomad.json", "iris.nomad.json")


def example_jobs(repo: Path) -> dict[str, dict[str, Any]]:
    from cortexlite.nomad.job import JobSettings, NomadRelease, render_job
    from cortexlite.nomad.system_jobs import render_gateway_job, render_operator_job
    from cortexlite.project import load_project
    from cortexlite.release import make_release

    settings = JobSettings(
        env="prod",
        datacenters=("dc1",),
        storage_env={
            "AWS_ENDPOINT_URL": "http://minio.service.consul:9000",
            "AWS_ENDPOINT_URL_S3": "http://minio.service.consul:9000",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
            "CORTEXLITE_S3_ENDPOINT": "http://minio.service.consul:9000",
            "CORTEXLITE_S3_REGION": "us-east-1",
        },
        secret_names=(
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "CORTEXLITE_S3_ACCESS_KEY",
            "CORTEXLITE_S3_SECRET_KEY",
        ),
    )
    project = load_project(repo / "examples" / "iris")
    image = "registry.local:5000/cortexlite/deps:0123456789ab"
    release = make_release(project.apis[0], project.code_hash, image)
    bundle = "s3://cortexlite/prod/bundles/<sha256 of the project bundle>.zip"
    return {
        "traefik.nomad.json": render_gateway_job(settings, "traefik:v3.7", 8888, 8889),
        "operator.nomad.json": render_operator_job(
            settings, "registry.local:5000/cortexlite/operator:0123456789ab", 10.0
        ),
        "iris.nomad.json": render_job(NomadRelease(release, image, bundle, 1), settings),
    }


def main() -> None:
    sys.path.insert(0, str(REPO))
    for name, job in example_jobs(REPO).items():
        path = REPO / "nomad" / name
        path.write_text(json.dumps({"Job": job}, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
