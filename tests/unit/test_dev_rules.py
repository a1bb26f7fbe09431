"""The pure decisions of hot reload, `cortexlite dev` and `cortexlite init`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cortexlite.cli.main import app
from cortexlite.cli.reference import BEGIN, END, render_reference, replace_reference
from cortexlite.dev import LineKind, classify_line
from cortexlite.errors import EnvConfigError
from cortexlite.prediction import payload_type
from cortexlite.scaffold import api_name_for, project_files, scaffold
from cortexlite_runtime.reload import Changes, classify, ignored, restart_reason, upgraded_packages
from cortexlite_runtime.spec import ApiSpec, PredictorSpec

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    "path",
    [".predictor.py.swp", "predictor.py~", "4913", "#predictor.py#", ".git/HEAD", "pkg/__pycache__/m.cpython-311.pyc",
     "a.pyc", "notes.tmp", ".env", ".venv/lib/x.py"],
)  # fmt: skip
def test_scratch_and_hidden_files_are_ignored(path: str) -> None:
    assert ignored(path)


def test_changes_are_sorted_by_what_they_need() -> None:
    changes = classify(["predictor.py", "pkg/helper.py", "model.bin", "requirements.txt", "cortexlite.yaml", "x~"])
    assert changes == Changes(("pkg/helper.py", "predictor.py"), ("model.bin",), requirements=True, spec=True)
    assert classify(["4913", ".x.swp"]).empty
    assert classify(["dependencies.sh"]).empty  # it runs at start only
    assert changes.describe() == "pkg/helper.py, predictor.py, model.bin, requirements.txt and 1 more changed"
    assert classify(["requirements.txt", "cortex.yaml"]).describe() == "requirements.txt, the spec file changed"


def test_only_serving_settings_need_a_restart() -> None:
    old = PredictorSpec(config={"a": 1})
    assert restart_reason(old, PredictorSpec(config={"a": 2})) is None
    assert restart_reason(old, PredictorSpec(config={"a": 1}, path="other.py")) is None
    assert restart_reason(old, PredictorSpec(processes_per_replica=2)) == "predictor.processes_per_replica changed"
    assert restart_reason(old, PredictorSpec(env={"K": "v"})) == "predictor.env changed"


def test_upgraded_packages_compares_with_what_is_importable(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "pytest-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest\nVersion: 0.0.1\n")
    (info / "top_level.txt").write_text("pytest\n_pytest\n")
    current = __import__("importlib.metadata").metadata.version("pytest")
    assert upgraded_packages(site, lambda module: module in sys.modules) == [f"pytest {current} -> 0.0.1"]
    assert upgraded_packages(site, lambda _module: False) == []  # not imported: the new one is just used


def test_dev_log_lines_are_classified() -> None:
    assert classify_line("10:00:00.000 INFO    reloaded in 0.08s") == LineKind.RELOADED
    assert classify_line("10:00:00.000 ERROR   reload failed: SyntaxError") == LineKind.FAILED
    assert classify_line("10:00:00.000 WARNING restarting the replica: x") == LineKind.RESTART
    assert classify_line("10:00:00.000 ERROR   predict failed") == LineKind.ERROR
    assert classify_line("10:00:00.000 INFO    ready") == LineKind.INFO


def test_init_names_and_files(tmp_path: Path) -> None:
    assert api_name_for(Path("/x/My_Model v2")) == "my-model-v2"
    assert api_name_for(Path("/x/2fast")) == "fast"
    assert api_name_for(Path("/x/___")) == "api"
    files = project_files("demo")
    spec = __import__("yaml").safe_load(files["cortexlite.yaml"])
    assert ApiSpec.model_validate(spec[0]).endpoint == "/demo"
    name, written = scaffold(tmp_path / "new-project")
    assert name == "new-project" and len(written) == 4
    with pytest.raises(EnvConfigError, match="already has"):
        scaffold(tmp_path / "new-project")
    assert (tmp_path / "new-project" / "predictor.py").read_text() == files["predictor.py"].replace("demo", name)


def test_payload_types() -> None:
    assert payload_type(b'{"a": 1}') == "application/json"
    assert payload_type("héllo\nworld".encode()) == "text/plain; charset=utf-8"
    assert payload_type(b"\x00\x01\xff") == "application/octet-stream"


def test_the_readme_cli_reference_is_generated_from_the_cli() -> None:
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    assert replace_reference(text, render_reference(app)) == text, "the README's CLI reference drifted: make docs"


def test_the_reference_covers_every_command() -> None:
    reference = render_reference(app)
    for command in ("up", "deploy", "dev", "init", "env add", "image build", "predict", "gpus", "operator"):
        assert f"#### `cortexlite {command}`" in reference
    assert "`-e, --env <str>`" in reference
