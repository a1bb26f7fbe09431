"""The fake Nomad client's template runner: the small part of consul-template that cortexlite's jobs use.

No Nomad client or consul-template ran to make this. It renders what `cortexlite/nomad/job.py` writes and
nothing more, and fails loudly on anything else (so a job that starts using more of the language is caught
here, not rendered wrong):

- literal templates, whose custom delimiters never occur in their text: written as they are;
- `{{ with nomadVar "PATH" }}...{{ end }}` blocks holding `{{ .ITEM.Value }}` or `{{ .ITEM.Value | toJSON }}`.

As consul-template does, a file is written atomically (by rename) and only when its contents change, and a
template reading a variable that does not exist is not rendered (Nomad holds the task until it exists);
an item the variable lacks is an error, as Go's templates fail on a nil item.

    with TemplateRunner(fake, "cortexlite-answer", task_dir):  # re-renders on every variable change
        ...
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.fake_nomad import FakeNomad

__all__ = ["TemplateError", "TemplateRunner", "render_template", "task_env"]

_WITH = re.compile(r'\{\{ with nomadVar "(?P<path>[^"]+)" \}\}(?P<body>.*?)\{\{ end \}\}', re.DOTALL)
_ITEM = re.compile(r"\{\{ \.(?P<item>[A-Za-z_][A-Za-z0-9_]*)\.Value(?P<json> \| toJSON)? \}\}")


class TemplateError(Exception):
    """A template the fake cannot render, or one Nomad would fail on (the task would not start)."""


def render_template(template: Mapping[str, Any], variables: Mapping[str, Mapping[str, str]]) -> str | None:
    """The template's output, or None while a variable it reads does not exist."""
    text = str(template["EmbeddedTmpl"])
    left = template.get("LeftDelim")
    if left not in (None, "", "{{"):
        if str(left) in text:
            raise TemplateError(f"{template['DestPath']}: literal template with its delimiter inside")
        return text
    output, position = [], 0
    for block in _WITH.finditer(text):
        output.append(_plain(text[position : block.start()]))
        items = variables.get(block["path"])
        if items is None:
            return None
        output.append(_fill(_checked(block["body"]), items, block["path"]))
        position = block.end()
    output.append(_plain(text[position:]))
    return "".join(output)


def task_env(job: Mapping[str, Any], task_dir: Path, alloc_id: str = "0123abcd") -> dict[str, str]:
    """The task's `Env` as the docker driver gives it, with the task directories at `task_dir` (not /secrets...)."""
    places = {
        "NOMAD_SECRETS_DIR": str(task_dir / "secrets"), "NOMAD_TASK_DIR": str(task_dir / "local"),
        "NOMAD_ALLOC_DIR": str(task_dir / "alloc"), "NOMAD_SHORT_ALLOC_ID": alloc_id,
    }  # fmt: skip
    env = dict(job["TaskGroups"][0]["Tasks"][0]["Env"])
    for name, value in env.items():
        filled = value
        for place, where in places.items():
            filled = filled.replace("${" + place + "}", where)
        if "${" in filled:
            raise TemplateError(f"{name}: interpolation the fake does not know: {filled}")
        env[name] = filled
    return env


class TemplateRunner:
    """Renders a job's task templates into `task_dir` now and again whenever the fake's variables change."""

    def __init__(self, fake: FakeNomad, job_id: str, task_dir: Path) -> None:
        self.fake, self.job_id, self.task_dir = fake, job_id, task_dir
        self.renders = 0  # files written (a change of contents), over all templates
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"templates-{job_id}", daemon=True)

    def render(self) -> list[str]:
        """Render every template once; the destinations still blocked on a missing variable."""
        job = self.fake.job(self.job_id)
        if job is None:
            raise TemplateError(f"no job {self.job_id}")
        variables = self.fake.variables
        blocked = []
        for template in job["TaskGroups"][0]["Tasks"][0].get("Templates") or []:
            text = render_template(template, variables)
            if text is None:
                blocked.append(str(template["DestPath"]))
                continue
            self._write(self.task_dir / str(template["DestPath"]), text, str(template.get("Perms") or "0644"))
        return blocked

    def _write(self, path: Path, text: str, perms: str) -> None:
        data = text.encode()
        if path.is_file() and path.read_bytes() == data:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(data)
        os.chmod(temporary, int(perms, 8))
        os.replace(temporary, path)
        self.renders += 1

    def _run(self) -> None:
        cluster = self.fake.cluster
        seen = -1
        while not self._stop.is_set():
            with cluster.cond:
                if cluster.index == seen:
                    cluster.cond.wait(0.2)
                seen = cluster.index
            try:
                self.render()
            except TemplateError as error:
                self.errors.append(str(error))

    def __enter__(self) -> TemplateRunner:
        self.render()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _fill(body: str, items: Mapping[str, str], path: str) -> str:
    def item(match: re.Match[str]) -> str:
        name = match["item"]
        if name not in items:
            raise TemplateError(f'template: nil pointer evaluating .{name}.Value (variable "{path}" lacks {name})')
        return json.dumps(items[name]) if match["json"] else items[name]

    return _ITEM.sub(item, body)


def _checked(body: str) -> str:
    if "{{" in _ITEM.sub("", body):
        raise TemplateError(f"template action the fake does not know in {body!r}")
    return body


def _plain(text: str) -> str:
    if "{{" in text:
        raise TemplateError(f"template action the fake does not know in {text!r}")
    return text
