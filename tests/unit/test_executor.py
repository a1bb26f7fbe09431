"""ThreadWorker and the inline path, on a real event loop with a real (tiny) predictor."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from cortexlite_runtime.executor import Scheduler, ThreadWorker
from cortexlite_runtime.handler import Handler
from cortexlite_runtime.inline import InlinePolicy
from cortexlite_runtime.payload import Invocation
from cortexlite_runtime.predictor import LoadedPredictor
from cortexlite_runtime.spec import PredictorType


class Sleeper:
    def predict(self, payload: dict[str, Any]) -> dict[str, Any]:
        time.sleep(payload["seconds"])
        return {"n": payload["n"], "thread": threading.current_thread().name}


def _invocation(n: int, seconds: float = 0.0) -> Invocation:
    body = json.dumps({"n": n, "seconds": seconds}).encode()
    return Invocation(str(n), body, "application/json", b"", [])


async def _scenario() -> list[tuple[int, str]]:
    loop = asyncio.get_running_loop()
    instance = Sleeper()
    handler = Handler(LoadedPredictor(instance, instance.predict, ("payload",), PredictorType.PYTHON), batched=False)
    policy = InlinePolicy(limit=0.1, warmup=3)
    scheduler = Scheduler(loop)
    worker = ThreadWorker(scheduler, handler, threads=1, inline=policy)
    scheduler.workers.append(worker)
    seen: list[tuple[int, str]] = []

    async def call(n: int, seconds: float = 0.0) -> None:
        (outcome,) = await scheduler.submit([_invocation(n, seconds)])
        answer = json.loads(outcome.body)
        seen.append((answer["n"], answer["thread"]))

    try:
        for n in range(3):  # the proof, on the thread
            await call(n)
        await call(3)  # inline now
        await call(4, seconds=0.2)  # inline, too slow: back to the thread, proof doubled to 6
        wave_a = [asyncio.ensure_future(call(n, seconds=0.05)) for n in range(5, 13)]
        while len(seen) < 11:  # six of wave A done: the proof is back, two still on the thread
            await asyncio.sleep(0.001)
        assert policy.allowed and worker._outstanding == 2
        wave_b = [asyncio.ensure_future(call(n)) for n in range(13, 16)]
        await asyncio.gather(*wave_a, *wave_b)
    finally:
        scheduler.close(timeout=5)
    return seen


def test_inline_path_waits_for_the_thread_to_drain_and_keeps_order() -> None:
    seen = asyncio.run(_scenario())
    assert [n for n, _ in seen] == list(range(16)), "answers in submission order"
    threads = dict(seen)
    assert [threads[n] for n in range(3)] == ["predict-0"] * 3
    assert threads[3] == threads[4] == "MainThread"
    assert {threads[n] for n in range(5, 13)} == {"predict-0"}
    assert {threads[n] for n in range(13, 16)} == {"MainThread"}, "held jobs ran on the loop once the thread drained"
