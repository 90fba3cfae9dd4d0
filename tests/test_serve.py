"""python -m lenet5.serve's JSON API, through the real server (uvicorn) on
loopback, over real sockets: answers, the activations behind them, every bad
request, keep-alive after errors, hostile bodies and headers, slow clients,
the decode pool's limit, the command's warnings, log and signals."""

import asyncio
import contextlib
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers import golden_params
from lenet5 import LeNet5, core, serve

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def net():
    return LeNet5(golden_params("mse_b300_n60000_e1.dat"))  # the reference's own model: 96.8 %


@pytest.fixture(scope="module")
def server(net):
    with serve.start(net) as srv:
        yield srv


def request(server, method, path, body=None, content_type=None, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(
            method,
            path,
            body=body,
            headers=dict(headers or {}, **({"Content-Type": content_type} if content_type else {})),
        )
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()
    finally:
        conn.close()


def png_of(digit, scale=10, dark_on_light=True):
    """An MNIST digit as a drawing would send it: dark ink on white, 280 x 280 PNG."""
    pixels = 255 - digit if dark_on_light else digit
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((28 * scale, 28 * scale), Image.BILINEAR).save(buf, "PNG")
    return buf.getvalue()


def test_forward_activations_match_the_forward_pass(net, mnist_test):
    images = mnist_test[0][:20]
    outputs = core.forward(net.params, images, kernel="reference")
    for image, expected in zip(images, outputs):
        conv1, conv2, out = core.forward_activations(net.params, image)
        assert np.array_equal(out.view(np.uint64), expected.view(np.uint64))
        assert conv1.shape == (6, 28, 28) and conv2.shape == (16, 10, 10)
        assert conv1.min() == 0.0 and conv2.min() == 0.0 and conv1.max() > 0  # after the ReLU
    from lenet5.numpy_engine import forward

    twin = forward(net.params, images[:1].reshape(1, 28, 28))
    np.testing.assert_allclose(core.forward_activations(net.params, images[0])[0], twin["layer1"][0], atol=1e-12)
    np.testing.assert_allclose(core.forward_activations(net.params, images[0])[1], twin["layer3"][0], atol=1e-12)


def test_png_drawings_are_read_like_the_originals(server, net, mnist_test):
    images, labels = mnist_test
    agree = 0
    for image in images[:40]:
        status, kind, body = request(server, "POST", "/api/predict", png_of(image), "image/png")
        assert status == 200 and kind == "application/json"
        answer = json.loads(body)
        assert set(answer) == {"digit", "probabilities", "input", "feature_maps"}
        assert np.array(answer["input"]).shape == (28, 28)
        assert abs(sum(answer["probabilities"]) - 1) < 1e-4
        assert np.array(answer["feature_maps"]["conv1"]).shape == (6, 28, 28)
        assert np.array(answer["feature_maps"]["conv2"]).shape == (16, 10, 10)
        agree += answer["digit"] == net.predict(image)
    assert agree >= 36  # preprocessing a 10x rendering changes a few borderline digits


def test_json_pixels_are_taken_as_they_are(server, net, mnist_test):
    image = mnist_test[0][3]
    status, _, body = request(
        server, "POST", "/api/predict", json.dumps({"pixels": image.tolist()}), "application/json"
    )
    answer = json.loads(body)
    assert status == 200 and answer["input"] == image.tolist()
    assert answer["digit"] == net.predict(image)
    expected = net.activations(image)
    np.testing.assert_allclose(answer["probabilities"], expected["probabilities"], atol=1e-6)
    np.testing.assert_allclose(answer["feature_maps"]["conv2"], expected["conv2"], atol=1e-4)


def test_the_page_and_its_files_are_served(server):
    status, kind, body = request(server, "GET", "/")
    assert status == 200 and kind.startswith("text/html") and b'<canvas id="pad"' in body
    for name, kind_start in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, kind, body = request(server, "GET", "/" + name)
        assert status == 200 and kind.startswith(kind_start) and len(body) > 100
    assert b"http" not in request(server, "GET", "/")[2].replace(b"http-equiv", b"")  # nothing from a CDN


BAD = [
    ("not an image", "POST", "/api/predict", b"hello, not a PNG", "image/png", 422, "not an image"),
    ("blank page", "POST", "/api/predict", None, "image/png", 422, "blank"),
    (
        "wrong shape",
        "POST",
        "/api/predict",
        json.dumps({"pixels": [[0] * 28] * 27}),
        "application/json",
        400,
        "28 x 28",
    ),
    (
        "values out of range",
        "POST",
        "/api/predict",
        json.dumps({"pixels": [[300] * 28] * 28}),
        "application/json",
        400,
        "0..255",
    ),
    ("not JSON", "POST", "/api/predict", b"{pixels", "application/json", 400, "not valid JSON"),
    ("no pixels", "POST", "/api/predict", json.dumps([1, 2]), "application/json", 400, "pixels"),
    ("wrong type", "POST", "/api/predict", b"x", "text/plain", 415, "image/png or application/json"),
    ("too large", "POST", "/api/predict", b"\0" * (serve.MAX_BODY + 1), "image/png", 413, "limit"),
    ("GET the API", "GET", "/api/predict", None, None, 405, "takes POST"),
    ("PUT", "PUT", "/", b"x", "text/plain", 405, "not served"),
    ("DELETE", "DELETE", "/api/predict", None, None, 405, "not served"),
    ("unknown page", "GET", "/secret.txt", None, None, 404, "no such page"),
    ("escape the folder", "GET", "/../serve.py", None, None, 404, "no such page"),
    ("unknown API", "POST", "/api/train", b"{}", "application/json", 404, "no such API"),
]


@pytest.mark.parametrize("what,method,path,body,kind,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_with_a_json_error_and_the_server_goes_on(
    server, mnist_test, what, method, path, body, kind, status, message
):
    if what == "blank page":
        buf = io.BytesIO()
        Image.new("L", (280, 280), 255).save(buf, "PNG")
        body = buf.getvalue()
    got, content_type, reply = request(server, method, path, body, kind)
    assert got == status and content_type == "application/json"
    assert message in json.loads(reply)["error"]
    ok, _, _ = request(server, "POST", "/api/predict", png_of(mnist_test[0][0]), "image/png")
    assert ok == 200


def test_concurrent_requests_are_answered_like_serial_ones(server, mnist_test):
    bodies = [png_of(image) for image in mnist_test[0][:12]]
    serial = [json.loads(request(server, "POST", "/api/predict", b, "image/png")[2]) for b in bodies]
    results = {}

    def worker(k):
        for i in range(k % 3, len(bodies), 3):
            results[(k, i)] = json.loads(request(server, "POST", "/api/predict", bodies[i], "image/png")[2])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 6 * 4
    for (_, i), answer in results.items():
        assert answer == serial[i]


def test_the_command_serves_on_loopback_and_stops_cleanly(tmp_path, net):
    model = tmp_path / "m.npz"
    net.save(model)
    p = subprocess.Popen(
        [sys.executable, "-m", "lenet5.serve", "--model", str(model), "--port", "0"], stderr=subprocess.PIPE, text=True
    )
    try:
        line = p.stderr.readline()
        assert "open http://127.0.0.1:" in line, line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        p.send_signal(2)  # Ctrl-C
        _, err = p.communicate(timeout=30)
    assert p.returncode == 0 and "Traceback" not in err


@pytest.mark.parametrize(
    "args,status,message",
    [
        (["--model", "/no/such.npz"], 1, "no such model file"),
        (["--port", "70000"], 2, "between 0 and 65535"),
        (["--host", "192.0.2.1"], 2, "cannot listen on 192.0.2.1"),  # an address of no interface here
    ],
)
def test_the_command_refuses_bad_arguments_in_one_line(args, status, message):
    start = time.time()
    r = subprocess.run([sys.executable, "-m", "lenet5.serve", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == status and message in r.stderr and "Traceback" not in r.stderr
    assert time.time() - start < 60


# ---------------------------------------------------------------------------
# HTTP as clients really speak it: keep-alive, errors, hostile bodies


def pixels_body(image):
    return json.dumps({"pixels": image.tolist()}).encode()


def raw_exchange(server, data, timeout=10.0, until_close=True):
    """Send data (bytes, or a list of parts) on a fresh socket, from a thread,
    while reading what the server sends back, as browsers and curl do: every
    byte until the server closes the connection (or, with until_close=False,
    until one whole answer), or for `timeout` seconds."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=timeout) as s:

        def send():
            with contextlib.suppress(OSError):  # the server may close before the end
                for part in data if isinstance(data, list) else [data]:
                    s.sendall(part)

        sender = threading.Thread(target=send)
        sender.start()
        got, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):  # a reset after the answer: it was read
                break
            if not chunk:
                break
            got += chunk
            if not until_close and b"\r\n\r\n" in got:
                head, _, rest = got.partition(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(rest) >= length[0]:
                    break
        sender.join(timeout)
        return got


def status_of(reply):
    return int(reply.split(b" ", 2)[1])


def json_of(reply):
    return json.loads(reply.partition(b"\r\n\r\n")[2])


def test_one_kept_alive_connection_answers_many_requests(server, mnist_test):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.connect()
    where = conn.sock.getsockname()
    images = mnist_test[0][:10]
    for i in range(150):
        if i % 3 == 0:
            conn.request("POST", "/api/predict", pixels_body(images[i % 10]), {"Content-Type": "application/json"})
        elif i % 3 == 1:
            conn.request("POST", "/api/predict", png_of(images[i % 10]), {"Content-Type": "image/png"})
        else:
            conn.request("GET", "/app.js")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200 and r.getheader("Connection") != "close", (i, body[:200])
    assert conn.sock.getsockname() == where  # never reconnected
    conn.close()


ERRORS_THEN_GOOD = [
    ("bad JSON", "POST", "/api/predict", b"{nope", "application/json", 400),
    ("wrong shape", "POST", "/api/predict", b'{"pixels": [[1, 2]]}', "application/json", 400),
    ("not an image", "POST", "/api/predict", b"GIF89a-not-really", "image/png", 422),
    ("wrong type", "POST", "/api/predict", b"x", "text/plain", 415),
    ("unknown page", "GET", "/nothing-here", None, None, 404),
    ("GET the API", "GET", "/api/predict", None, None, 405),
    ("PUT", "PUT", "/api/predict", b"x", "text/plain", 405),
    ("too large, drained", "POST", "/api/predict", b"\0" * (serve.MAX_BODY + 10), "image/png", 413),
]


@pytest.mark.parametrize("what,method,path,body,kind,status", ERRORS_THEN_GOOD, ids=[e[0] for e in ERRORS_THEN_GOOD])
def test_an_error_then_a_good_request_on_one_connection(server, mnist_test, what, method, path, body, kind, status):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    good = pixels_body(mnist_test[0][0])
    for _ in range(3):
        conn.request(method, path, body, {"Content-Type": kind} if kind else {})
        r = conn.getresponse()
        error = json.loads(r.read())
        assert r.status == status and r.getheader("Content-Type") == "application/json" and error["error"]
        assert r.getheader("Connection") != "close"  # the client may go on on this connection...
        where = conn.sock.getsockname()
        conn.request("POST", "/api/predict", good, {"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["digit"] == 7
        assert conn.sock.getsockname() == where  # ...and it did
    conn.close()


def test_json_nested_deep_is_a_400(server):
    for depth in (serve.JSON_DEPTH + 1, 5_000, 100_000):
        body = b"[" * depth + b"]" * depth
        status, kind, reply = request(server, "POST", "/api/predict", body, "application/json")
        assert status == 400 and kind == "application/json" and "nested deeper" in json.loads(reply)["error"]
    deep_object = b'{"a":' * 1000 + b"1" + b"}" * 1000
    status, _, reply = request(server, "POST", "/api/predict", deep_object, "application/json")
    assert status == 400 and "nested deeper" in json.loads(reply)["error"]


@pytest.mark.parametrize(
    "number", ["1" + "0" * 400, "1e400", "-1e400", "1" + "0" * 5000, "1e16", "NaN", "Infinity", "-Infinity"]
)
def test_huge_and_non_finite_numbers_are_a_400(server, number):
    rows = [[0] * 28 for _ in range(28)]
    body = json.dumps({"pixels": rows}).replace("0", number, 1).encode()
    status, kind, reply = request(server, "POST", "/api/predict", body, "application/json")
    error = json.loads(reply)["error"]
    assert status == 400 and kind == "application/json"
    assert "out of range" in error or "not a number JSON allows" in error, error


@pytest.mark.parametrize(
    "pixels,message",
    [
        ([["7"] * 28] * 28, "must be numbers"),
        ([[True] * 28] * 28, "must be numbers"),
        ([[None] * 28] * 28, "must be numbers"),
        ([[0] * 28] * 27 + [[0] * 27], "equal length"),
        ([[0.5] * 28] * 28, "whole numbers"),
        ([[-1] * 28] * 28, "0..255"),
        ("not rows", "rows of numbers"),
    ],
)
def test_pixels_must_be_whole_numbers_in_rows(server, pixels, message):
    status, _, reply = request(server, "POST", "/api/predict", json.dumps({"pixels": pixels}), "application/json")
    assert status == 400 and message in json.loads(reply)["error"]


@pytest.mark.parametrize("length", ["\u00b3", "-1", "1e3", "0x10", "10, 20", " "])
def test_a_bad_content_length_is_a_400_and_the_server_goes_on(server, mnist_test, length):
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    reply = raw_exchange(server, head + b"{}")
    assert status_of(reply) == 400  # uvicorn's own plain 400: the request never reached the app
    status, _, _ = request(server, "POST", "/api/predict", pixels_body(mnist_test[0][0]), "application/json")
    assert status == 200


def test_a_body_over_the_limit_is_refused_from_its_length_unread(server):
    for size in (serve.MAX_BODY + 1, serve.DRAIN_MAX + 1, 10**12):
        head = (
            f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {size}\r\n\r\n"
        ).encode()
        reply = raw_exchange(server, head, until_close=size > serve.DRAIN_MAX, timeout=10)
        assert status_of(reply) == 413 and "limit" in json_of(reply)["error"]
        assert (b"connection: close" in reply.lower()) == (size > serve.DRAIN_MAX)  # beyond: no draining


def test_expect_100_continue_with_an_oversized_length_gets_413_not_continue(server, mnist_test):
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nExpect: 100-continue\r\n"
        f"Content-Length: {serve.MAX_BODY + 1}\r\n\r\n"
    ).encode()
    reply = raw_exchange(server, head)
    assert reply.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in reply
    assert b"connection: close" in reply.lower() and "limit" in json_of(reply)["error"]
    # a body within the limit is welcome: 100 Continue, then the answer
    body = pixels_body(mnist_test[0][0])
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
        f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head)
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert status_of(reply) == 200 and json_of(reply)["digit"] == 7


def chunked(body, size=65536):
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def test_chunked_bodies_are_counted_while_they_stream(server, mnist_test):
    body = pixels_body(mnist_test[0][0])
    head = (
        b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    reply = raw_exchange(server, head + chunked(body, 100), until_close=False)
    assert status_of(reply) == 200 and json_of(reply)["digit"] == 7
    # over the limit but within the drain: 413, and the connection goes on
    big = chunked(b"7" * (serve.MAX_BODY + 100_000))
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(head + big)
        s.sendall(head + chunked(body))
        reply = b""
        while reply.count(b"HTTP/1.1 ") < 2 or not reply.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            assert chunk, reply
            reply += chunk
    first, second = reply.split(b"HTTP/1.1 ")[1:3]
    assert first.startswith(b"413 ") and b"the limit is" in first
    assert second.startswith(b"200 ")
    # far over: counted up to DRAIN_MAX, then 413 (read while sending) and the connection closes
    endless = [head] + [b"100000\r\n" + b"7" * 0x100000 + b"\r\n"] * 20
    reply = raw_exchange(server, endless, timeout=30)
    assert status_of(reply) == 413 and b"connection: close" in reply.lower()


def test_a_body_that_never_arrives_is_a_408(server, monkeypatch):
    monkeypatch.setattr(serve, "BODY_SECONDS", 1.0)
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    reply = raw_exchange(server, head + b"[1,", timeout=15)
    assert status_of(reply) == 408 and "did not arrive" in json_of(reply)["error"]


def test_malformed_requests_and_unknown_paths_get_json_errors(server):
    for method, path, status in (
        ("GET", "/api/predict/", 404),
        ("GET", "/docs", 404),
        ("GET", "/a/b/c", 404),
        ("POST", "/", 405),
        ("PATCH", "/api/predict", 405),
        ("OPTIONS", "/", 405),
    ):
        got, kind, reply = request(server, method, path, b"" if method != "GET" else None)
        assert got == status and kind == "application/json" and json.loads(reply)["error"], (method, path)
    got, _, _ = request(server, "HEAD", "/")
    assert got == 200


def test_the_api_is_described_in_openapi(server):
    status, kind, body = request(server, "GET", "/api/openapi.json")
    spec = json.loads(body)
    assert status == 200 and kind == "application/json" and spec["openapi"].startswith("3.")
    post = spec["paths"]["/api/predict"]["post"]
    assert set(post["requestBody"]["content"]) == {"image/png", "application/json"}
    assert {"200", "400", "413", "415", "422", "503"} <= set(post["responses"])


def test_an_overflowing_model_answers_a_500_in_valid_json(mnist_test):
    params = golden_params("mse_b300_n60000_e1.dat")
    with np.errstate(over="ignore"):
        core.block(params, "W1")[...] *= 1e308  # finite weights whose first convolution overflows
    huge = LeNet5(np.clip(params, -1.7e308, 1.7e308))
    assert not np.isfinite(huge.activations(mnist_test[0][0])["conv1"]).all()
    with serve.start(huge) as srv:
        status, kind, body = request(srv, "POST", "/api/predict", pixels_body(mnist_test[0][0]), "application/json")
    error = json.loads(body)  # never Infinity or NaN tokens
    assert status == 500 and kind == "application/json" and "overflowed" in error["error"]


def test_a_burst_of_connections_opens_at_once(server):
    host, port = server.server_address[:2]
    start = time.monotonic()
    socks = [socket.create_connection((host, port), timeout=10) for _ in range(200)]
    try:
        opened = time.monotonic() - start
        for s in socks:
            s.sendall(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in socks:
            assert s.recv(12).startswith(b"HTTP/1.1 200")
    finally:
        for s in socks:
            s.close()
    assert opened < 10  # the listen backlog holds them all (with a backlog of 5 it took over 30 s)


def test_slow_clients_do_not_hold_up_the_others(server, mnist_test):
    host, port = server.server_address[:2]
    slow = []
    try:
        for i in range(20):  # half a request line, half a header block, half a body
            s = socket.create_connection((host, port), timeout=10)
            s.sendall(
                [
                    b"GET / HT",
                    b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Le",
                    b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 5000\r\n\r\n[[1,",
                ][i % 3]
            )
            slow.append(s)
        body = pixels_body(mnist_test[0][0])
        for _ in range(10):
            status, _, reply = request(server, "POST", "/api/predict", body, "application/json")
            assert status == 200 and json.loads(reply)["digit"] == 7
    finally:
        for s in slow:
            s.close()


@pytest.mark.slow
def test_idle_connections_are_closed_after_a_few_seconds(server):
    host, port = server.server_address[:2]
    kept = http.client.HTTPConnection(host, port, timeout=30)
    kept.request("GET", "/style.css")
    kept.getresponse().read()
    silent = socket.create_connection((host, port), timeout=30)
    start = time.monotonic()
    assert kept.sock.recv(1) == b"" and silent.recv(1) == b""  # the server closed both
    assert time.monotonic() - start < serve.IDLE_SECONDS + 10
    kept.close()
    silent.close()


# ---------------------------------------------------------------------------
# The decode pool


def post_together(srv, body, kind, n):
    """n requests sent back to back on n connections, then their answers read."""
    host, port = srv.server_address[:2]
    conns = [http.client.HTTPConnection(host, port, timeout=120) for _ in range(n)]
    for conn in conns:
        conn.request("POST", "/api/predict", body, {"Content-Type": kind})
    results = []
    for conn in conns:
        r = conn.getresponse()
        results.append((r.status, r.getheader("Retry-After"), json.loads(r.read())))
        conn.close()
    return results


@contextlib.contextmanager
def pool_held(srv):
    """The server's decode pool with its only thread busy until the block ends."""
    release = threading.Event()
    held = asyncio.run_coroutine_threadsafe(srv.pool.run(release.wait), srv.loop)
    while srv.pool.waiting or not srv.pool._slots or not srv.pool._slots.locked():
        time.sleep(0.01)
    try:
        yield
    finally:
        release.set()
        held.result(30)


def test_the_decode_pool_refuses_with_503_and_retry_after_when_full(net, mnist_test):
    png = png_of(mnist_test[0][0])
    with serve.start(net, pool=serve.DecodePool(workers=1, waiting=1, wait_seconds=60)) as srv:
        host, port = srv.server_address[:2]
        with pool_held(srv):
            first = http.client.HTTPConnection(host, port, timeout=60)
            first.request("POST", "/api/predict", png, {"Content-Type": "image/png"})  # waits for the pool
            while not srv.pool.waiting:
                time.sleep(0.01)
            refused = post_together(srv, png, "image/png", 3)  # one waits already: refused at once
            # JSON pixels do not queue behind pictures
            status, _, _ = request(srv, "POST", "/api/predict", pixels_body(mnist_test[0][0]), "application/json")
            assert status == 200
        r = first.getresponse()
        assert r.status == 200 and json.loads(r.read())["digit"] == 7
        first.close()
    assert [r[0] for r in refused] == [503] * 3
    assert all(r[1] == str(serve.RETRY_AFTER) and "busy" in r[2]["error"] for r in refused)


def test_a_request_waits_for_the_pool_at_most_its_time(net, mnist_test):
    png = png_of(mnist_test[0][0])
    with serve.start(net, pool=serve.DecodePool(workers=1, waiting=32, wait_seconds=0.2)) as srv:
        with pool_held(srv):
            start = time.monotonic()
            status, _, body = request(srv, "POST", "/api/predict", png, "image/png")
            waited = time.monotonic() - start
        assert status == 503 and "busy" in json.loads(body)["error"] and waited >= 0.2
        assert request(srv, "POST", "/api/predict", png, "image/png")[0] == 200  # free again


def test_the_pool_frees_a_slot_when_the_job_ends_not_when_its_waiter_leaves():
    async def scenario():
        pool = serve.DecodePool(workers=1, waiting=1, wait_seconds=0.2)
        release = threading.Event()
        first = asyncio.ensure_future(pool.run(release.wait))
        await asyncio.sleep(0.05)
        first.cancel()  # the client left; its job still runs on the pool's thread
        with pytest.raises(serve.ApiError) as busy:
            await pool.run(lambda: "too early")
        assert busy.value.status == 503 and busy.value.headers == {"Retry-After": str(serve.RETRY_AFTER)}
        release.set()
        assert await pool.run(lambda: "after") == "after"
        # at most `waiting` wait: the next one is refused at once
        release.clear()
        holder = asyncio.ensure_future(pool.run(release.wait))
        await asyncio.sleep(0.05)
        waiter = asyncio.ensure_future(pool.run(lambda: "waited"))
        await asyncio.sleep(0.01)
        start = time.monotonic()
        with pytest.raises(serve.ApiError):
            await pool.run(lambda: "refused")
        assert time.monotonic() - start < 0.1
        release.set()
        assert await holder is True and await waiter == "waited"
        pool.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------------
# The command: hosts, warnings, log, signals, the extra


def serve_command(*args, env=None):
    """python -m lenet5.serve with args; returns (process, port) once it serves."""
    p = subprocess.Popen(
        [sys.executable, "-m", "lenet5.serve", "--port", "0", *args], stderr=subprocess.PIPE, text=True, env=env
    )
    lines = []
    try:
        while True:
            line = p.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
            if "open http://" in line:
                port = int(re.search(r":(\d+)/", line).group(1))
                return p, port, "".join(lines)
    except BaseException:
        p.kill()  # never leave a server behind
        p.communicate()
        raise


def stop(p, signum=signal.SIGINT):
    p.send_signal(signum)
    _, err = p.communicate(timeout=30)
    return p.returncode, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["INT", "TERM", "HUP"])
def test_the_command_stops_with_exit_0_on_signals(tmp_path, net, signum):
    net.save(tmp_path / "m.npz")
    p, port, _ = serve_command("--model", str(tmp_path / "m.npz"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/")
    assert conn.getresponse().status == 200
    code, err = stop(p, signum)
    conn.close()
    assert code == 0 and "stopped" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "host,warned", [("0.0.0.0", True), ("::", True), ("127.0.0.2", False), ("::1", False), ("localhost", False)]
)
def test_a_host_other_than_loopback_is_warned_about(tmp_path, net, host, warned):
    net.save(tmp_path / "m.npz")
    p, port, said = serve_command("--model", str(tmp_path / "m.npz"), "--host", host)
    try:
        target = {"0.0.0.0": "127.0.0.1", "::": "::1", "localhost": "127.0.0.1"}.get(host, host)
        family = socket.AF_INET6 if ":" in target else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect((target, port))
            s.sendall(b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert s.recv(12).startswith(b"HTTP/1.1 200")
    finally:
        code, err = stop(p)
    assert ("reachable from the network" in said) == warned, said
    assert ("[::1]" in said) == (":" in host) and code == 0


def test_the_access_log_escapes_control_characters_and_clients_that_leave(tmp_path, net):
    net.save(tmp_path / "m.npz")
    p, port, _ = serve_command("--model", str(tmp_path / "m.npz"), "--log")
    try:
        for target in ("/%1b%5b2J%1b%5d0;owned%07", "/x%0d%0aforged%20line", "/%e2%80%ae%c2%9b"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                assert s.recv(12).startswith(b"HTTP/1.1 404")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # leaves mid-body
            s.sendall(
                b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n[1,"
            )
            time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # leaves before its answer
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # unparseable
            s.sendall(b"\x1b[2J garbage\r\n\r\n")
            s.recv(100)
        time.sleep(1)
    finally:
        code, err = stop(p)
    assert code == 0 and "Traceback" not in err and "Error" not in err.replace("error", "")
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err and "\x9b" not in err
    assert "\r" not in err and "\nforged" not in err
    assert "\\x1b[2J\\x1b]0;owned\\x07" in err and "\\x0d\\x0aforged line" in err and "\\u202e\\x9b" in err
    assert "left before the answer" in err


def test_help_works_without_the_extra_and_serving_says_what_to_install(tmp_path):
    blocked = tmp_path / "blocked"
    for name in ("starlette", "uvicorn", "PIL"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text("raise ImportError('blocked for the test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocked), *sys.path]))
    r = subprocess.run(
        [sys.executable, "-m", "lenet5.serve", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0 and "--host" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "lenet5.serve", "--port", "0"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "needs starlette, uvicorn, pillow" in r.stderr and "pip install starlette uvicorn pillow" in r.stderr
    assert "lenet5-exact" not in r.stderr


def test_the_server_listens_on_ipv6_loopback(net, mnist_test):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with serve.start(net, host="::1") as srv:
        assert srv.url.startswith("http://[::1]:")
        status, _, body = request(srv, "POST", "/api/predict", pixels_body(mnist_test[0][0]), "application/json")
    assert status == 200 and json.loads(body)["digit"] == 7
