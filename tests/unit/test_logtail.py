"""Replica logs: tails across rotated files, rendering, merging, following, and the rotating log writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

import pytest

import cortexlite.logwriter
from cortexlite.logtail import LogLine, follow, merged_tail, render, tail_lines
from cortexlite.logwriter import rotate

_T0 = "2024-05-01T12:00:00.250000+00:00"


def _when(iso: str) -> str:
    """How `render` shows a time: local wall-clock time with milliseconds."""
    return datetime.fromtimestamp(datetime.fromisoformat(iso).timestamp()).strftime("%H:%M:%S.%f")[:-3]


def _record(iso: str | None, message: str, **extra: str) -> str:
    data: dict[str, str] = {"level": "INFO", "message": message, **extra}
    if iso is not None:
        data["time"] = iso
    return json.dumps(data)


def _rotated(path: Path, *generations: str) -> None:
    """Write `path.N` ... `path.1`, `path`: the oldest generation first."""
    for index, text in enumerate(generations):
        age = len(generations) - 1 - index
        (path.with_name(f"{path.name}.{age}") if age else path).write_text(text)


# tail_lines


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, []),
        (-1, []),
        (1, ["l5"]),
        (2, ["l4", "l5"]),
        (4, ["l2", "l3", "l4", "l5"]),
        (5, ["l1", "l2", "l3", "l4", "l5"]),
        (100, ["l1", "l2", "l3", "l4", "l5"]),
    ],
)
def test_tail_reaches_into_rotated_files(tmp_path: Path, count: int, expected: list[str]) -> None:
    log = tmp_path / "replica.log"
    _rotated(log, "l1\nl2\n", "l3\nl4\n", "l5\n")
    assert tail_lines(log, count) == expected


@pytest.mark.parametrize(
    ("files", "keep", "expected"),
    [
        ({}, 3, []),
        ({"replica.log.1": "a\nb\n"}, 3, ["a", "b"]),
        ({"replica.log.2": "a\n", "replica.log": "c\n"}, 3, ["a", "c"]),
        ({"replica.log.3": "a\n", "replica.log.1": "b\n", "replica.log": "c\n"}, 3, ["a", "b", "c"]),
        ({"replica.log.4": "x\n", "replica.log": "c\n"}, 3, ["c"]),
        ({"replica.log.2": "a\n", "replica.log.1": "b\n", "replica.log": "c\n"}, 1, ["b", "c"]),
        ({"replica.log": "\n\na\n\n   \nb"}, 3, ["a", "b"]),
        ({"replica.log": ""}, 3, []),
    ],
)
def test_tail_missing_and_partial(tmp_path: Path, files: dict[str, str], keep: int, expected: list[str]) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert tail_lines(tmp_path / "replica.log", 10, keep=keep) == expected


def test_tail_of_a_large_file(tmp_path: Path) -> None:
    log = tmp_path / "replica.log"
    lines = [f"line {index:06d} " + "x" * 40 for index in range(5000)]  # about 250 KB: several blocks
    log.write_text("\n".join(lines) + "\n")
    assert tail_lines(log, 3000) == lines[-3000:]
    assert tail_lines(log, 1) == lines[-1:]


def test_tail_does_not_mangle_undecodable_bytes(tmp_path: Path) -> None:
    log = tmp_path / "replica.log"
    log.write_bytes(b"ok\n\xff\xfe broken\n")
    assert tail_lines(log, 2) == ["ok", "\ufffd\ufffd broken"]


def test_tail_never_returns_part_of_a_line(tmp_path: Path) -> None:
    log = tmp_path / "replica.log"
    long_line = "a" * 70_000
    log.write_text(f"{long_line}\n\n\nb\n")
    assert tail_lines(log, 2) == [long_line, "b"]


# render


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (_record(_T0, "ready"), f"{_when(_T0)} INFO    ready"),
        (_record(_T0, "predict", request_id="r-1"), f"{_when(_T0)} INFO    [r-1] predict"),
        (_record(_T0, "predict", request_id=""), f"{_when(_T0)} INFO    predict"),
        (
            _record(_T0, "failed", request_id="r-2", exception="Traceback (most recent call last):\nValueError: x\n\n"),
            f"{_when(_T0)} INFO    [r-2] failed\nTraceback (most recent call last):\nValueError: x",
        ),
        (_record(None, "no time"), "--:--:-- INFO    no time"),
        (_record("yesterday", "bad time"), "--:--:-- INFO    bad time"),
        (json.dumps({"time": _T0, "level": "WARNING", "message": "w"}), f"{_when(_T0)} WARNING w"),
        (json.dumps({"time": _T0, "message": "no level"}), f"{_when(_T0)}         no level"),
    ],
)
def test_render_json(raw: str, expected: str) -> None:
    assert render(raw)[0] == expected


def test_render_keeps_the_time() -> None:
    assert render(_record(_T0, "x"))[1] == datetime.fromisoformat(_T0).timestamp()
    assert render(_record(None, "x"))[1] is None
    assert render(json.dumps({"time": 1714564800, "message": "x"}))[1] is None


@pytest.mark.parametrize(
    "raw",
    [
        "plain print output",
        "Segmentation fault (core dumped)",
        "",
        "{not json",
        "[1, 2]",
        "42",
        '"a string"',
        json.dumps({"time": _T0, "level": "INFO"}),
    ],
)
def test_render_other_lines_as_they_are(raw: str) -> None:
    assert render(raw) == (raw, None)


# merged_tail


def _at(second: int) -> str:
    return f"2024-05-01T12:00:{second:02d}+00:00"


def test_merged_tail_interleaves_by_time(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("\n".join([_record(_at(1), "a1"), _record(_at(3), "a3")]) + "\n")
    b_lines = [
        _record(_at(2), "b2"),
        "Traceback (most recent call last):",
        "RuntimeError: boom",
        _record(_at(4), "b4"),
    ]
    (tmp_path / "b.log").write_text("\n".join(b_lines) + "\n")
    merged = merged_tail({"b": tmp_path / "b.log", "a": tmp_path / "a.log"}, 10)
    assert [(line.source, line.text.rsplit(" ", 1)[-1]) for line in merged] == [
        ("a", "a1"),
        ("b", "b2"),
        ("b", "last):"),
        ("b", "boom"),
        ("a", "a3"),
        ("b", "b4"),
    ]
    assert merged[2] == LogLine("b", "Traceback (most recent call last):", None)
    assert merged[0].time == datetime.fromisoformat(_at(1)).timestamp()


def test_merged_tail_untimed_start_and_ties(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("booting\n" + _record(_at(5), "a5") + "\n")
    (tmp_path / "b.log").write_text(_record(_at(5), "b5") + "\n" + _record(_at(1), "b1") + "\n")
    merged = merged_tail({"a": tmp_path / "a.log", "b": tmp_path / "b.log"}, 10)
    assert [line.text.rsplit(" ", 1)[-1] for line in merged] == ["booting", "b1", "a5", "b5"]


def test_merged_tail_counts_per_source(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("".join(_record(_at(s), f"a{s}") + "\n" for s in range(10)))
    (tmp_path / "b.log").write_text(_record(_at(0), "b0") + "\n")
    merged = merged_tail({"a": tmp_path / "a.log", "b": tmp_path / "b.log", "gone": tmp_path / "gone.log"}, 3)
    assert [line.text.rsplit(" ", 1)[-1] for line in merged] == ["b0", "a7", "a8", "a9"]


# follow


def _append(path: Path, text: str) -> None:
    with path.open("a") as handle:
        handle.write(text)


def _replace(path: Path, text: str) -> None:
    """Rotation as the log writer does it: a new file (a new inode) under the same name."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def _stopper(actions: Mapping[int, Callable[[], object]], polls: int) -> Callable[[], bool]:
    """A `stop` callable that runs `actions[n]` on its n-th call and stops after `polls` calls."""
    calls = 0

    def stop() -> bool:
        nonlocal calls
        calls += 1
        if calls in actions:
            actions[calls]()
        return calls > polls

    return stop


def _texts(lines: list[LogLine]) -> list[tuple[str, str]]:
    return [(line.source, line.text) for line in lines]


def test_follow_appended_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("before\n")
    actions = {
        2: lambda: _append(log, "one\n"),
        3: lambda: _append(log, "tw"),
        5: lambda: _append(log, "o\nthree\n"),
        6: lambda: _append(log, _record(_T0, "json") + "\n"),
    }
    lines = list(follow(lambda: {"a": log}, _stopper(actions, 8), poll=0.01))
    assert _texts(lines) == [("a", "one"), ("a", "two"), ("a", "three"), ("a", f"{_when(_T0)} INFO    json")]
    assert lines[-1].time == datetime.fromisoformat(_T0).timestamp()


@pytest.mark.parametrize("new_text", ["r1\n", "r1\n" + "r2 is much longer than what the old file held\n"])
def test_follow_rotated_file(tmp_path: Path, new_text: str) -> None:
    log = tmp_path / "a.log"
    log.write_text("old old old\n")
    actions = {
        2: lambda: _append(log, "appended\n"),
        4: lambda: _replace(log, new_text),
        6: lambda: _append(log, "after\n"),
    }
    lines = list(follow(lambda: {"a": log}, _stopper(actions, 8), poll=0.01))
    expected = ["appended", *new_text.splitlines(), "after"]
    assert _texts(lines) == [("a", text) for text in expected]


def test_follow_reads_the_end_of_a_file_the_writer_rotated(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("old\n")

    def rotate_like_the_writer() -> None:
        _append(log, "last line before rotation\n")
        rotate(str(log), 2)
        log.write_text("first line after\n")

    lines = list(follow(lambda: {"a": log}, _stopper({2: rotate_like_the_writer}, 5), poll=0.01))
    assert _texts(lines) == [("a", "last line before rotation"), ("a", "first line after")]


def test_follow_sources_that_join_or_appear(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("a-old\n")
    sources = {"a": first}

    def join() -> None:
        second.write_text("b-start\n")
        sources["b"] = second

    actions = {2: join, 4: lambda: _append(first, "a-new\n"), 5: lambda: _append(second, "b-new\n")}
    lines = list(follow(lambda: dict(sources), _stopper(actions, 7), poll=0.01))
    assert _texts(lines) == [("b", "b-start"), ("a", "a-new"), ("b", "b-new")]


def test_follow_a_file_created_later(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    actions = {3: lambda: log.write_text("first\n")}
    lines = list(follow(lambda: {"a": log}, _stopper(actions, 5), poll=0.01))
    assert _texts(lines) == [("a", "first")]


def test_follow_stops_at_once(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("x\n")
    assert list(follow(lambda: {"a": log}, lambda: True, poll=0.01)) == []


# rotate and the log writer


@pytest.mark.parametrize(
    ("existing", "keep", "expected"),
    [
        (["f"], 2, {"f.1": "f"}),
        (["f", "f.1"], 2, {"f.1": "f", "f.2": "f.1"}),
        (["f", "f.1", "f.2"], 2, {"f.1": "f", "f.2": "f.1"}),
        (["f", "f.1", "f.2"], 3, {"f.1": "f", "f.2": "f.1", "f.3": "f.2"}),
        (["f", "f.2"], 3, {"f.1": "f", "f.3": "f.2"}),
        (["f", "f.1"], 1, {"f.1": "f"}),
        (["f"], 0, {}),
        ([], 2, {}),
    ],
)
def test_rotate(tmp_path: Path, existing: list[str], keep: int, expected: dict[str, str]) -> None:
    for name in existing:
        (tmp_path / name).write_text(name)
    rotate(str(tmp_path / "f"), keep)
    assert {path.name: path.read_text() for path in tmp_path.iterdir()} == expected


def _writer(path: Path, max_bytes: int = 1000, keep: int = 2) -> subprocess.Popen[bytes]:
    script = str(Path(cortexlite.logwriter.__file__))
    command = [sys.executable, "-I", "-S", script, str(path), str(max_bytes), str(keep)]
    return subprocess.Popen(command, stdin=subprocess.PIPE, bufsize=0)


def _generations(path: Path, keep: int = 2) -> list[Path]:
    """`path.KEEP` ... `path.1`, `path`: the oldest first."""
    return [path.with_name(f"{path.name}.{index}") for index in range(keep, 0, -1)] + [path]


def _logged(path: Path) -> bytes:
    data = b""
    for file in _generations(path):
        try:
            data += file.read_bytes()
        except FileNotFoundError:
            pass
    return data


def _send(process: subprocess.Popen[bytes], path: Path, chunk: bytes) -> None:
    """Write one chunk and wait until the writer has stored it, so that every chunk is read on its own."""
    assert process.stdin is not None
    process.stdin.write(chunk)
    deadline = time.monotonic() + 10
    while not _logged(path).endswith(chunk):
        assert time.monotonic() < deadline, f"the log writer never stored {chunk[:20]!r}"
        time.sleep(0.002)


def _chunk(first_line: int, lines: int = 7) -> bytes:
    return b"".join(
        f"line {index:04d} ".ljust(49, "x").encode() + b"\n" for index in range(first_line, first_line + lines)
    )


def test_log_writer_rotates_by_size(tmp_path: Path) -> None:
    log = tmp_path / "replica.log"
    chunks = [_chunk(index * 7) for index in range(16)]  # 16 x 350 bytes: rotations after every third
    process = _writer(log)
    for chunk in chunks:
        _send(process, log, chunk)
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=10) == 0
    written = b"".join(chunks)
    assert [file.exists() for file in _generations(log)] == [True, True, True]
    assert not log.with_name("replica.log.3").exists()
    sizes = [file.stat().st_size for file in _generations(log)]
    assert all(size <= 1000 + len(chunks[0]) for size in sizes)
    assert sizes == [1050, 1050, 350]
    kept = _logged(log)
    assert written.endswith(kept) and len(kept) == sum(sizes)
    assert tail_lines(log, 49, keep=2) == written.decode().splitlines()[-49:]


def test_log_writer_counts_an_existing_file(tmp_path: Path) -> None:
    log = tmp_path / "replica.log"
    log.write_bytes(b"earlier\n" * 100)  # 800 bytes
    process = _writer(log)
    _send(process, log, _chunk(0))
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=10) == 0
    assert not log.exists()
    assert log.with_name("replica.log.1").read_bytes() == b"earlier\n" * 100 + _chunk(0)


def test_log_writer_ignores_stop_signals_until_end_of_input(tmp_path: Path) -> None:
    log = tmp_path / "replica.log"
    process = _writer(log, max_bytes=1 << 20)
    _send(process, log, b"before the signal\n")  # stored: the writer has set up its signal handling
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        process.send_signal(sig)
    _send(process, log, b"after the signal\n")
    assert process.poll() is None
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=10) == 0
    assert log.read_bytes() == b"before the signal\nafter the signal\n"
