"""Pictures of MNIST test digits as people take them, written by Pillow.

Each maker takes a 28 x 28 MNIST digit (white on black), a NumPy generator
and a folder, writes one picture file and returns its path.  The kinds are
the ones issue 22 names: plain photos, thin pens (a digit's skeleton drawn
one pixel wide), uneven light with a shadow, coloured ink on tinted paper,
phone photos stored turned with an EXIF Orientation, transparent PNGs (black,
white and coloured ink) and blocky scans (8 x 8, blown up).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def cover(digit, size, rng, turn=8.0):
    """The digit's ink as a float in 0..1, size x size, turned a little."""
    ink = Image.fromarray(digit).resize((size, size), Image.BICUBIC)
    ink = ink.rotate(float(rng.uniform(-turn, turn)), resample=Image.BICUBIC)
    return np.asarray(ink, dtype=np.float64) / 255.0


def on_sheet(ink, rng, margin=(1.3, 1.7)):
    """The ink placed somewhere on a larger empty sheet."""
    size = ink.shape[0]
    side = int(size * rng.uniform(*margin))
    sheet = np.zeros((side, side))
    top, left = rng.integers(0, side - size + 1, 2)
    sheet[top : top + size, left : left + size] = ink
    return sheet


def save(x, path, **options):
    Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8)).save(path, **options)
    return path


def plain_photo(digit, rng, folder, name):
    """Dark ink on off-white paper (or light on dark), grain, JPEG."""
    c = on_sheet(cover(digit, 28 * int(rng.integers(3, 9)), rng), rng)
    dark = rng.random() < 0.7
    paper, pen = (rng.uniform(190, 240), rng.uniform(20, 70)) if dark else (rng.uniform(15, 50), rng.uniform(180, 240))
    x = paper + (pen - paper) * c + rng.normal(0, rng.uniform(3, 10), c.shape)
    x = x[:, :, None] * np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.8, 0.95)])
    return save(x, folder / f"{name}.jpg", quality=88)


def skeleton(mask):
    """Zhang and Suen's thinning of a boolean mask: lines one pixel wide."""
    m = np.pad(mask.astype(bool), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = [
                np.roll(np.roll(m, -dy, 0), -dx, 1)
                for dy, dx in ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
            ]
            count = sum(q.astype(int) for q in p)
            turns = sum((~p[k] & p[(k + 1) % 8]).astype(int) for k in range(8))
            if step == 0:
                rule = ~(p[0] & p[2] & p[4]) & ~(p[2] & p[4] & p[6])
            else:
                rule = ~(p[0] & p[2] & p[6]) & ~(p[0] & p[4] & p[6])
            gone = m & (count >= 2) & (count <= 6) & (turns == 1) & rule
            if gone.any():
                m = m & ~gone
                changed = True
        if not changed:
            return m[1:-1, 1:-1]


def thin_pen(digit, rng, folder, name):
    """The digit's skeleton one pixel wide (a fine pen) on a 200-pixel canvas, PNG."""
    size = int(rng.integers(120, 170))
    line = skeleton(cover(digit, size, rng, turn=5.0) > 0.5)
    canvas = np.zeros((200, 200))
    top, left = rng.integers(0, 200 - size + 1, 2)
    canvas[top : top + size, left : left + size] = line
    dark = rng.random() < 0.8
    paper, pen = (rng.uniform(225, 255), rng.uniform(0, 50)) if dark else (rng.uniform(0, 30), rng.uniform(200, 255))
    return save(paper + (pen - paper) * canvas + rng.normal(0, 2, canvas.shape), folder / f"{name}.png")


def uneven_light(digit, rng, folder, name):
    """Paper lit with a 20-30 % fall-off from one side and a soft shadow across it, JPEG."""
    c = on_sheet(cover(digit, 28 * int(rng.integers(3, 8)), rng), rng, margin=(1.4, 1.9))
    side = c.shape[0]
    yy, xx = np.mgrid[0:side, 0:side] / side
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) + 0.5  # 0..1 across the sheet
    light = 1.0 - rng.uniform(0.2, 0.3) * np.clip(ramp, 0, 1)
    # a shadow: a half-plane darker by 15-30 %, its edge blurred over a tenth of the sheet
    a2 = rng.uniform(0, 2 * np.pi)
    edge = (np.cos(a2) * (xx - 0.5) + np.sin(a2) * (yy - 0.5) - rng.uniform(-0.3, 0.3)) / 0.1
    light *= 1.0 - rng.uniform(0.15, 0.3) * np.clip(edge + 0.5, 0, 1)
    paper, pen = rng.uniform(200, 245), rng.uniform(15, 60)
    x = (paper + (pen - paper) * c) * light + rng.normal(0, 4, c.shape)
    return save(x, folder / f"{name}.jpg", quality=90)


#: (ink, paper) colours: hues against tints; the last three differ by less than 24 of 255 in grey
COLOURS = [
    ((200, 30, 30), (200, 235, 200)),
    ((30, 60, 200), (250, 240, 190)),
    ((20, 140, 40), (250, 215, 225)),
    ((230, 70, 70), (100, 150, 100)),
    ((70, 110, 240), (190, 120, 40)),
    ((200, 120, 210), (110, 170, 110)),
]


def coloured_ink(digit, rng, folder, name):
    """Coloured ink on tinted paper, PNG or JPEG."""
    c = on_sheet(cover(digit, 28 * int(rng.integers(3, 8)), rng), rng)[:, :, None]
    ink, paper = (np.array(v, float) for v in COLOURS[int(rng.integers(len(COLOURS)))])
    x = paper + (ink - paper) * c + rng.normal(0, 3, c.shape)
    if rng.random() < 0.5:
        return save(x, folder / f"{name}.png")
    return save(x, folder / f"{name}.jpg", quality=90)


#: EXIF orientation -> how to store the displayed picture so that it shows upright
STORED = {3: Image.ROTATE_180, 6: Image.ROTATE_90, 8: Image.ROTATE_270}


def exif_photo(digit, rng, folder, name, orientation=None):
    """A phone photo stored turned, with the EXIF Orientation that shows it upright, JPEG."""
    orientation = orientation or (3, 6, 8)[int(rng.integers(3))]
    c = on_sheet(cover(digit, 28 * int(rng.integers(4, 9)), rng), rng)
    tall = np.zeros((int(c.shape[0] * 1.3), c.shape[1]))  # portrait, as phones take them
    tall[: c.shape[0]] = c
    x = rng.uniform(200, 240) + (rng.uniform(20, 60) - 220) * tall + rng.normal(0, 4, tall.shape)
    shown = Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8)).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = folder / f"{name}.jpg"
    shown.transpose(STORED[orientation]).save(path, quality=90, exif=exif)
    return path


def transparent(digit, rng, folder, name, colour=None):
    """A digit drawn on a transparent background (black, white or coloured ink), PNG."""
    c = on_sheet(cover(digit, 28 * int(rng.integers(2, 7)), rng), rng)
    colours = {"black": (0, 0, 0), "white": (255, 255, 255), "colour": (40, 90, 220)}
    colour = colour or ("black", "white", "colour")[int(rng.integers(3))]
    rgba = np.zeros(c.shape + (4,))
    rgba[:, :, :3] = colours[colour]
    rgba[:, :, 3] = 255 * c
    path = folder / f"{name}.png"
    Image.fromarray(np.round(rgba).astype(np.uint8), "RGBA").save(path)
    return path


def blocky_scan(digit, rng, folder, name):
    """The digit scanned at 8 x 8 with 17 grey levels, blown up 8 times without
    smoothing (blocks), dark on white, PNG."""
    small = np.asarray(Image.fromarray(digit[2:26, 2:26]).resize((8, 8), Image.BOX), float)
    levels = np.round(small / 255 * 16) / 16
    big = np.kron(levels, np.ones((8, 8)))
    margin = int(rng.integers(0, 9))
    x = np.pad(255 * (1 - big), margin, constant_values=255)
    return save(x, folder / f"{name}.png")


KINDS = {
    "plain photo": plain_photo,
    "thin pen": thin_pen,
    "uneven light": uneven_light,
    "coloured ink": coloured_ink,
    "EXIF orientation": exif_photo,
    "transparent": transparent,
    "blocky scan": blocky_scan,
}
