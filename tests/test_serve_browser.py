"""The draw-a-digit page in a real browser: headless Chromium (the Linux
distribution's package, driven by Playwright from PyPI) draws digits stroke
by stroke with mouse events, and the page must show the right digit and bars.

Skipped, with the reason, where Playwright or a Chromium is missing; .ci/run
installs both (apt-get install chromium) and runs it."""

import os
from pathlib import Path

import pytest

from helpers import golden_params
from lenet5 import LeNet5, serve

pytest.importorskip("PIL.Image")
pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")


SHOTS = Path(os.environ.get("LENET5_SCREENSHOTS", "")) if os.environ.get("LENET5_SCREENSHOTS") else None

# Strokes in the pad's own coordinates (0..1 of its side), drawn as a person would.
DIGITS = {
    1: [[(0.52, 0.15), (0.50, 0.50), (0.48, 0.85)]],
    0: [
        [
            (0.50, 0.15),
            (0.30, 0.25),
            (0.25, 0.50),
            (0.30, 0.75),
            (0.50, 0.85),
            (0.70, 0.75),
            (0.75, 0.50),
            (0.70, 0.25),
            (0.50, 0.15),
        ]
    ],
    7: [[(0.25, 0.18), (0.75, 0.18), (0.55, 0.50), (0.42, 0.85)]],
}


@pytest.fixture(scope="module")
def page_url():
    srv = serve.start(LeNet5(golden_params("mse_b300_n60000_e1.dat")))
    yield srv.url
    srv.shutdown()
    srv.server_close()


def draw(page, strokes, steps=8):
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for p in points[1:]:
            page.mouse.move(*p, steps=steps)
        page.mouse.up()


def shown_bars(page):
    return [float(page.locator(f"#bar-{d} .bar").evaluate("e => parseFloat(e.style.width) || 0")) for d in range(10)]


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_drawing_a_digit_shows_it_with_its_bars(browser, page_url, digit):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    try:
        page.goto(page_url)
        draw(page, DIGITS[digit])
        page.wait_for_function(f"document.getElementById('digit').textContent === '{digit}'", timeout=20000)
        page.wait_for_timeout(300)  # the last stroke's answer
        bars = shown_bars(page)
        assert max(range(10), key=lambda d: bars[d]) == digit and bars[digit] > 50
        assert page.locator(f"#bar-{digit}").get_attribute("class") == "best"
        # the input the network received is drawn: some of its pixels are bright
        bright = page.locator("#input").evaluate(
            "c => Array.from(c.getContext('2d').getImageData(0, 0, 28, 28).data)"
            ".filter((v, i) => i % 4 == 0 && v > 128).length"
        )
        assert bright > 20
        if SHOTS:
            page.screenshot(path=str(SHOTS / f"serve-{digit}.png"), full_page=True)
        page.click("#clear")
        assert page.locator("#digit").text_content() == "\u2013" and max(shown_bars(page)) == 0
        # Clear also empties the input the network received and every feature map
        painted = page.evaluate(
            "Array.from(document.querySelectorAll('#input, #conv1 canvas, #conv2 canvas'))"
            ".map(c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
            ".some(v => v !== 0))"
        )
        assert len(painted) == 1 + 6 + 16 and not any(painted)
    finally:
        page.close()


def test_the_page_fits_a_phone(browser, page_url):
    page = browser.new_page(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        page.goto(page_url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width} px wide on a 390 px screen"
        box = page.locator("#pad").bounding_box()
        assert box["width"] >= 300  # a finger-sized pad
        draw(page, DIGITS[1])
        page.wait_for_function("document.getElementById('digit').textContent === '1'", timeout=20000)
        if SHOTS:
            page.screenshot(path=str(SHOTS / "serve-phone.png"), full_page=True)
    finally:
        page.close()
