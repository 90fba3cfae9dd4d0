"""python -m lenet5.serve: draw a digit in the browser and watch LeNet-5 read it.

A local web page, served entirely from the package (lenet5/web/: no CDN, it
works offline), and the JSON API it uses:

    POST /api/predict   body: a PNG (Content-Type: image/png), preprocessed as
                        lenet5.preprocess does, or {"pixels": 28 x 28 ints 0..255}
                        (application/json), taken as it is
    ->  {"digit": int, "probabilities": [10 floats], "input": 28 x 28 ints,
         "feature_maps": {"conv1": 6 x 28 x 28 floats, "conv2": 16 x 10 x 10 floats}}

Bad requests get a 4xx status and {"error": "..."}; the server goes on.  It
is the standard library's threading HTTP server: one process, no extra
dependency beyond Pillow (the ``images`` extra) for PNG bodies.  It binds to
127.0.0.1 unless told otherwise.

Exit status: 0 stopped with Ctrl-C; 1 a bad model file; 2 a bad argument.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import cli
from .images import ImageError, decode_image, preprocess
from .model import LeNet5

PROG = "lenet5.serve"
#: Request bodies larger than this are refused unread (a drawing's PNG is a few KB).
MAX_BODY = 2 * 1024 * 1024
#: A refused body up to this size is read and dropped before the answer (never kept).
DRAIN_MAX = 8 * MAX_BODY
#: The page's files: package data, served by name from this folder only.
WEB = Path(__file__).resolve().parent / "web"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


class RequestError(Exception):
    """A bad request: its HTTP status and a one-line message for the client."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def read_pixels(payload: Any) -> np.ndarray:
    """{"pixels": 28 x 28 ints in 0..255} as a (28, 28) uint8 image."""
    if not isinstance(payload, dict) or "pixels" not in payload:
        raise RequestError(HTTPStatus.BAD_REQUEST, 'the JSON body must be an object {"pixels": 28 x 28 ints}')
    try:
        pixels = np.array(payload["pixels"], dtype=np.float64)
    except (TypeError, ValueError):
        raise RequestError(HTTPStatus.BAD_REQUEST, "pixels must be 28 rows of 28 numbers") from None
    if pixels.shape != (28, 28):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"pixels must be 28 x 28, not {' x '.join(map(str, pixels.shape))}")
    if not np.all(np.isfinite(pixels)) or pixels.min() < 0 or pixels.max() > 255 or np.any(pixels % 1):
        raise RequestError(HTTPStatus.BAD_REQUEST, "pixels must be whole numbers in 0..255")
    return pixels.astype(np.uint8)


def answer(net: LeNet5, image: np.ndarray) -> Dict[str, Any]:
    """The API's reply for one (28, 28) uint8 image the network receives."""
    seen = net.activations(image)
    return {"digit": int(np.argmax(seen["outputs"])),  # ties to the smaller digit, as predict
            "probabilities": [round(float(p), 6) for p in seen["probabilities"]],
            "input": image.astype(int).tolist(),
            "feature_maps": {"conv1": np.round(seen["conv1"], 4).tolist(),
                             "conv2": np.round(seen["conv2"], 4).tolist()}}


class DigitServer(ThreadingHTTPServer):
    """The page and the API for one model; each request runs on its own thread."""

    daemon_threads = True

    def __init__(self, address: Tuple[str, int], net: LeNet5, quiet: bool = True) -> None:
        super().__init__(address, Handler)
        self.net, self.quiet = net, quiet
        self.pages = {p.name: p for p in WEB.iterdir() if p.suffix in TYPES}

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}/"


class Handler(BaseHTTPRequestHandler):
    """GET the page's files; POST /api/predict; anything else is a JSON 4xx."""

    server: DigitServer
    server_version = "lenet5"
    protocol_version = "HTTP/1.1"

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, payload: Any) -> None:
        self._send(status, json.dumps(payload, separators=(",", ":")).encode(), "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json(status, {"error": message})

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        name = "index.html" if self.path in ("/", "/index.html") else self.path.lstrip("/")
        page = self.server.pages.get(name)
        if page is None:
            if self.path.startswith("/api/"):
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.path} takes POST, not GET")
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such page: {self.path}")
            return
        self._send(HTTPStatus.OK, page.read_bytes(), TYPES[page.suffix])

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        try:
            if self.path != "/api/predict":
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such API: {self.path} (POST /api/predict)")
            self._json(HTTPStatus.OK, answer(self.server.net, self._image()))
        except RequestError as e:
            self.close_connection = True  # an unread body must not be taken for the next request
            self._error(e.status, str(e))

    def _discard(self, length: int) -> None:
        """Read and drop a refused body (up to DRAIN_MAX), so that a client still
        sending it reads the answer instead of a broken pipe; past that, close."""
        if length > DRAIN_MAX:
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                return
            length -= len(chunk)

    def _image(self) -> np.ndarray:
        """The request's image, as the network will receive it."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        if int(length) > MAX_BODY:
            self._discard(int(length))
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"the body is {int(length):,} bytes; the limit is {MAX_BODY:,}")
        body = self.rfile.read(int(length))
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind == "image/png":
            try:
                return preprocess(decode_image(body, "the PNG body"))
            except ImageError as e:
                raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, str(e)) from None
            except ImportError as e:  # Pillow is missing: the server says how to get it
                raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(e)) from None
        if kind == "application/json":
            try:
                payload = json.loads(body)
            except ValueError:
                raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None
            return read_pixels(payload)
        raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           f"Content-Type must be image/png or application/json, not {kind or 'missing'}")

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not served here (GET pages, POST /api/predict)")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the standard library's name)
        if not self.server.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


def start(net: LeNet5, host: str = "127.0.0.1", port: int = 0) -> DigitServer:
    """A server for net, answering on its own thread (port 0: any free port);
    call ``shutdown()`` then ``server_close()`` to stop it."""
    server = DigitServer((host, port), net)
    threading.Thread(target=server.serve_forever, name="lenet5-serve", daemon=True).start()
    return server


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(prog=cli.prog("lenet5.serve"),
                                description="A local page to draw digits and watch LeNet-5 read them.")
    p.add_argument("--model", metavar="PATH",
                   help="model file (.npz or .dat; default: the pretrained model, if this version ships one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=cli.port_number, default=8000, help="port (default 8000; 0: any free port)")
    p.add_argument("--log", action="store_true", help="print a line per request (default: quiet)")
    cli.add_version_option(p)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    """Serve until Ctrl-C; returns the exit status."""
    args = build_parser().parse_args(argv)

    def body() -> int:
        net = cli.load_model(args.model)
        try:
            server = DigitServer((args.host, args.port), net, quiet=not args.log)
        except OSError as e:
            raise cli.Stop(f"cannot listen on {args.host}:{args.port} ({e.strerror or e})", 2) from None
        cli.say(f"lenet5: open {server.url} and draw a digit (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            cli.say("lenet5.serve: stopped")
        finally:
            server.server_close()
        return 0

    return cli.run(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
