"""The conflict front: a local IAM that behaves like the real one under contention.

It forwards the IAM Query API to a moto server that it starts itself on a free loopback
port, and it holds each write to an entity (role, user, group, managed policy or instance
profile, named by the request's ``RoleName``, ``UserName``, ``GroupName``, ``PolicyArn`` or
``InstanceProfileName``) for a configurable service time. A write that arrives while another
write to the same entity is in flight gets the error IAM itself returns: HTTP 409 with a
Query-protocol XML body whose code is ``ConcurrentModification``. Reads
(``Get*``/``List*``/``Simulate*``/``Generate*``) are forwarded without holding. A write
takes effect at the end of its service time.

Endpoints besides the IAM Query API:

* ``GET /_lab/stats`` -> ``{"calls": N, "reads": N, "writes": N, "conflicts": N,
  "service_ms": N, "entities": {"role/NAME": {"writes": N, "conflicts": N}}}``. ``calls``
  counts every IAM request, ``writes`` the writes that were accepted (held and forwarded),
  ``conflicts`` the writes refused with ``ConcurrentModification``.
* ``POST /_lab/reset`` zeroes the counters and pending injections (the moto state is kept).
* ``POST /_lab/config`` with JSON ``{"service_ms": N, "inject_conflicts": N}`` (either
  field optional): the service time of later writes, and a number of next writes that get
  ``ConcurrentModification`` whatever the overlap.

This module needs only the standard library until :func:`start_moto` imports moto.
"""

from __future__ import annotations

import errno
import http.client
import json
import logging
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Set, Tuple
from urllib.parse import parse_qs, urlsplit

#: request parameters that name the entity a write is about, in order of precedence
ENTITY_PARAMS: Tuple[Tuple[str, str], ...] = (
    ("RoleName", "role"),
    ("UserName", "user"),
    ("GroupName", "group"),
    ("PolicyArn", "policy"),
    ("InstanceProfileName", "instance-profile"),
)

#: hop-by-hop headers that are not forwarded
HOP_HEADERS = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
}

CONFLICT_BODY = (
    '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">\n'
    "  <Error>\n"
    "    <Type>Sender</Type>\n"
    "    <Code>ConcurrentModification</Code>\n"
    "    <Message>{message}</Message>\n"
    "  </Error>\n"
    "  <RequestId>{request_id}</RequestId>\n"
    "</ErrorResponse>\n"
)

#: the install hint shown when moto is missing
MOTO_HINT = "the IAM lab needs moto's server: pip install 'writelane[lab]'"

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>")
_ERROR_MESSAGE = re.compile(rb"<Message>([^<]*)</Message>")


class LabError(Exception):
    """A lab that cannot start or run: the message says why, for the command line."""


def is_read(action: str) -> bool:
    """Whether an IAM action only reads (forwarded without holding)."""
    return action.startswith(("Get", "List", "Simulate", "Generate")) or action == ""


def entity_of(params: Dict[str, str]) -> Optional[str]:
    """The entity key (``role/NAME`` ...) a request is about, or None."""
    for param, kind in ENTITY_PARAMS:
        value = params.get(param)
        if value:
            return f"{kind}/{value}"
    if params.get("Action") == "CreatePolicy" and params.get("PolicyName"):
        return f"policy/{params['PolicyName']}"
    return None


def access_key_of(authorization: Optional[str]) -> Optional[str]:
    """The access key id of a SigV4 ``Authorization`` header (``Credential=KEY/...``)."""
    if not authorization:
        return None
    found = _CREDENTIAL.search(authorization)
    return found.group(1) if found else None


def error_of(status: int, body: bytes) -> Tuple[Optional[str], Optional[str]]:
    """The (code, message) of a Query-protocol error response, or (None, None)."""
    if status < 400:
        return None, None
    code = _ERROR_CODE.search(body)
    message = _ERROR_MESSAGE.search(body)
    return (
        code.group(1).decode("utf-8", "replace") if code else f"HTTP{status}",
        message.group(1).decode("utf-8", "replace") if message else None,
    )


@dataclass
class Call:
    """One IAM call the lab served, as the trail writer gets it."""

    action: str
    params: Dict[str, str]
    access_key: Optional[str]
    source_ip: str
    user_agent: Optional[str]
    status: int
    error_code: Optional[str]
    error_message: Optional[str]
    request_id: str
    read_only: bool
    time: float


class LabState:
    """Counters, configuration and the set of entities with a write in flight."""

    def __init__(self, service_ms: int) -> None:
        self.lock = threading.Lock()
        self.service_ms = service_ms
        self.inject_conflicts = 0
        self.in_flight: Set[str] = set()
        self.reset()

    def reset(self) -> None:
        """Zero every counter (the caller holds the lock or no thread runs yet)."""
        self.calls = 0
        self.reads = 0
        self.writes = 0
        self.conflicts = 0
        self.entities: Dict[str, Dict[str, int]] = {}

    def entity(self, key: str) -> Dict[str, int]:
        """The per-entity counters of ``key`` (created on first use)."""
        counters = self.entities.get(key)
        if counters is None:
            counters = {"writes": 0, "conflicts": 0}
            self.entities[key] = counters
        return counters

    def snapshot(self) -> Dict[str, Any]:
        """The JSON form served by ``GET /_lab/stats``."""
        with self.lock:
            return {
                "calls": self.calls,
                "reads": self.reads,
                "writes": self.writes,
                "conflicts": self.conflicts,
                "service_ms": self.service_ms,
                "entities": {k: dict(v) for k, v in sorted(self.entities.items())},
            }


class Forwarder:
    """Keeps one persistent connection to moto per handler thread."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.local.conn = conn
        return conn

    def forward(
        self, method: str, path: str, headers: Dict[str, str], body: bytes
    ) -> Tuple[int, List[Tuple[str, str]], bytes]:
        """Send one request to moto and return (status, headers, body)."""
        for attempt in range(2):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, resp.getheaders(), data
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def make_handler(
    state: LabState,
    forwarder: Forwarder,
    verbose: bool,
    on_call: Optional[Callable[[Call], None]] = None,
) -> type:
    """Build the request handler class bound to one lab's state. ``on_call`` gets every
    IAM call served (the trail writer)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle's algorithm and
        # the client's delayed ACK add about 40 ms to every keep-alive response.
        disable_nagle_algorithm = True
        server_version = "writelane-iamlab/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if verbose:
                sys.stderr.write("iamlab: " + (format % args) + "\n")

        def _send(
            self, status: int, body: bytes, content_type: str, extra: Optional[List[Tuple[str, str]]] = None
        ) -> None:
            self.send_response(status)
            sent_type = False
            for name, value in extra or []:
                if name.lower() in HOP_HEADERS or name.lower() in ("server", "date"):
                    continue
                if name.lower() == "content-type":
                    sent_type = True
                self.send_header(name, value)
            if not sent_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value).encode(), "application/json")

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks: List[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def do_GET(self) -> None:  # noqa: N802
            """Lab stats, or an IAM request sent as a query string."""
            if urlsplit(self.path).path == "/_lab/stats":
                self._send_json(200, state.snapshot())
                return
            self._iam("GET", b"")

        def do_POST(self) -> None:  # noqa: N802
            """Lab control, or an IAM Query API request."""
            body = self._body()
            path = urlsplit(self.path).path
            if path == "/_lab/reset":
                with state.lock:
                    state.reset()
                    state.inject_conflicts = 0
                self._send_json(200, {"ok": True})
                return
            if path == "/_lab/config":
                try:
                    conf = json.loads(body or b"{}")
                    if not isinstance(conf, dict):
                        raise ValueError("config must be a JSON object")
                    for key in conf:
                        if key not in ("service_ms", "inject_conflicts"):
                            raise ValueError(f"unknown config field {key!r}")
                        value = conf[key]
                        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                            raise ValueError(f"{key} must be a non-negative integer")
                except ValueError as exc:
                    self._send_json(400, {"error": str(exc)})
                    return
                with state.lock:
                    if "service_ms" in conf:
                        state.service_ms = conf["service_ms"]
                    if "inject_conflicts" in conf:
                        state.inject_conflicts = conf["inject_conflicts"]
                self._send_json(200, {"ok": True})
                return
            self._iam("POST", body)

        def _record(self, params: Dict[str, str], action: str, status: int,
                    data: bytes, request_id: Optional[str] = None) -> None:
            if on_call is None:
                return
            code, message = error_of(status, data)
            if request_id is None:
                found = re.search(rb"<RequestId>([^<]+)</RequestId>", data)
                request_id = found.group(1).decode() if found else str(uuid.uuid4())
            on_call(Call(
                action=action,
                params=params,
                access_key=access_key_of(self.headers.get("Authorization")),
                source_ip=self.client_address[0],
                user_agent=self.headers.get("User-Agent"),
                status=status,
                error_code=code,
                error_message=message,
                request_id=request_id,
                read_only=is_read(action),
                time=time.time(),
            ))

        def _iam(self, method: str, body: bytes) -> None:
            split = urlsplit(self.path)
            raw = split.query if method == "GET" else body.decode("utf-8", "replace")
            if method == "POST" and split.query:
                raw = split.query + "&" + raw
            params = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            action = params.get("Action", "")
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS
            }
            headers["Host"] = f"{forwarder.host}:{forwarder.port}"
            key = None if is_read(action) else entity_of(params)
            with state.lock:
                state.calls += 1
                if is_read(action):
                    state.reads += 1
                conflict = False
                if key is not None:
                    counters = state.entity(key)
                    if key in state.in_flight or state.inject_conflicts > 0:
                        conflict = True
                        if key not in state.in_flight and state.inject_conflicts > 0:
                            state.inject_conflicts -= 1
                        state.conflicts += 1
                        counters["conflicts"] += 1
                    else:
                        state.in_flight.add(key)
                        state.writes += 1
                        counters["writes"] += 1
                elif not is_read(action):
                    state.writes += 1
                service_ms = state.service_ms
            if conflict:
                message = (
                    "Cannot perform the operation because a concurrent modification "
                    f"of {key} is in progress."
                )
                request_id = str(uuid.uuid4())
                body_out = CONFLICT_BODY.format(message=message, request_id=request_id).encode()
                self._send(409, body_out, "text/xml")
                self._record(params, action, 409, body_out, request_id)
                return
            try:
                if key is not None and service_ms > 0:
                    # the write takes effect at the end of its service time
                    time.sleep(service_ms / 1000.0)
                try:
                    status, resp_headers, data = forwarder.forward(
                        method, self.path, headers, body
                    )
                except (http.client.HTTPException, OSError) as exc:
                    self._send_json(502, {"error": f"moto unreachable: {exc}"})
                    return
            finally:
                if key is not None:
                    with state.lock:
                        state.in_flight.discard(key)
            self._send(status, data, "text/xml", resp_headers)
            self._record(params, action, status, data)

    return Handler


def start_moto() -> Tuple[Any, str, int]:
    """Start a moto server in this process on a free loopback port."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise LabError(f"{MOTO_HINT} ({exc})") from None

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, host, port


class LabServer:
    """A running lab in this process: the conflict front and its moto server."""

    def __init__(
        self,
        port: int = 0,
        service_ms: int = 20,
        verbose: bool = False,
        on_call: Optional[Callable[[Call], None]] = None,
    ) -> None:
        if service_ms < 0:
            raise LabError("--service-ms must be non-negative")
        if not 0 <= port <= 65535:
            raise LabError(f"--port must be 0 to 65535, not {port}")
        if not verbose:
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.state = LabState(service_ms)
        # Bind before moto starts: a port in use is told at once.
        try:
            self.server = ThreadingHTTPServer(("127.0.0.1", port), _Deferred)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LabError(f"port {port} is in use: pick another or pass --port 0") from None
            raise LabError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
        self.server.daemon_threads = True
        try:
            self.moto, moto_host, moto_port = start_moto()
        except BaseException:
            self.server.server_close()
            raise
        self.moto_url = f"http://{moto_host}:{moto_port}"
        self.server.RequestHandlerClass = make_handler(
            self.state, Forwarder(moto_host, moto_port), verbose, on_call
        )
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def ready_line(self) -> str:
        """The one JSON line the command prints once the lab serves."""
        return json.dumps({"endpoint": self.endpoint, "moto": self.moto_url})

    def stop(self) -> None:
        """Stop serving and stop moto."""
        self.server.shutdown()
        self.server.server_close()
        try:
            self.moto.stop()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


class _Deferred(BaseHTTPRequestHandler):
    """Placeholder handler until moto is up (no request is served before)."""


__all__: List[str] = [
    "Call", "CONFLICT_BODY", "LabError", "LabServer", "LabState", "MOTO_HINT",
    "access_key_of", "entity_of", "error_of", "is_read", "make_handler", "start_moto",
]
