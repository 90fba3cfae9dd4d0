"""The server under load and hostile traffic, through real sockets: a mixed
load of JSON and PNG requests from several clients with no error, normal
requests answered while many connections dribble their headers, and three
decompression-bomb strips posted at once under a memory ceiling.  Timings are
reported by benchmarks/serve_load.py, never asserted here."""

import http.client
import io
import json
import re
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

from helpers import golden_params
from lenet5 import LeNet5, serve

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def net():
    return LeNet5(golden_params("mse_b300_n60000_e1.dat"))


def png_of(digit):
    buf = io.BytesIO()
    Image.fromarray(255 - digit).resize((280, 280), Image.BILINEAR).save(buf, "PNG")
    return buf.getvalue()


def mixed_load(srv, images, clients, per_client):
    """clients threads, each on its own kept-alive connection, alternating JSON
    and PNG bodies; returns the failures (status, or exception) and the count."""
    host, port = srv.server_address[:2]
    bodies = [(json.dumps({"pixels": im.tolist()}).encode(), "application/json") for im in images]
    bodies += [(png_of(im), "image/png") for im in images]
    failures, answered = [], []

    def client(k):
        conn = http.client.HTTPConnection(host, port, timeout=60)
        for i in range(per_client):
            body, kind = bodies[(k + i) % len(bodies)]
            try:
                conn.request("POST", "/api/predict", body, {"Content-Type": kind})
                r = conn.getresponse()
                answer = json.loads(r.read())
                if r.status != 200 or not 0 <= answer["digit"] <= 9:
                    failures.append((r.status, answer))
                answered.append(1)
            except Exception as e:  # noqa: BLE001 - every failure is reported by the test
                failures.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return failures, len(answered)


def test_a_mixed_load_from_8_clients_has_no_error(net, mnist_test):
    with serve.start(net) as srv:
        failures, answered = mixed_load(srv, mnist_test[0][:10], clients=8, per_client=25)
    assert failures == [] and answered == 8 * 25


@pytest.mark.slow
def test_8_clients_times_100_mixed_requests_have_no_error(net, mnist_test):
    with serve.start(net) as srv:
        failures, answered = mixed_load(srv, mnist_test[0][:20], clients=8, per_client=100)
    assert failures == [] and answered == 800


def test_normal_requests_are_answered_while_150_connections_dribble_their_headers(net, mnist_test):
    body = json.dumps({"pixels": mnist_test[0][0].tolist()}).encode()
    header = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: " + b"z" * 200
    with serve.start(net) as srv:
        host, port = srv.server_address[:2]
        dribblers = [socket.create_connection((host, port), timeout=10) for _ in range(150)]
        stop = threading.Event()

        def dribble():
            for i in range(len(header)):
                if stop.is_set():
                    return
                for s in dribblers:
                    try:
                        s.sendall(header[i : i + 1])
                    except OSError:
                        pass
                time.sleep(0.05)

        sender = threading.Thread(target=dribble)
        sender.start()
        try:
            time.sleep(0.3)
            statuses = []
            for _ in range(20):
                conn = http.client.HTTPConnection(host, port, timeout=30)
                conn.request("POST", "/api/predict", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                statuses.append((r.status, json.loads(r.read())["digit"]))
                conn.close()
            still_open = 0
            for s in dribblers:  # the dribblers were not dropped to make room
                s.setblocking(False)
                try:
                    still_open += s.recv(1) != b""
                except BlockingIOError:
                    still_open += 1
        finally:
            stop.set()
            sender.join(30)
            for s in dribblers:
                s.close()
    assert statuses == [(200, 7)] * 20
    assert still_open == 150


def strip_png(width=16_666_666, height=3):
    """A 6 KB 1-bit PNG of 50 megapixels (just under the pixel cap) in a strip one
    row of blocks high: the shape that once took the server to gigabytes."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress((b"\x00" + b"\xff" * ((width + 7) // 8)) * height, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


#: The server's own ceiling in this test (an address-space limit, so that a
#: server that cannot keep its memory bounded fails here, not the machine).
ADDRESS_SPACE = 4 << 30
#: The peak resident memory the server must stay under.
PEAK_RSS = 1536 << 20


@pytest.mark.slow
def test_three_strip_bombs_at_once_are_answered_under_the_memory_ceiling(tmp_path, net, mnist_test):
    net.save(tmp_path / "m.npz")
    bomb = strip_png()
    assert len(bomb) < 8 * 1024

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    p = subprocess.Popen(
        [sys.executable, "-m", "lenet5.serve", "--model", str(tmp_path / "m.npz"), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit,
    )
    try:
        port = int(re.search(r":(\d+)/", p.stderr.readline()).group(1))
        results = []

        def post():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                conn.request("POST", "/api/predict", bomb, {"Content-Type": "image/png"})
                r = conn.getresponse()
                results.append((r.status, json.loads(r.read())))
            except Exception as e:  # noqa: BLE001 - reported below
                results.append((None, repr(e)))
            finally:
                conn.close()

        start = time.monotonic()
        threads = [threading.Thread(target=post) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        seconds = time.monotonic() - start
        status = open(f"/proc/{p.pid}/status").read()
        peak = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) << 10
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # and it still serves
        conn.request("POST", "/api/predict", png_of(mnist_test[0][0]), {"Content-Type": "image/png"})
        after = conn.getresponse().status
        conn.close()
    finally:
        p.send_signal(2)
        _, err = p.communicate(timeout=60)
    print(f"three strips: {[r[0] for r in results]} in {seconds:.1f} s, peak {peak / 2**20:.0f} MB")
    assert len(results) == 3 and all(code in (200, 422) for code, _ in results), (results, err[-2000:])
    assert peak < PEAK_RSS, f"peak resident memory {peak / 2**20:.0f} MB"
    assert after == 200 and p.returncode == 0


@pytest.mark.slow
def test_the_load_benchmark_runs_and_reports_both_servers(tmp_path):
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "serve_load.py"
    r = subprocess.run(
        [sys.executable, str(bench), "--quick", "--json", str(tmp_path / "load.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "load.json").read_text())
    assert report["cpu"] and report["quick"] and len(report["load"]) == 12
    assert report["header"]["cpu"] and report["header"]["date"]  # benchmarks/common.py's header
    cells = {(row["body"], row["clients"], row["connections"]) for row in report["load"]}
    assert cells == {(b, c, k) for b in ("JSON", "PNG") for c in (1, 8, 32) for k in ("kept-alive", "fresh")}
    for row in report["load"]:
        for name in ("before", "now"):
            assert row[name]["requests"] > 0 and row[name]["p50_ms"] > 0, row
        assert row["now"]["errors"] == 0, row
    assert report["mixed"]["now"] == {**report["mixed"]["now"], "requests": 80, "errors": 0}
    assert report["dribble"]["now"]["errors"] == 0
    assert "| JSON | 1 | kept-alive |" in r.stdout and "dribble headers" in r.stdout
