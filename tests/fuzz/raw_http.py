"""Raw HTTP/1.1 for the fuzz: hypothesis strategies for requests as bytes, a socket exchange, reply parsing.

Requests go over a plain socket, so a malformed request reaches the server exactly as generated. Each
request carries its `flaws`: those in `PARSER_FLAWS` make a request the HTTP parser itself may refuse
(uvicorn's httptools protocol answers those itself, or the connection ends); a request that is
`complete=False` stops before the end its framing announces, so the server rightly waits for more.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

__all__ = ["MAX_HEADER_BYTES", "PARSER_FLAWS", "Exchange", "RawRequest", "Reply", "exchange", "raw_requests"]

# Flaws below the application: the parser (llhttp) may refuse such a request before the app sees it.
PARSER_FLAWS = frozenset(
    {
        "bad-method", "bad-version", "bad-target-bytes", "target-over-64k", "bad-header-name", "bad-header-bytes",
        "header-no-colon", "obs-fold", "bare-lf", "duplicate-content-length", "bad-content-length",
        "transfer-encoding-and-length", "bad-transfer-encoding", "bad-chunk", "body-past-content-length",
    }
)  # fmt: skip


# The runtime's default cap on a request's header lines ("name: value\r\n"), together.
MAX_HEADER_BYTES = 65_536


@dataclass(frozen=True)
class RawRequest:
    data: bytes
    method: str
    flaws: frozenset[str]
    complete: bool  # False: the body stops short of what the framing announces
    json_body: bytes | None = None  # a flawless prediction request's JSON body, which the predictor must receive

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis shows a failing example
        shown = self.data if len(self.data) <= 600 else self.data[:400] + b"..." + self.data[-150:]
        printer.text(f"RawRequest({shown!r} [{len(self.data)} bytes], {sorted(self.flaws)}, {self.complete=})")


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        values = [value for key, value in self.headers if key.lower() == name]
        return values[-1] if values else None


@dataclass
class Exchange:
    replies: list[Reply] = field(default_factory=list)
    ended: str = ""  # "eof", "reset", "waiting" (the server kept the connection open) or "send-failed"
    leftover: bytes = b""  # bytes after the last complete reply: a truncated or garbled response


_ROUTES = ["/", "/predict", "/healthz", "/readyz", "/metrics", "/nope", "/predict/", "//", "/%70redict", "*"]
_ACTIONS = ["raise", "keyerror", "base", "exit", "nan", "object", "surrogate", "deep", "text", "bytes", ""]
_query = st.one_of(
    st.just(b""),
    st.sampled_from(_ACTIONS).map(lambda action: f"?do={action}".encode()),
    st.sampled_from([b"?debug=true", b"?a=%zz&&=&b", b"?" + b"q=1&" * 500, b"?%ff=%fe"]),
    st.text(max_size=20).map(lambda text: b"?q=" + quote(text).encode()),
)
_predict_targets = st.tuples(st.sampled_from([b"/", b"/predict"]), _query).map(lambda parts: parts[0] + parts[1])
_targets = st.one_of(
    st.tuples(st.sampled_from(_ROUTES).map(str.encode), _query).map(lambda parts: parts[0] + parts[1]),
    st.text(max_size=30).map(lambda text: ("/" + quote(text, safe="/%")).encode()),
    st.sampled_from([1_000, 8_000, 65_000]).map(lambda n: b"/" + b"a" * n),
    st.sampled_from([b"/%", b"/%zz", b"/%ff%fe", b"/..%2f..%2fetc%2fpasswd", b"/%00", b"http://x/predict"]),
)
_bad_targets = st.one_of(
    st.sampled_from([b"/\xff", b"/ a", b"/\x00", b"/\x7f", b"", b"/\t", b"/?x=\xc3\xa9", b"/predict\xc3\xa9"]).map(
        lambda target: (target, "bad-target-bytes")
    ),
    st.just((b"/" + b"a" * 70_000, "target-over-64k")),  # httptools.parse_url keeps offsets in 16 bits
)
_methods = st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "POST"])
_bad_methods = st.sampled_from(["FOO", "get", "G\x00T", "", "POST\tX", "PRI", "P OST"])
_versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0"])
_bad_versions = st.sampled_from(["HTTP/2.0", "HTTP/9.9", "http/1.1", "HTTP/1.1 x", "HTTP/1", ""])
_CONTENT_TYPES = [
    None, "application/json", "application/json; charset=utf-8", "application/vnd.x+json", "text/plain",
    "text/plain; charset=bogus", "text/plain; charset=idna", "text/plain; charset=latin-1", 'text/plain; charset=""',
    "text/html", "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=xyz",
    "application/octet-stream", "image/png", "", "garbage;;;=", "application/json\xe9",
]  # fmt: skip
_JSON_TYPES = ("application/json", "application/json; charset=utf-8", "application/vnd.x+json")
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
_bodies = st.one_of(
    _json_values.map(lambda v: json.dumps(v).encode()),
    _json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.just(b'{"fail": true}'),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=60),
    st.sampled_from(
        [b"", b"{", b'{"a": 1', b"\xff\xfe", b'"\xff"', b'"\\ud800"', b"NaN", b"[1e999]", b"1" * 5000, b"[" * 100_000,
         b"[" * 500 + b"]" * 500, b"a=1&b=%zz&=&&", b"--xyz\r\ngarbage", b"\x00" * 100, b"x" * 70_000,
         b"--xyz\r\nContent-Disposition: form-data; name=f\r\n\r\nv\r\n--xyz--"]
    ),
)  # fmt: skip
_upgrades = st.tuples(
    st.sampled_from([b"Upgrade", b"Upgrade, HTTP2-Settings"]), st.sampled_from([b"h2c", b"websocket"])
)
_extra_headers = st.lists(
    st.one_of(
        st.tuples(st.just(b"X-Request-Id"), st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass"))),
        st.tuples(st.just(b"X-Test"), st.binary(max_size=10).filter(lambda b: not re.search(rb"[\r\n]", b))),
        st.just((b"Expect", b"100-continue")),
        st.sampled_from([b"close", b"keep-alive", b"upgrade"]).map(lambda v: (b"Connection", v)),
        st.sampled_from([b"h2c", b"websocket", b"foo"]).map(lambda v: (b"Upgrade", v)),
        st.sampled_from([1_000, 70_000, 500_000]).map(lambda n: (b"X-Huge", b"v" * n)),
        st.just((b"Accept-Encoding", b"gzip, br")),
    ),
    max_size=3,
)
_broken_headers = st.sampled_from(
    [(b"X-A: a\x00b", "bad-header-bytes"), (b"X-A: a\rb", "bad-header-bytes"), (b"X A: b", "bad-header-name"),
     (b": empty", "bad-header-name"), (b"X-\xff: b", "bad-header-name"), (b"NoColon", "header-no-colon"),
     (b"X-A: a\r\n folded", "obs-fold"), (b"X-A: \x7f", "bad-header-bytes"), (b"X-A: \xff\xfe", "")]
)  # fmt: skip
_FRAMINGS = ["length", "chunked", "none"]
_ODD_FRAMINGS = [
    "short", "long", "duplicate-length", "conflicting-lengths", "negative-length", "word-length", "huge-length",
    "te-and-length", "te-gzip", "te-twice", "bad-chunk", "unfinished-chunks", "chunk-extension",
]  # fmt: skip


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True once in `one_in` draws (False is the simpler case, which shrinking goes to)."""
    return draw(st.integers(0, one_in - 1)) == one_in - 1


def _framed(framing: str, body: bytes) -> tuple[list[bytes], bytes, str, bool]:
    """Headers, body bytes, flaw and completeness of one framing of `body`."""
    length = str(len(body)).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    te, cl = b"Transfer-Encoding: chunked", b"Content-Length: " + length
    past = "body-past-content-length" if body else ""  # without Content-Length, or a short one: a second "request"
    framings: dict[str, tuple[list[bytes], bytes, str, bool]] = {
        "length": ([cl], body, "", True),
        "none": ([], body, past, True),
        "chunked": ([te], chunked, "", True),
        "short": ([b"Content-Length: %d" % (len(body) + 10)], body, "", False),
        "long": ([b"Content-Length: %d" % max(len(body) - 3, 0)], body, past, True),
        "duplicate-length": ([cl, cl], body, "duplicate-content-length", True),
        "conflicting-lengths": ([b"Content-Length: 1", cl], body, "duplicate-content-length", True),
        "negative-length": ([b"Content-Length: -1"], body, "bad-content-length", True),
        "word-length": ([b"Content-Length: ten"], body, "bad-content-length", True),
        "huge-length": ([b"Content-Length: 99999999999999999999999"], body, "bad-content-length", False),
        "te-and-length": ([te, cl], chunked, "transfer-encoding-and-length", True),
        "te-gzip": ([b"Transfer-Encoding: gzip"], body, "bad-transfer-encoding", True),
        "te-twice": ([b"Transfer-Encoding: chunked, chunked"], chunked, "bad-transfer-encoding", True),
        "bad-chunk": ([te], b"zz\r\n" + body + b"\r\n0\r\n\r\n", "bad-chunk", True),
        "unfinished-chunks": ([te], chunked[: max(len(chunked) - 5, 0)], "", False),
        "chunk-extension": ([te], b"%x;ext=\"\xff\"\r\n%s\r\n0\r\n\r\n" % (len(body), body), "", True),
    }  # fmt: skip
    return framings[framing]


@st.composite
def raw_requests(draw: st.DrawFn) -> RawRequest:
    """One HTTP/1.1 request as bytes: mostly well-formed, with some flaws at each level."""
    flaws: set[str] = set()
    # Mostly predictions, so that payloads reach the predictor; the other routes and methods now and then.
    method = draw(_methods) if _rarely(draw, 4) else "POST"
    predicts = not _rarely(draw, 4)
    target = draw(_predict_targets) if predicts else draw(_targets)
    version = draw(_versions)
    if _rarely(draw, 25):
        method, flaws = draw(_bad_methods), {*flaws, "bad-method"}
    if _rarely(draw, 25):
        target, flaw = draw(_bad_targets)
        flaws.add(flaw)
    if _rarely(draw, 25):
        version, flaws = draw(_bad_versions), {*flaws, "bad-version"}
    content_type = draw(st.sampled_from(_CONTENT_TYPES)) if _rarely(draw, 2) else draw(st.sampled_from(_JSON_TYPES))
    headers = [b"Host: 127.0.0.1"]
    if content_type is not None:
        headers.append(b"Content-Type: " + content_type.encode("latin-1"))
    extra = draw(_extra_headers)
    if _rarely(draw, 10):  # what `curl --http2` sends to an http:// URL
        connection, protocol = draw(_upgrades)
        extra += [(b"Connection", connection), (b"Upgrade", protocol), (b"HTTP2-Settings", b"AAMAAABkAAQAoAAAAAIAAAAA")]
    for name, value in extra:
        headers.append(name + b": " + value)
        if re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value):  # control characters: not a valid field value
            flaws.add("bad-header-bytes")
    if _rarely(draw, 12):
        broken, flaw = draw(_broken_headers)
        headers.append(broken)
        flaws.add(flaw)
    if _rarely(draw, 20):
        headers += [b"X-Many-%d: v" % i for i in range(draw(st.sampled_from([100, 3000])))]
    body = draw(_bodies) if method not in ("GET", "HEAD") or _rarely(draw, 5) else b""
    if sum(len(line) + 2 for line in headers) > MAX_HEADER_BYTES:
        flaws.add("headers-over-limit")  # answered 431
    framing = draw(st.sampled_from(_ODD_FRAMINGS if _rarely(draw, 4) else _FRAMINGS))
    framing_headers, payload, framing_flaw, complete = _framed(framing, body)
    flaws.add(framing_flaw)
    if draw(st.booleans()):
        headers.append(b"Connection: close")
    newline = b"\r\n"
    if _rarely(draw, 30):
        newline = b"\n"
        flaws.add("bare-lf")
    head = method.encode("latin-1") + b" " + target + b" " + version.encode() + newline
    head += b"".join(line + newline for line in headers + framing_headers) + newline
    flaws.discard("")
    clean = predicts and method == "POST" and not flaws and framing in ("length", "chunked")
    json_body = body if clean and content_type in _JSON_TYPES and _is_json(body) else None
    return RawRequest(head + payload, method, frozenset(flaws), complete, json_body)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body or b"null")
    except ValueError:
        return False
    return True


def exchange(port: int, request: RawRequest, patience: float) -> Exchange:
    """Send `request` on a new connection and read replies until the server closes or falls silent."""
    result = Exchange()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(request.data)
        except OSError:  # the server closed or reset while we sent: it may have answered first
            result.ended = "send-failed"
        data = _receive(sock, request, patience, result)
    replies, result.leftover = parse_replies(data, head=request.method == "HEAD")
    result.replies = replies
    return result


def _receive(sock: socket.socket, request: RawRequest, patience: float, result: Exchange) -> bytes:
    data = b""
    deadline = time.monotonic() + patience
    quiet_after_reply = 0.05  # a pipelined second reply (to the bytes after the first request) comes at once
    while True:
        answered = any(reply.status >= 200 for reply in parse_replies(data, request.method == "HEAD")[0])
        wait = min(deadline - time.monotonic(), quiet_after_reply if answered else patience)
        if wait <= 0:
            result.ended = result.ended or "waiting"
            return data
        sock.settimeout(wait)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if answered or time.monotonic() >= deadline:
                result.ended = result.ended or "waiting"
                return data
            continue
        except OSError:
            result.ended = "reset"
            return data
        if not chunk:
            result.ended = result.ended or "eof"
            return data
        data += chunk


_STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5]\d\d) [^\r\n]*")


def parse_replies(data: bytes, head: bool) -> tuple[list[Reply], bytes]:
    """The complete HTTP/1.1 replies at the start of `data`, and what follows them."""
    replies: list[Reply] = []
    while (end := data.find(b"\r\n\r\n")) >= 0:
        lines = data[:end].split(b"\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            break
        headers = [tuple(line.split(b":", 1)) for line in lines[1:]]
        if any(len(pair) != 2 for pair in headers):
            break
        pairs = [(name.strip().lower(), value.strip()) for name, value in headers]
        status = int(match.group(1))
        lengths = [value for name, value in pairs if name == b"content-length"]
        size = int(lengths[-1]) if lengths else -1
        rest = data[end + 4 :]
        if status < 200 or (head and not replies and (rest.startswith(b"HTTP/1.1 ") or len(rest) < size)):
            size = 0  # no body (to HEAD: unless the server sent one anyway, as uvicorn's parser-error 400 does)
        if size < 0 or len(data) < end + 4 + size:
            break
        replies.append(Reply(status, pairs, data[end + 4 : end + 4 + size]))
        data = data[end + 4 + size :]
    return replies, data
