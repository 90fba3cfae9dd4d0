"""The page's number mode in a real browser, and POST /api/read-number.

Headless Chromium (driven by Playwright) switches the page to number mode,
writes a 3-digit number stroke by stroke with the mouse, and the page must
show the number, one box per digit over the drawing (in the pad's pixels,
each on its digit's strokes) and each digit's 28 x 28 input.  The API is
checked over HTTP: a PNG and a {"pixels": ...} body give the --json object
without "path", each digit with its "input"; bad bodies get the same error
rules as /api/predict.

Skipped, with the reason, where Playwright or a Chromium is missing (as
tests/test_serve_browser.py); .ci/run installs both.
"""

import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from lenet5 import LeNet5, serve

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")


# Digits in a unit box (x, y in 0..1), stroke by stroke as a person writes them.
DIGITS = {
    4: [[(0.45, 0.10), (0.15, 0.62), (0.85, 0.62)], [(0.65, 0.30), (0.65, 0.92)]],
    1: [[(0.55, 0.10), (0.50, 0.50), (0.45, 0.90)]],
    7: [[(0.15, 0.12), (0.85, 0.12), (0.55, 0.50), (0.40, 0.90)]],
}
NUMBER = (4, 1, 7)


@pytest.fixture(scope="module")
def server():
    srv = serve.start(LeNet5.pretrained())
    yield srv
    srv.shutdown()
    srv.server_close()


def slots(count):
    """Where each digit of the number goes on the 3:1 pad: (x0, x1) as fractions of its width."""
    return [((k + 0.2) / count, (k + 0.8) / count) for k in range(count)]


def write_number(page, digits):
    box = page.locator("#pad").bounding_box()
    for d, (x0, x1) in zip(digits, slots(len(digits))):
        for stroke in DIGITS[d]:
            points = [
                (box["x"] + (x0 + x * (x1 - x0)) * box["width"], box["y"] + (0.1 + 0.8 * y) * box["height"])
                for x, y in stroke
            ]
            page.mouse.move(*points[0])
            page.mouse.down()
            for p in points[1:]:
                page.mouse.move(*p, steps=8)
            page.mouse.up()


def test_writing_a_number_stroke_by_stroke_shows_it(browser, server):
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(server.url)
        page.click("#mode-number")
        pad = page.locator("#pad")
        assert pad.evaluate("c => [c.width, c.height]") == [840, 280]
        assert pad.bounding_box()["width"] > 2.5 * pad.bounding_box()["height"]  # a wide pad
        write_number(page, NUMBER)
        text = "".join(map(str, NUMBER))
        page.wait_for_function(f"document.getElementById('digit').textContent === '{text}'", timeout=20000)
        page.wait_for_timeout(300)  # the last stroke's answer
        items = page.locator("#number-digits li")
        assert items.count() == 3
        for i, d in enumerate(NUMBER):
            caption = items.nth(i).text_content()
            assert caption.startswith(f"{i + 1}: {d} (") and caption.endswith("%)")
            # each digit's input is drawn: some of its 28 x 28 pixels are bright
            bright = (
                items.nth(i)
                .locator("canvas")
                .evaluate(
                    "c => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data)"
                    ".filter((v, k) => k % 4 == 0 && v > 128).length"
                )
            )
            assert bright > 20
        # the boxes are drawn over the drawing, each in its digit's slot of the pad
        drawn = page.locator("#boxes").evaluate(
            "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const cols = [];"
            " for (let x = 0; x < c.width; x++) { let n = 0;"
            "   for (let y = 0; y < c.height; y++) if (d[4 * (y * c.width + x) + 3] > 0) n++;"
            "   cols.push(n); } return cols; }"
        )
        for x0, x1 in slots(3):
            assert max(drawn[int(x0 * 840) : int(x1 * 840)]) > 20  # a box's side stands in the slot
        assert page.locator("#bars").is_hidden()
        page.click("#clear")
        assert page.locator("#digit").text_content() == "\u2013" and items.count() == 0
        page.click("#mode-digit")
        assert pad.evaluate("c => [c.width, c.height]") == [280, 280]
    finally:
        page.close()


def post(url, body, kind):
    request = urllib.request.Request(url + "api/read-number", data=body, headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def drawn_number(width=600, height=200):
    """A number written with Pillow's pen in the test's own strokes, dark on white."""
    from PIL import ImageDraw

    img = Image.new("L", (width, height), 255)
    pen = ImageDraw.Draw(img)
    for d, (x0, x1) in zip(NUMBER, slots(len(NUMBER))):
        for stroke in DIGITS[d]:
            pen.line(
                [(width * (x0 + x * (x1 - x0)), height * (0.1 + 0.8 * y)) for x, y in stroke],
                fill=0,
                width=height // 14,
                joint="curve",
            )
    return img


def test_api_reads_a_png_and_pixels(server):
    img = drawn_number()
    png = io.BytesIO()
    img.save(png, format="PNG")
    status, answer = post(server.url, png.getvalue(), "image/png")
    assert status == 200, answer
    assert list(answer) == ["number", "confidence", "digits"] and answer["number"] == "417"
    for d in answer["digits"]:
        assert list(d) == ["digit", "probability", "probabilities", "box", "input"]
        assert np.array(d["input"]).shape == (28, 28)
    pixels = np.asarray(img).tolist()
    status, again = post(server.url, json.dumps({"pixels": pixels}).encode(), "application/json")
    assert status == 200 and again["number"] == "417"
    assert [d["box"] for d in again["digits"]] == [d["box"] for d in answer["digits"]]


def test_api_refuses_bad_bodies_as_predict_does(server):
    status, answer = post(server.url, json.dumps({"pixels": [[0] * 1025] * 2}).encode(), "application/json")
    assert status == 400 and "1024" in answer["error"]
    status, answer = post(server.url, json.dumps({"pixels": [[255] * 40] * 40}).encode(), "application/json")
    assert status == 422 and "no digit found" in answer["error"]
    status, answer = post(server.url, b"not a png", "image/png")
    assert status == 422 and "error" in answer
    status, answer = post(server.url, b"x", "text/plain")
    assert status == 415
