"""Turning invocations into outcomes inside the predictor's process: decode, predict, encode.

Runs on worker threads. User code is isolated here: whatever the predictor raises or returns, the
caller gets an `Outcome` (500 with the reason) and the server keeps serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loguru import logger

from .logs import request_id_var
from .payload import (
    BadPayload,
    Invocation,
    Outcome,
    decode_headers,
    decode_payload,
    decode_query,
    encode_prediction,
    error_outcome,
)
from .predictor import LoadedPredictor, describe_exception

__all__ = ["Handler"]

# What a predictor may raise to end its process: left to the caller (an "internal error" answer).
_EXITS = (SystemExit, KeyboardInterrupt)


class Handler:
    def __init__(self, predictor: LoadedPredictor, *, batched: bool) -> None:
        self.predictor = predictor
        self.batched = batched
        self._wants_headers = "headers" in predictor.predict_arguments

    def replace(self, predictor: LoadedPredictor) -> None:
        """Serve `predictor` from the next request on (a hot reload); requests running keep the old one."""
        self._wants_headers = True  # never drop headers a request of either predictor may need
        self.predictor = predictor
        self._wants_headers = "headers" in predictor.predict_arguments

    def run(self, invocations: Sequence[Invocation]) -> list[Outcome]:
        if self.batched:
            return self._run_batch(invocations)
        return [self._run_one(invocation) for invocation in invocations]

    def _run_one(self, inv: Invocation) -> Outcome:
        request_id_var.set(inv.request_id)
        try:
            payload = decode_payload(inv.body, inv.content_type)
        except BadPayload as exc:
            return error_outcome(400, str(exc), inv.request_id)
        query = decode_query(inv.query_string)
        headers = decode_headers(inv.headers) if self._wants_headers else {}
        debug = query.get("debug", "").lower() == "true"
        if debug:
            logger.info("payload: {!r}", payload)
        predictor = self.predictor
        try:
            result = predictor.call(payload, query, headers)
        except _EXITS:
            raise
        except BaseException as exc:  # a user's BaseException subclass is still the predictor's failure
            logger.opt(exception=exc).error("predict failed: {}", describe_exception(exc))
            return error_outcome(500, f"predict failed: {describe_exception(exc)}", inv.request_id)
        if debug:
            logger.info("prediction: {!r}", result)
        return _encode(result, inv.request_id)

    def _run_batch(self, invocations: Sequence[Invocation]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(invocations)
        payloads: list[Any] = []
        queries: list[dict[str, str]] = []
        headers: list[dict[str, str]] = []
        members: list[int] = []
        for index, inv in enumerate(invocations):
            try:
                payloads.append(decode_payload(inv.body, inv.content_type))
            except BadPayload as exc:
                outcomes[index] = error_outcome(400, str(exc), inv.request_id)
                continue
            queries.append(decode_query(inv.query_string))
            headers.append(decode_headers(inv.headers) if self._wants_headers else {})
            members.append(index)
        if members:
            ids = [invocations[i].request_id for i in members]
            request_id_var.set(",".join(ids))
            for index, outcome in zip(members, self._predict_batch(payloads, queries, headers, ids), strict=True):
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    def _predict_batch(
        self, payloads: list[Any], queries: list[dict[str, str]], headers: list[dict[str, str]], ids: list[str]
    ) -> list[Outcome]:
        size = len(payloads)
        try:
            results = self.predictor.call(payloads, queries, headers)
        except _EXITS:
            raise
        except BaseException as exc:
            logger.opt(exception=exc).error("predict failed for a batch of {}: {}", size, describe_exception(exc))
            return [error_outcome(500, f"predict failed: {describe_exception(exc)}", rid) for rid in ids]
        if not isinstance(results, list | tuple) or len(results) != size:
            got = f"a list of {len(results)}" if isinstance(results, list | tuple) else type(results).__name__
            message = (
                f"with server_side_batching, predict must return a list of {size} predictions "
                f"for a batch of {size} (got {got})"
            )
            logger.error(message)
            return [error_outcome(500, message, rid) for rid in ids]
        return [_encode(result, rid) for result, rid in zip(results, ids, strict=True)]


def _encode(result: Any, request_id: str) -> Outcome:
    try:
        return encode_prediction(result)
    except Exception as exc:
        logger.error("cannot encode the prediction: {}", exc)
        return error_outcome(500, f"cannot encode the prediction: {exc}", request_id)
