"""python -m lenet5.serve: draw a digit in the browser and watch LeNet-5 read it.

A page served entirely from the package (lenet5/web/: no CDN, it works
offline) and the JSON API it uses (docs/server.md says it all):

    POST /api/predict   body: a PNG (Content-Type: image/png), preprocessed as
                        lenet5.preprocess does, or {"pixels": 28 x 28 ints 0..255}
                        (application/json), taken as it is
    ->  {"digit": int, "probabilities": [10 floats], "input": 28 x 28 ints,
         "feature_maps": {"conv1": 6 x 28 x 28 floats, "conv2": 16 x 10 x 10 floats}}
    GET /api/openapi.json   the API described in OpenAPI 3.1

HTTP is uvicorn's (keep-alive, parsing, backlog, TCP settings) and the app is
Starlette's, both from the ``serve`` extra with Pillow.  The app's own rules
live here: bodies are limited before they are read, pictures are decoded in a
bounded pool, JSON is checked for depth and number size, every error the app
sees is a JSON object ``{"error": "..."}`` with its status, and answers are
always valid JSON.  An API route is a few lines: an async function of a
``Call`` (which reads and checks the body and runs the work) in ``APIS``.

Exit status: 0 stopped by Ctrl-C, SIGTERM or SIGHUP; 1 a bad model file or a
missing extra; 2 a bad argument or an address it cannot listen on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

import numpy as np

from . import cli
from ._version import __version__
from .images import ImageError, decode_image, decode_picture, preprocess
from .model import LeNet5
from .numbers import read_number, reading_payload

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROG = "lenet5.serve"
#: Request bodies larger than this are refused from their Content-Length, unread
#: (a drawing's PNG is a few KB; 28 x 28 pixels as JSON about 3 KB).
MAX_BODY = 2 * 1024 * 1024
#: A refused body up to this size is read and dropped after the 413, so that a
#: client still sending it reads the answer; a larger one closes the connection.
DRAIN_MAX = 16 * 1024 * 1024
#: A body must arrive within this many seconds of its request (else 408).
BODY_SECONDS = 30.0
#: JSON bodies: at most this deep, and numbers at most this large in size.
JSON_DEPTH = 16
JSON_NUMBER_MAX = 1e15
#: JSON bodies up to this size are parsed on the event loop (28 x 28 pixels: 3 KB, 0.4 ms).
SMALL_JSON = 64 * 1024
#: A kept-alive connection with no new request, or a new one that sends
#: nothing, is closed after this many seconds.
IDLE_SECONDS = 5
#: The decode pool: one picture per core at once; at most this many waiting,
#: each at most this long, before a 503 that says to retry after RETRY_AFTER s.
DECODE_WAITING = 32
DECODE_WAIT_SECONDS = 10.0
RETRY_AFTER = 2
#: The listen backlog (a burst of this many connections queues, not fails).
BACKLOG = 2048
#: Seconds a stop waits for requests in progress before it closes them.
STOP_SECONDS = 5
#: What to install when the extra is missing.
INSTALL = 'pip install starlette uvicorn pillow (from a checkout: pip install -e ".[serve]")'
#: The page's files: package data, served by name from this folder only.
WEB = Path(__file__).resolve().parent / "web"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
#: Headers on every answer of the app.
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

T = TypeVar("T")


# ---------------------------------------------------------------------------
# Errors, escaping, JSON


class ApiError(Exception):
    """A request the app refuses: its status, one line for the client, extra
    headers, and whether the connection must close (an unread body)."""

    def __init__(
        self, status: int, message: str, headers: Optional[Dict[str, str]] = None, close: bool = False
    ) -> None:
        super().__init__(message)
        self.status, self.headers, self.close = int(status), dict(headers or {}), close


class ClientLeft(Exception):
    """The client closed its connection before its body arrived."""


def escape(text: str, limit: int = 300) -> str:
    """text safe for a terminal: control and format characters (ESC, CR,
    bidirectional overrides, ...) and backslashes as Python escapes; cut at limit."""
    out = []
    for ch in text[:limit]:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii") if ord(ch) > 0xFF else f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out) + ("..." if len(text) > limit else "")


def encode(payload: Any) -> bytes:
    """payload as compact JSON; numbers JSON cannot hold (an overflowing model's
    inf or NaN) are a 500 with an error, never an invalid answer."""
    try:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        raise ApiError(
            HTTPStatus.INTERNAL_SERVER_ERROR,
            "the model's outputs overflowed (NaN or infinite numbers): this model gives no answer for this input",
        ) from None


class _NumberError(ValueError):
    pass


def _json_int(text: str) -> int:
    value = int(text) if len(text) <= 17 else None  # longer: out of range (and int() may refuse it)
    if value is None or abs(value) > JSON_NUMBER_MAX:
        raise _NumberError(
            f"a number in the JSON is out of range ({text[:24]}{'...' if len(text) > 24 else ''}; "
            f"numbers must lie within +-1e15)"
        )
    return value


def _json_float(text: str) -> float:
    value = float(text)
    if not abs(value) <= JSON_NUMBER_MAX:
        raise _NumberError(
            f"a number in the JSON is out of range ({text[:24]}{'...' if len(text) > 24 else ''}; "
            f"numbers must lie within +-1e15)"
        )
    return value


def _json_constant(text: str) -> Any:
    raise _NumberError(f"{text} is not a number JSON allows")


def parse_json(body: bytes) -> Any:
    """A JSON body, checked: UTF-8, at most JSON_DEPTH deep, numbers finite
    and within +-JSON_NUMBER_MAX (ApiError 400 otherwise)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON (not UTF-8)") from None
    too_deep = ApiError(HTTPStatus.BAD_REQUEST, f"the JSON is nested deeper than {JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except RecursionError:  # far deeper than JSON_DEPTH: the parser's own limit
        raise too_deep from None
    except _NumberError as e:
        raise ApiError(HTTPStatus.BAD_REQUEST, str(e)) from None
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None
    stack: List[Tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (list, dict)):
                if depth + 1 > JSON_DEPTH:
                    raise too_deep
                stack.append((child, depth + 1))
    return value


# ---------------------------------------------------------------------------
# The decode pool


def cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class DecodePool:
    """Runs picture work on at most ``workers`` threads at once.  A request
    waits for a free thread at most ``wait_seconds``, and at most ``waiting``
    requests wait; past either, ``run`` raises ApiError 503 with Retry-After.
    A thread's slot is freed when its job ends, even if its client has left."""

    def __init__(
        self, workers: Optional[int] = None, waiting: int = DECODE_WAITING, wait_seconds: float = DECODE_WAIT_SECONDS
    ) -> None:
        self.workers = workers or cores()
        self.max_waiting, self.wait_seconds = waiting, wait_seconds
        self.waiting = 0
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="lenet5-decode")
        self._slots: Optional[asyncio.Semaphore] = None  # made in the event loop that uses it

    def _busy(self) -> ApiError:
        return ApiError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "the server is busy decoding other pictures; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER)},
        )

    async def run(self, job: Callable[[], T]) -> T:
        """job()'s result, run on a pool thread when one is free."""
        loop = asyncio.get_running_loop()
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        slots = self._slots
        if not slots.locked():
            await slots.acquire()  # free: taken at once, before any other request can look
        elif self.waiting >= self.max_waiting:
            raise self._busy()
        else:
            self.waiting += 1
            try:
                if not await self._wait(slots):
                    raise self._busy()
            finally:
                self.waiting -= 1

        def free(_: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                loop.call_soon_threadsafe(slots.release)

        try:
            future = self._executor.submit(job)
        except BaseException:
            slots.release()
            raise
        future.add_done_callback(free)
        return await asyncio.wrap_future(future)

    async def _wait(self, slots: asyncio.Semaphore) -> bool:
        """Wait up to wait_seconds for a slot: True once held, False if none came.
        (Not asyncio.wait_for: before Python 3.12 it can drop a slot acquired as the
        time runs out.)  A slot acquired after this request has gone is given back."""
        task = asyncio.ensure_future(slots.acquire())

        def give_back(t: asyncio.Future[Any]) -> None:
            if not t.cancelled() and t.exception() is None:
                slots.release()

        try:
            await asyncio.wait({task}, timeout=self.wait_seconds)
        except BaseException:  # this request was cancelled while waiting
            task.cancel()
            task.add_done_callback(give_back)
            raise
        if task.done() and not task.cancelled():
            return True
        task.cancel()
        task.add_done_callback(give_back)  # it may have acquired in the meantime
        return False

    def close(self) -> None:
        """Stop taking work (jobs already running finish on their own)."""
        self._executor.shutdown(wait=False)


# ---------------------------------------------------------------------------
# A request as the API routes see it


@dataclass
class Site:
    """What every request shares: the model, the decode pool, the page's files
    and the access log (None: quiet)."""

    net: LeNet5
    pool: DecodePool
    pages: Dict[str, Path] = field(default_factory=dict)
    log: Optional[Callable[[str], None]] = None


class Call:
    """One API request: reads and checks its body and runs its work.  A route
    is ``async def route(call: Call) -> dict or bytes`` (bytes: JSON already
    encoded, see ``encode``); an ApiError it raises is the client's answer."""

    def __init__(self, request: Request, site: Site) -> None:
        self.request, self.site, self.net = request, site, site.net

    @property
    def content_type(self) -> str:
        """The body's media type, lower case, without parameters ('' if none)."""
        return (self.request.headers.get("content-type") or "").split(";")[0].strip().lower()

    def not_png_or_json(self) -> ApiError:
        """The 415 of a route that takes a PNG or JSON, naming the type it was given."""
        return ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type must be image/png or application/json, not {self.content_type or 'missing'}",
        )

    async def body(self, limit: int = MAX_BODY) -> bytes:
        """The whole body, at most limit bytes (413 otherwise: decided from the
        Content-Length before anything is read, or counted while a chunked body
        streams); 408 if it takes more than BODY_SECONDS to arrive."""
        headers = self.request.headers
        length = headers.get("content-length")
        if length is not None and not (length.isascii() and length.isdigit()):  # uvicorn refuses it before us
            raise ApiError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number", close=True)
        if length is not None and int(length) > limit:
            size = int(length)
            waiting = headers.get("expect", "").lower() == "100-continue"  # no 100 Continue is sent
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body is {size:,} bytes; the limit is {limit:,}",
                close=waiting or size > DRAIN_MAX,
            )  # uvicorn drains the rest, up to DRAIN_MAX
        deadline = time.monotonic() + BODY_SECONDS
        chunks: List[bytes] = []
        total, more = 0, True
        while more and total <= DRAIN_MAX:
            try:
                message = await asyncio.wait_for(self.request.receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise ApiError(
                    HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {BODY_SECONDS:g} s", close=True
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientLeft()
            data = message.get("body", b"")
            total += len(data)
            more = message.get("more_body", False)
            if total <= limit:
                chunks.append(data)
            else:
                chunks.clear()  # counted, then dropped: the client reads a 413, not a reset
        if total > limit:
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body is more than {limit:,} bytes; the limit is {limit:,}",
                close=more,
            )
        return b"".join(chunks)

    async def json(self, limit: int = MAX_BODY) -> Any:
        """The body as checked JSON (parse_json): a small body at once, a large
        one on a worker thread (parsing a megabyte takes a while)."""
        body = await self.body(limit)
        return parse_json(body) if len(body) <= SMALL_JSON else await self.compute(lambda: parse_json(body))

    async def decode(self, job: Callable[[], T]) -> T:
        """job() on the decode pool (503 when it is full); an ImageError it
        raises is a 422, a missing Pillow a 415."""
        try:
            return await self.site.pool.run(job)
        except ImageError as e:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(e)) from None
        except ImportError as e:
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(e)) from None
        except MemoryError:  # under a memory limit: this picture, not the server
            raise ApiError(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "not enough memory to decode this picture now",
                headers={"Retry-After": str(RETRY_AFTER)},
            ) from None

    async def compute(self, job: Callable[[], T]) -> T:
        """job() on a worker thread (light work: JSON, the network's forward pass)."""
        from starlette.concurrency import run_in_threadpool

        try:
            return await run_in_threadpool(job)
        except ImageError as e:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(e)) from None


# ---------------------------------------------------------------------------
# The API


def read_pixels(payload: Any, max_side: int = 28, min_side: int = 28) -> np.ndarray:
    """{"pixels": rows of whole numbers in 0..255} as a uint8 image (28 x 28 by
    default; other routes may allow other sizes)."""
    if not isinstance(payload, dict) or "pixels" not in payload:
        raise ApiError(HTTPStatus.BAD_REQUEST, 'the JSON body must be an object {"pixels": rows of ints 0..255}')
    rows = payload["pixels"]
    size = f"{max_side} x {max_side}" if max_side == min_side else f"at most {max_side} x {max_side}"
    if (
        not isinstance(rows, list)
        or not rows
        or not all(isinstance(r, list) for r in rows)
        or len({len(r) for r in rows}) != 1
    ):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"pixels must be rows of numbers of equal length ({size})")
    shape = (len(rows), len(rows[0]))
    if not (min_side <= shape[0] <= max_side and min_side <= shape[1] <= max_side):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"pixels must be {size}, not {shape[0]} x {shape[1]}")
    if not all(type(v) in (int, float) for r in rows for v in r):  # no strings, booleans or null
        raise ApiError(HTTPStatus.BAD_REQUEST, "pixels must be numbers (whole numbers in 0..255)")
    pixels = np.array(rows, dtype=np.float64)
    if pixels.min() < 0 or pixels.max() > 255 or np.any(pixels % 1):
        raise ApiError(HTTPStatus.BAD_REQUEST, "pixels must be whole numbers in 0..255")
    return pixels.astype(np.uint8)


def answer(net: LeNet5, image: np.ndarray) -> Dict[str, Any]:
    """/api/predict's answer for one (28, 28) uint8 image the network receives."""
    seen = net.activations(image)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing model: encode() refuses it
        return {
            "digit": int(np.argmax(seen["outputs"])),  # ties to the smaller digit, as predict
            "probabilities": [round(float(p), 6) for p in seen["probabilities"]],
            "input": image.astype(int).tolist(),
            "feature_maps": {
                "conv1": np.round(seen["conv1"], 4).tolist(),
                "conv2": np.round(seen["conv2"], 4).tolist(),
            },
        }


async def predict(call: Call) -> bytes:
    """POST /api/predict: a PNG (preprocessed) or 28 x 28 JSON pixels (as they are)."""
    net = call.net
    if call.content_type == "image/png":
        body = await call.body()
        return await call.decode(lambda: encode(answer(net, preprocess(decode_image(body, "the PNG body")))))
    if call.content_type == "application/json":
        payload = await call.json()
        return await call.compute(lambda: encode(answer(net, read_pixels(payload))))
    raise call.not_png_or_json()


#: /api/read-number takes JSON pixels of at most this many a side (a wide pad of digits).
NUMBER_SIDE = 1024
#: ... and so a larger JSON body: 1024 x 1024 pixels written "255," are about 4 MB.
NUMBER_JSON_BODY = 6 * 1024 * 1024


def _reading(net: LeNet5, picture: Any) -> bytes:
    """/api/read-number's answer: the --json object of ``predict --number``
    without "path", each digit with its 28 x 28 "input" (docs/SPEC.md §14)."""
    return encode(reading_payload(read_number(picture, net)))


async def read_number_route(call: Call) -> bytes:
    """POST /api/read-number: a PNG, or JSON pixels of at most NUMBER_SIDE a side,
    read as a whole number (lenet5.read_number); the boxes are in its pixels."""
    net = call.net
    if call.content_type == "image/png":
        body = await call.body()
        return await call.decode(lambda: _reading(net, decode_picture(body, "the PNG body")))
    if call.content_type == "application/json":
        payload = await call.json(NUMBER_JSON_BODY)
        pixels = await call.compute(lambda: read_pixels(payload, max_side=NUMBER_SIDE, min_side=1))
        return await call.decode(lambda: _reading(net, pixels))
    raise call.not_png_or_json()


def _schema_grid(rows: str, cols: str, item: Dict[str, Any]) -> Dict[str, Any]:
    return {"type": "array", "description": f"{rows} rows of {cols}", "items": {"type": "array", "items": item}}


PIXELS_BODY = {
    "type": "object",
    "required": ["pixels"],
    "properties": {"pixels": _schema_grid("28", "28", {"type": "integer", "minimum": 0, "maximum": 255})},
}
PREDICT_ANSWER = {
    "type": "object",
    "properties": {
        "digit": {"type": "integer", "minimum": 0, "maximum": 9},
        "probabilities": {"type": "array", "items": {"type": "number"}, "minItems": 10, "maxItems": 10},
        "input": _schema_grid("28", "28 ints 0..255", {"type": "integer"}),
        "feature_maps": {
            "type": "object",
            "description": "after the ReLU: conv1 6 x 28 x 28, conv2 16 x 10 x 10",
            "properties": {"conv1": {"type": "array"}, "conv2": {"type": "array"}},
        },
    },
}


@dataclass(frozen=True)
class Api:
    """One POST route of the API: its path, its function and what OpenAPI says of it."""

    path: str
    run: Callable[[Call], Awaitable[Any]]
    summary: str
    bodies: Dict[str, Any]  # media type -> schema of the request body
    answer: Dict[str, Any]  # schema of the 200 answer
    errors: Tuple[int, ...] = (400, 408, 413, 415, 422, 500, 503)


NUMBER_PIXELS_BODY = {
    "type": "object",
    "required": ["pixels"],
    "properties": {
        "pixels": _schema_grid(
            f"1..{NUMBER_SIDE}", f"1..{NUMBER_SIDE}", {"type": "integer", "minimum": 0, "maximum": 255}
        )
    },
}
NUMBER_ANSWER = {
    "type": "object",
    "properties": {
        "number": {"type": "string", "description": "the digits, left to right"},
        "confidence": {"type": "number", "description": "the least sure digit's probability"},
        "digits": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "digit": {"type": "integer", "minimum": 0, "maximum": 9},
                    "probability": {"type": "number"},
                    "probabilities": {"type": "array", "items": {"type": "number"}, "minItems": 10, "maxItems": 10},
                    "box": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "minItems": 4,
                        "maxItems": 4,
                        "description": "x0, y0, x1, y1 in the picture's pixels, x1 and y1 exclusive",
                    },
                    "input": _schema_grid("28", "28 ints 0..255", {"type": "integer"}),
                },
            },
        },
    },
}

APIS: List[Api] = [
    Api(
        "/api/predict",
        predict,
        "Read one digit: a PNG (preprocessed) or 28 x 28 pixels (as they are)",
        {"image/png": {"type": "string", "format": "binary"}, "application/json": PIXELS_BODY},
        PREDICT_ANSWER,
    ),
    Api(
        "/api/read-number",
        read_number_route,
        f"Read a whole number: a PNG, or pixels of at most {NUMBER_SIDE} x {NUMBER_SIDE} (both preprocessed)",
        {"image/png": {"type": "string", "format": "binary"}, "application/json": NUMBER_PIXELS_BODY},
        NUMBER_ANSWER,
    ),
]


def openapi(apis: List[Api]) -> Dict[str, Any]:
    """The API described in OpenAPI 3.1 (GET /api/openapi.json)."""
    error = {
        "description": 'refused: {"error": one line saying why}',
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    paths: Dict[str, Any] = {
        api.path: {
            "post": {
                "summary": api.summary,
                "requestBody": {"required": True, "content": {k: {"schema": v} for k, v in api.bodies.items()}},
                "responses": {
                    "200": {"description": "the answer", "content": {"application/json": {"schema": api.answer}}},
                    **{str(code): error for code in api.errors},
                },
            }
        }
        for api in apis
    }
    paths["/api/openapi.json"] = {
        "get": {"summary": "This description", "responses": {"200": {"description": "OpenAPI 3.1"}}}
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lenet5",
            "version": __version__,
            "description": f"LeNet-5 reads digits. Bodies up to {MAX_BODY:,} bytes; JSON at most "
            f"{JSON_DEPTH} deep, numbers within +-1e15. Every error is "
            '{"error": "..."} with its status; 503 says Retry-After.',
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}
        },
    }


# ---------------------------------------------------------------------------
# The app


def _need_extra() -> None:
    """ImportError naming what to install if Starlette, uvicorn or Pillow is missing."""
    missing = []
    for module, name in (("starlette", "starlette"), ("uvicorn", "uvicorn"), ("PIL", "pillow")):
        try:
            __import__(module)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"the server needs {', '.join(missing)}: {INSTALL}")


def _error_response(
    status: int, message: str, headers: Optional[Dict[str, str]] = None, close: bool = False
) -> Response:
    from starlette.responses import Response

    extra = dict(HEADERS, **(headers or {}), **({"Connection": "close"} if close else {}))
    return Response(encode({"error": message}), status_code=status, media_type="application/json", headers=extra)


class AccessLog:
    """ASGI middleware: one escaped line per request when a log is given, and a
    quiet one for a client that left before its answer."""

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app, self.site = app, site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        log = self.site.log
        if scope["type"] != "http" or log is None:
            await self.app(scope, receive, send)
            return
        start, status, left = time.perf_counter(), 0, False

        async def watch_receive() -> Message:
            nonlocal left
            message = await receive()
            left = left or message["type"] == "http.disconnect"
            return message

        async def watch_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, watch_receive, watch_send)
        finally:
            client = scope.get("client") or ("-", 0)
            query = scope.get("query_string", b"").decode("latin-1")
            request = f"{scope['method']} {scope['path']}{'?' + query if query else ''}"
            what = "left before the answer" if left else f"{status} {1000 * (time.perf_counter() - start):.1f} ms"
            log(f'{escape(str(client[0]))} "{escape(request)}" {what}')


def create_app(
    net: LeNet5,
    *,
    log: Optional[Callable[[str], None]] = None,
    pool: Optional[DecodePool] = None,
    apis: Optional[List[Api]] = None,
) -> Starlette:
    """The page and the API for net as an ASGI app (Starlette).  log, if given,
    receives one line per request; pool is the decode pool (default: one
    thread per core)."""
    _need_extra()
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import Response
    from starlette.routing import Route

    apis = list(APIS if apis is None else apis)
    site = Site(net, pool or DecodePool(), {p.name: p for p in WEB.iterdir() if p.suffix in TYPES}, log)
    listing = ", ".join(f"POST {api.path}" for api in apis)
    description = encode(openapi(apis))

    def endpoint(api: Api) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            result = await api.run(Call(request, site))
            body = result if isinstance(result, bytes) else encode(result)
            return Response(body, media_type="application/json", headers=HEADERS)

        return run

    async def page(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        path = site.pages.get(name)
        if path is None:
            raise HTTPException(HTTPStatus.NOT_FOUND)
        return Response(path.read_bytes(), media_type=TYPES[path.suffix], headers=HEADERS)

    async def describe(request: Request) -> Response:
        return Response(description, media_type="application/json", headers=HEADERS)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error_response(exc.status, str(exc), exc.headers, exc.close)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path, method = escape(request.url.path, 200), request.method
        if exc.status_code == HTTPStatus.NOT_FOUND:
            message = f"no such API: {path} ({listing})" if path.startswith("/api/") else f"no such page: {path}"
        elif (
            exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED
            and method in ("GET", "HEAD")
            and any(api.path == request.url.path for api in apis)
        ):
            message = f"{path} takes POST, not {method}"
        elif exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            message = f"{escape(method, 20)} is not served here (GET pages, {listing})"
        else:
            message = str(exc.detail)
        return _error_response(exc.status_code, message, dict(exc.headers or {}))

    async def left(request: Request, exc: Exception) -> Response:
        return _error_response(HTTPStatus.BAD_REQUEST, "the client left")  # nobody reads it

    async def failed(request: Request, exc: Exception) -> Response:
        return _error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (the server's log says more)")

    routes = [Route(api.path, endpoint(api), methods=["POST"]) for api in apis]
    routes += [
        Route("/api/openapi.json", describe, methods=["GET"]),
        Route("/", page, methods=["GET"]),
        Route("/{name}", page, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(AccessLog, site=site)],
        exception_handlers={ApiError: refused, HTTPException: http_error, ClientLeft: left, Exception: failed},
    )
    app.router.redirect_slashes = False  # "/api/predict/" is a 404, not a redirect
    app.state.site = site
    return app


# ---------------------------------------------------------------------------
# Listening and serving


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host (a name, an IPv4 or an IPv6 address) and port (0: any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)  # proto TCP: asyncio then sets TCP_NODELAY on each connection
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and 'localhost'."""
    if address.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def url_of(sock: socket.socket) -> str:
    """The page's address for a person on this machine."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):  # every interface: this machine reaches it on loopback
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def _protocol() -> type:
    """uvicorn's HTTP/1.1 protocol (h11), with TCP_NODELAY (an answer's header
    and body leave at once, not after the client's delayed ACK), and where a new
    connection that sends nothing is idle too: closed after IDLE_SECONDS like a
    kept-alive one."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if getattr(self, "timeout_keep_alive_task", "absent") is None:
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )

    return Protocol


def _server(app: Starlette, stop_on_signals: bool) -> Any:
    """A uvicorn Server for app.  With stop_on_signals (the command, on the main
    thread), SIGINT, SIGTERM and SIGHUP stop it gracefully (a second one at
    once) and are not raised again afterwards: the command exits 0."""
    import uvicorn

    class Server(uvicorn.Server):
        def install_signal_handlers(self) -> None:  # older uvicorn: the handlers are ours
            pass

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if not stop_on_signals:
                yield
                return

            def stop(signum: int, frame: Any) -> None:
                if self.should_exit:
                    self.force_exit = True
                self.should_exit = True

            names = [s for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s)]
            previous = {s: signal.signal(getattr(signal, s), stop) for s in names}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(getattr(signal, s), handler)

    config = uvicorn.Config(
        app,
        http=_protocol(),
        lifespan="off",
        access_log=False,
        log_config=None,
        timeout_keep_alive=IDLE_SECONDS,
        timeout_graceful_shutdown=STOP_SECONDS,
        backlog=BACKLOG,
        server_header=False,
    )
    return Server(config)


class Running:
    """A server answering on its own thread (made by ``start``); ``url``,
    ``server_address``; ``stop()`` (or ``shutdown()`` then ``server_close()``);
    ``loop``, its event loop, and ``pool``, its decode pool."""

    loop: asyncio.AbstractEventLoop

    def __init__(self, sock: socket.socket, server: Any, thread: threading.Thread, pool: DecodePool) -> None:
        self.sock, self.server, self.thread, self.pool = sock, server, thread, pool
        self.server_address: Tuple[str, int] = sock.getsockname()[:2]
        self.url = url_of(sock)

    def shutdown(self) -> None:
        """Stop taking requests, finish the ones in progress (up to STOP_SECONDS) and return."""
        self.server.should_exit = True
        self.thread.join(STOP_SECONDS + 10)
        self.pool.close()

    def server_close(self) -> None:
        """Close the listening socket (after shutdown)."""
        self.sock.close()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start(
    net: LeNet5,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log: Optional[Callable[[str], None]] = None,
    pool: Optional[DecodePool] = None,
) -> Running:
    """A server for net answering on its own thread (port 0: any free port), for
    programs and tests: ``with start(net) as srv: ... srv.url ...``."""
    pool = pool or DecodePool()
    app = create_app(net, log=log, pool=pool)
    sock = listen(host, port)
    server = _server(app, stop_on_signals=False)
    failure: List[BaseException] = []
    loops: List[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        await server.serve(sockets=[sock])

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as e:  # reported by start, below
            failure.append(e)

    thread = threading.Thread(target=run, name="lenet5-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        sock.close()
        raise RuntimeError(f"the server did not start: {failure[0] if failure else 'timed out'}")
    running = Running(sock, server, thread, pool)
    running.loop = loops[0]
    return running


def _logging(verbose: bool) -> None:
    """uvicorn's own messages (a request it cannot parse, an error in the app)
    on standard error, escaped; quiet leaves only errors."""
    import logging

    class Escaped(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return f"{PROG}: " + "\n".join(escape(line, 2000) for line in super().format(record).split("\n"))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Escaped("%(message)s"))
    logger = logging.getLogger("uvicorn")
    logger.handlers = [handler]
    logger.propagate = False
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING if verbose else logging.ERROR)


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(
        prog=cli.prog("lenet5.serve"),
        description="A page to draw digits and watch LeNet-5 read them, and its JSON API (docs/server.md).",
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        help="model file (.npz or .dat; default: the pretrained model, if this version ships one)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 or :: "
        "every interface, with a warning)",
    )
    p.add_argument("--port", type=cli.port_number, default=8000, help="port (default 8000; 0: any free port)")
    p.add_argument("--log", action="store_true", help="print a line per request (default: quiet)")
    cli.add_version_option(p)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Serve until Ctrl-C or SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        try:
            _need_extra()
        except ImportError as e:
            raise cli.Stop(str(e), 1) from None
        net = cli.load_model(args.model)
        try:
            sock = listen(args.host, args.port)
        except (OSError, UnicodeError) as e:
            raise cli.Stop(
                f"cannot listen on {args.host} port {args.port} ({getattr(e, 'strerror', None) or e})", 2
            ) from None
        pool = DecodePool()
        try:
            bound, port = sock.getsockname()[:2]
            if not is_loopback(bound):
                cli.say(
                    f"{PROG}: warning: listening on {bound} (--host {args.host}), not loopback: the page and "
                    f"its API are reachable from the network by anyone who can reach port {port} of this "
                    "machine, with no password and no encryption (docs/server.md)"
                )
            _logging(args.log)
            server = _server(create_app(net, log=cli.say if args.log else None, pool=pool), stop_on_signals=True)
            cli.say(f"lenet5: open {url_of(sock)} and draw a digit (Ctrl-C stops)")
            asyncio.run(server.serve(sockets=[sock]))
        finally:
            pool.close()
            sock.close()
        cli.say(f"{PROG}: stopped")
        return 0

    return cli.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
