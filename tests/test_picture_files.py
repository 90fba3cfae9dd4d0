"""Picture files that are odd, deep, hostile or huge: each is its own answer.

Every file is made here (by Pillow, NumPy or by hand, byte by byte), and read
by load_image and by ``python -m lenet5.predict`` beside good files, which
must still be answered.  The address-space and memory cases run in a fresh
interpreter (resource limits, ru_maxrss).
"""

import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest

from lenet5 import LeNet5
from lenet5.images import FORMATS, ImageError, load_image, preprocess
from lenet5.predict import escaped
from lenet5.predict import main as predict_main

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("scipy.ndimage")
import picture_kinds as kinds  # noqa: E402 (needs Pillow)


def png_by_hand(path, width, height, bit_depth, colour_type, row, rows=None):
    """A PNG written chunk by chunk: every row the same bytes (filter 0 first)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = zlib.compress((b"\x00" + row) * (rows or height), 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory, mnist_test):
    """name -> path of good and bad files, all in one folder."""
    d = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(22)
    f = {}
    for k in range(3):
        f[f"good{k}"] = kinds.plain_photo(mnist_test[0][k], rng, d, f"good{k}")
    # a DDS of 128 bytes whose pixel format no decoder knows
    f["dds"] = d / "odd.dds"
    f["dds"].write_bytes(
        b"DDS "
        + struct.pack("<7I", 124, 0x1007, 8, 8, 0, 0, 0)
        + b"\0" * 44
        + struct.pack("<2I", 32, 4)
        + b"ZZZZ"
        + b"\0" * 40
    )
    # an AVIF whose data is cut off, and a BLP texture
    avif = io.BytesIO()
    if "AVIF" in Image.SAVE:
        Image.new("RGB", (64, 64), (200, 10, 10)).save(avif, "AVIF")
    f["avif"] = d / "cut.avif"
    f["avif"].write_bytes(avif.getvalue()[:-20] or b"\0\0\0\x1cftypavif" + b"\0" * 100)
    f["blp"] = d / "texture.blp"
    Image.new("P", (16, 16)).save(f["blp"], "BLP")
    f["complex"] = d / "complex.npy"
    np.save(f["complex"], np.ones((28, 28), np.complex128))
    f["eps"] = d / "script.png"  # PostScript that calls itself a PNG
    Image.new("RGB", (32, 32), (255, 255, 255)).save(f["eps"], "EPS")
    f["heic"] = d / "phone.heic"
    f["heic"].write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64)
    f["strip"] = png_by_hand(d / "strip.png", 3, 16_666_666, 1, 0, b"\xe0")  # 1-bit, 3 wide
    f["square1bit"] = png_by_hand(d / "square.png", 7000, 7000, 1, 0, b"\xff" * 875)
    f["deep"] = d / "deep.png"
    digit = np.asarray(Image.fromarray(255 - mnist_test[0][3]).resize((112, 112), Image.BICUBIC), np.float64) / 255
    Image.fromarray(np.round(257 + digit * (65535 - 257)).astype(np.uint16)).save(f["deep"])
    f["float"] = d / "float.tif"
    Image.fromarray((digit * 1.5).astype(np.float32), "F").save(f["float"])
    f["nan"] = d / "nan.tif"
    Image.fromarray(np.where(digit > 0.5, np.nan, digit).astype(np.float32), "F").save(f["nan"])
    f["newline"] = d / "two\nlines.png"
    Image.fromarray(255 - mnist_test[0][4]).resize((84, 84)).save(f["newline"])
    f["escape"] = d / "red\x1b[31m.png"
    f["escape"].write_bytes(b"not a picture")
    f["gif"] = d / "animated.gif"
    frames = [Image.fromarray(255 - mnist_test[0][k]).resize((84, 84)) for k in (5, 6)]
    frames[0].save(f["gif"], save_all=True, append_images=frames[1:], duration=100)
    return {k: str(v) for k, v in f.items()}


@pytest.mark.parametrize(
    "name, message",
    [
        ("dds", "not a supported picture format"),
        ("blp", "not a supported picture format"),
        ("complex", "not a picture: a .npy array of complex128"),
        ("eps", "not a supported picture format"),
        ("heic", "HEIC/HEIF photo, not a supported picture format: export it as JPEG or PNG"),
        ("avif", "AVIF" in Image.SAVE and "a damaged or truncated image" or ""),
        ("nan", "the picture holds NaN or infinite values"),
    ],
)
def test_odd_files_are_one_line_each(files, name, message):
    with pytest.raises(ImageError) as e:
        load_image(files[name])
    text = str(e.value)
    assert text.startswith(files[name] + ": ") and message in text and "\n" not in text


def test_the_formats_read(tmp_path, mnist_test):
    """Each allowed format, written by Pillow, reads as the same digit."""
    net = LeNet5.pretrained()
    digit = Image.fromarray(255 - mnist_test[0][9]).resize((84, 84))
    expect = int(mnist_test[1][9])
    written = {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "GIF": "gif", "TIFF": "tif", "PPM": "pgm", "WEBP": "webp"}
    if "AVIF" in Image.SAVE:
        written["AVIF"] = "avif"
    for fmt, ext in written.items():
        assert fmt in FORMATS
        path = tmp_path / f"d.{ext}"
        digit.save(path, fmt)
        assert int(net.predict(preprocess(load_image(path)))) == expect, fmt
    digit.convert("1").save(tmp_path / "d.pbm")
    assert int(net.predict(preprocess(load_image(tmp_path / "d.pbm")))) == expect


def test_deep_and_huge_files_are_read(files):
    deep = load_image(files["deep"])
    assert deep.dtype == np.float32 and deep.max() == 255
    assert preprocess(deep).max() == 255
    assert preprocess(load_image(files["float"])).max() == 255
    strip = load_image(files["strip"])
    assert strip.shape == (256, 1)  # 16,666,666 rows in blocks of 65,105 (the last one short)
    square = load_image(files["square1bit"])
    assert square.shape == (250, 250) and square.dtype == np.uint8 and square.min() == 255
    with pytest.raises(ImageError, match="blank"):
        preprocess(strip)


def test_predict_answers_good_files_beside_every_bad_one(files, mnist_test, capsys):
    names = [
        "good0",
        "dds",
        "avif",
        "good1",
        "blp",
        "complex",
        "eps",
        "heic",
        "strip",
        "square1bit",
        "deep",
        "float",
        "newline",
        "escape",
        "gif",
        "good2",
    ]
    status = predict_main([files[n] for n in names])
    out, err = capsys.readouterr()
    assert status == 1 and "Traceback" not in err
    answered = [line.rsplit(": ", 1)[0] for line in out.splitlines()]
    good = ["good0", "good1", "deep", "float", "newline", "gif", "good2"]
    assert answered == [escaped(files[n]) for n in good]
    assert escaped(files["newline"]).endswith("two\\nlines.png")
    assert f"{files['good0']}: {mnist_test[1][0]} (" in out and f"{files['deep']}: {mnist_test[1][3]} (" in out
    errors = err.splitlines()
    assert errors[0] == f"lenet5.predict: {files['gif']}: an animated or multi-page picture: read from its first frame"
    assert len(errors) == 1 + 9 and all(e.startswith("lenet5.predict: ") for e in errors)
    assert "\x1b" not in err and "red\\x1b[31m.png: not a supported picture format" in err
    # JSON keeps the names as given
    status = predict_main([files["newline"], files["escape"], "--json"])
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert status == 1 and [r["path"] for r in records] == [files["newline"], files["escape"]]
    assert "digit" in records[0] and "error" in records[1]


def test_escaped_names():
    assert escaped("a\nb\x1b[0m\tc\x7f\udcff.png") == "a\\nb\\x1b[0m\\tc\\x7f\\udcff.png"
    assert escaped("photo 7.png") == "photo 7.png"


MEMORY_PROBE = r"""
import resource, sys
import numpy, scipy.ndimage, PIL.Image
from lenet5.images import load_image, preprocess
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    preprocess(load_image(sys.argv[1]))
except Exception as e:
    print(type(e).__name__, e, file=sys.stderr)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["strip", "square1bit"])
def test_memory_for_a_one_bit_picture_stays_under_256_mb(files, name):
    r = subprocess.run([sys.executable, "-c", MEMORY_PROBE, files[name]], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    growth = float(r.stdout.split()[-1])
    assert growth < 256, f"{name}: peak memory grew by {growth:.0f} MB"  # measured 181 MB (strip), 32 MB


CAPPED = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
from lenet5.predict import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_hostile_files_beside_good_ones_under_a_2_gb_address_space(files):
    names = ["good0", "strip", "dds", "square1bit", "avif", "good1", "blp", "complex", "eps", "strip", "good2"]
    r = subprocess.run(
        [sys.executable, "-c", CAPPED] + [files[n] for n in names],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    answered = [line.rsplit(": ", 1)[0] for line in r.stdout.splitlines()]
    assert answered == [files[n] for n in ("good0", "good1", "good2")]
    assert len(r.stderr.splitlines()) == 8


def test_first_frame_notes_for_animations_and_pages_but_not_mpo(tmp_path, mnist_test):
    net = LeNet5.pretrained()
    frames = [Image.fromarray(255 - mnist_test[0][k]).resize((84, 84)).convert("RGB") for k in (10, 11)]
    expect = int(mnist_test[1][10])
    for name, options in (("a.png", {}), ("a.webp", {"lossless": True}), ("a.tif", {}), ("a.mpo", {})):
        path = tmp_path / name
        frames[0].save(path, save_all=True, append_images=frames[1:], **options)
        with Image.open(path) as img:
            assert getattr(img, "n_frames", 1) == 2, name
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert int(net.predict(preprocess(load_image(path)))) == expect, name
        said = [str(w.message) for w in caught]
        if name == "a.mpo":  # a photo and its preview: nothing to say
            assert said == []
        else:
            assert said == [f"{path}: an animated or multi-page picture: read from its first frame"], name
