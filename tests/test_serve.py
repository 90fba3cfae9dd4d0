"""python -m lenet5.serve's JSON API, through a real HTTP server on loopback:
answers, the activations behind them, every bad request, concurrency."""
import http.client
import io
import json
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
    srv = serve.start(net)
    yield srv
    srv.shutdown()
    srv.server_close()


def request(server, method, path, body=None, content_type=None, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}, **(
            {"Content-Type": content_type} if content_type else {})))
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
    status, _, body = request(server, "POST", "/api/predict", json.dumps({"pixels": image.tolist()}),
                              "application/json")
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
    ("wrong shape", "POST", "/api/predict", json.dumps({"pixels": [[0] * 28] * 27}), "application/json", 400,
     "28 x 28"),
    ("values out of range", "POST", "/api/predict", json.dumps({"pixels": [[300] * 28] * 28}),
     "application/json", 400, "0..255"),
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
        server, mnist_test, what, method, path, body, kind, status, message):
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
    p = subprocess.Popen([sys.executable, "-m", "lenet5.serve", "--model", str(model), "--port", "0"],
                         stderr=subprocess.PIPE, text=True)
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


@pytest.mark.parametrize("args,status,message", [
    (["--model", "/no/such.npz"], 1, "no such model file"),
    (["--port", "70000"], 2, "between 0 and 65535"),
])
def test_the_command_refuses_bad_arguments_in_one_line(args, status, message):
    start = time.time()
    r = subprocess.run([sys.executable, "-m", "lenet5.serve", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == status and message in r.stderr and "Traceback" not in r.stderr
    assert time.time() - start < 60
