"""Digits from the real world: preprocess, load_image and python -m lenet5.predict.

The model is the reference program's own one-epoch mse model (a golden,
96.81% on the test set).  The renderings are real image files written by
Pillow: MNIST test digits scaled up 2 to 10 times, turned a little, put off
centre on a larger sheet, dark ink on light paper and the reverse, with
grain, as grey or tinted RGB, saved as PNG and JPEG.
"""

import json
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from helpers import golden_params
from lenet5 import LeNet5, core
from lenet5.images import MAX_PIXELS, ImageError, as_is, load_image, preprocess
from lenet5.predict import main as predict_main

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def net():
    return LeNet5(golden_params("mse_b300_n60000_e1.dat"))


@pytest.fixture(scope="module")
def model_file(net, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    net.save(path)
    return str(path)


def render(digit, rng, path, fmt, colour, dark_ink, scale):
    """A photographed-paper rendering of a 28 x 28 MNIST digit, written to path."""
    size = 28 * scale
    ink = Image.fromarray(digit).resize((size, size), Image.BICUBIC)
    ink = ink.rotate(float(rng.uniform(-10, 10)), resample=Image.BICUBIC)
    side = int(size * rng.uniform(1.3, 1.8))
    sheet = Image.new("L", (side, side), 0)
    sheet.paste(ink, (int(rng.integers(0, side - size + 1)), int(rng.integers(0, side - size + 1))))
    cover = np.asarray(sheet, dtype=np.float64) / 255.0
    paper, pen = (
        (rng.uniform(190, 240), rng.uniform(20, 70)) if dark_ink else (rng.uniform(10, 50), rng.uniform(180, 240))
    )
    x = paper + (pen - paper) * cover + rng.normal(0, rng.uniform(4, 12), cover.shape)
    if colour:  # a warm paper tint: blue darker than red
        x = x[:, :, None] * np.array([1.0, rng.uniform(0.9, 1.0), rng.uniform(0.75, 0.95)])
    Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8)).save(
        path, format=fmt, **({"quality": 85} if fmt == "JPEG" else {})
    )


def test_preprocess_leaves_mnist_digits_almost_unchanged(mnist_test, net):
    images, labels = mnist_test[0][:500], mnist_test[1][:500]
    done = np.stack([preprocess(im) for im in images])
    assert done.dtype == np.uint8 and done.shape == (500, 28, 28)
    diff = np.abs(done.astype(int) - images.astype(int))
    assert diff.mean() < 4  # measured 1.9 of 255: mostly a one-pixel shift of some digits
    assert np.mean(net.predict(done) == net.predict(images)) >= 0.99  # measured 99.7%
    assert np.mean(net.predict(done) == labels) >= np.mean(net.predict(images) == labels) - 0.01


def test_preprocess_makes_any_polarity_and_size_mnist_like(mnist_test):
    digit = mnist_test[0][0]
    reference = preprocess(digit)
    big = np.asarray(Image.fromarray(255 - digit).resize((280, 280), Image.BICUBIC))  # dark on light, 10x
    sheet = np.full((400, 500, 3), 235, np.uint8)
    sheet[30:310, 150:430] = big[:, :, None]
    for picture in (big, sheet, sheet.astype(np.float64) / 255.0, np.dstack([sheet, np.full((400, 500), 255)])):
        out = preprocess(picture)
        assert out.dtype == np.uint8 and out.shape == (28, 28)
        assert out.max() == 255 and out[0].max() == 0 and out[:, 0].max() == 0  # ink bright, border dark
        assert np.abs(out.astype(int) - reference.astype(int)).mean() < 12
        rows, cols = np.nonzero(out)
        assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 == 20  # longer side 20 px


def test_preprocess_refuses_what_is_not_a_digit():
    rng = np.random.default_rng(0)
    blank = np.clip(rng.normal(220, 6, (300, 300)), 0, 255).astype(np.uint8)
    with pytest.raises(ImageError, match="no digit found: the picture is blank"):
        preprocess(blank)
    with pytest.raises(ImageError, match="blank"):
        preprocess(np.zeros((28, 28), np.uint8))
    with pytest.raises(ImageError, match=r"shape \(H, W\), \(H, W, 3\) or \(H, W, 4\)"):
        preprocess(np.zeros((5, 5, 2), np.uint8))
    with pytest.raises(ImageError, match="blank"):  # deep values are stretched: a flat 300 is flat
        preprocess(np.full((30, 30), 300, np.int32))
    with pytest.raises(ImageError, match="NaN or infinite"):
        preprocess(np.full((30, 30), np.nan))
    with pytest.raises(TypeError, match="numpy array"):
        preprocess([[0, 1], [2, 3]])
    with pytest.raises(ImageError, match="28 x 28"):
        as_is(np.zeros((30, 28), np.uint8))


def test_renderings_are_classified_about_as_well_as_the_originals(mnist_test, net, tmp_path):
    """240 test digits, each rendered one way (every combination of format,
    colour and polarity 30 times, scales 2..10 in turn), read back through
    Pillow and preprocessed."""
    rng = np.random.default_rng(2024)
    pick = rng.choice(len(mnist_test[0]), 240, replace=False)
    originals, labels = mnist_test[0][pick], mnist_test[1][pick]
    kinds, digits = [], []
    for k, digit in enumerate(originals):
        fmt, colour, dark = ("PNG", "JPEG")[k % 2], bool(k // 2 % 2), bool(k // 4 % 2)
        path = tmp_path / f"{k}.{fmt.lower()}"
        render(digit, rng, path, fmt, colour, dark, scale=2 + k % 9)
        pixels = load_image(path)
        assert pixels.shape[2:] == ((3,) if colour else ())
        digits.append(preprocess(pixels))
        kinds.append((fmt, colour, dark))
    right = net.predict(np.stack(digits)) == labels
    baseline = np.mean(net.predict(originals) == labels)
    # Measured on this seed: 97.1% rendered, 97.1% the originals; on seeds 1-3,
    # 0.8 to 2.5 points below the originals, and the worst of the 8 kinds
    # (30 images each) 80% to 93%.
    assert right.mean() >= baseline - 0.05
    for kind in set(kinds):  # no format, colour or polarity is left behind
        assert np.mean([r for r, k in zip(right, kinds) if k == kind]) >= baseline - 0.2, kind


# ----------------------------------------------------------------------------
# Files that cannot be used, and the command line.


def bomb_png(path, width, height):
    """A valid small PNG whose header claims width x height pixels."""
    Image.new("L", (8, 8), 0).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # chunk type + 13 bytes of header fields
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def sheet(tmp_path_factory, mnist_test):
    """A folder of good and bad files: name -> path."""
    d = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(5)
    files = {}
    for k in range(3):
        files[f"good{k}"] = d / f"good{k}.png"
        render(mnist_test[0][k], rng, files[f"good{k}"], "PNG", False, True, 4)
    files["jpeg"] = d / "photo.jpg"
    render(mnist_test[0][3], rng, files["jpeg"], "JPEG", True, True, 8)
    files["npy"] = d / "digit.npy"
    np.save(files["npy"], mnist_test[0][4])
    for fmt, ext in (("BMP", "bmp"), ("GIF", "gif"), ("TIFF", "tif"), ("PPM", "pgm")):
        files[ext] = d / f"digit.{ext}"
        Image.fromarray(255 - mnist_test[0][5]).resize((84, 84)).save(files[ext], format=fmt)
    files["raw28"] = d / "raw28.png"
    Image.fromarray(mnist_test[0][6]).save(files["raw28"])
    files["missing"] = d / "missing.png"
    files["folder"] = d / "folder.png"
    files["folder"].mkdir()
    files["text"] = d / "notes.png"
    files["text"].write_text("this is not a picture\n")
    files["empty"] = d / "empty.jpg"
    files["empty"].write_bytes(b"")
    files["truncated"] = d / "truncated.png"
    files["truncated"].write_bytes(files["good0"].read_bytes()[:300])
    files["blank"] = d / "blank.png"
    Image.fromarray(np.clip(rng.normal(225, 5, (200, 160)), 0, 255).astype(np.uint8)).save(files["blank"])
    files["bomb"] = d / "bomb.png"
    bomb_png(files["bomb"], 30000, 30000)
    files["pickle"] = d / "objects.npy"
    np.save(files["pickle"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return {k: str(v) for k, v in files.items()}


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing", "no such file"),
        ("folder", "is a folder, not an image file"),
        ("text", "not a supported picture format"),
        ("empty", "the file is empty"),
        ("truncated", "a damaged or truncated image"),
        ("bomb", "too large to decode safely"),
        ("pickle", "not a usable .npy array"),
    ],
)
def test_load_image_refuses_bad_files_with_one_line(sheet, name, message):
    with pytest.raises(ImageError, match=message) as e:
        load_image(sheet[name])
    assert str(e.value).startswith(sheet[name] + ": ") and "\n" not in str(e.value)


def test_bomb_limit_is_above_a_4000_pixel_photo():
    assert MAX_PIXELS >= 4000 * 4000


def test_load_image_reads_every_format(sheet, net, mnist_test):
    expect = int(mnist_test[1][5])
    for ext in ("bmp", "gif", "tif", "pgm"):
        assert net.predict(preprocess(load_image(sheet[ext]))) == expect, ext
    assert np.array_equal(load_image(sheet["npy"]), mnist_test[0][4])


def test_predict_command_answers_good_files_and_names_bad_ones(sheet, model_file, net, mnist_test, capsys):
    names = ["good0", "missing", "good1", "folder", "text", "empty", "truncated", "blank", "bomb", "jpeg", "npy"]
    status = predict_main([sheet[n] for n in names] + ["--model", model_file])
    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    good = ["good0", "good1", "jpeg", "npy"]
    assert [line.split(": ")[0] for line in lines] == [sheet[n] for n in good]  # in the order given
    for line in lines:
        digit, confidence = line.split(": ")[1].split(" ")
        assert digit.isdigit() and confidence.startswith("(") and confidence.endswith("%)")
    assert [int(line.split(": ")[1].split(" ")[0]) for line in lines] == [
        int(net.predict(preprocess(load_image(sheet[n])))) for n in good
    ]
    errors = err.splitlines()
    assert len(errors) == 7 and all(e.startswith("lenet5.predict: ") for e in errors)
    assert "Traceback" not in err
    assert "blank" in errors[5] and "too large to decode safely" in errors[6]


def test_predict_command_json_lines(sheet, model_file, capsys):
    status = predict_main([sheet["good2"], sheet["blank"], "--model", model_file, "--json"])
    out, err = capsys.readouterr()
    assert status == 1 and err == ""
    answer, error = [json.loads(line) for line in out.splitlines()]
    assert list(answer) == ["path", "digit", "probabilities"] and answer["path"] == sheet["good2"]
    assert isinstance(answer["digit"], int) and 0 <= answer["digit"] <= 9
    assert len(answer["probabilities"]) == 10 and all(isinstance(p, float) for p in answer["probabilities"])
    assert abs(sum(answer["probabilities"]) - 1) < 1e-9
    assert answer["digit"] == int(np.argmax(answer["probabilities"]))
    assert list(error) == ["path", "error"] and error["path"] == sheet["blank"] and "blank" in error["error"]


def test_predict_command_exit_0_and_no_preprocess(sheet, model_file, net, mnist_test, capsys):
    assert predict_main([sheet["raw28"], "--no-preprocess", "--model", model_file]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{sheet['raw28']}: {net.predict(mnist_test[0][6])} (")
    assert predict_main([sheet["good0"], "--no-preprocess", "--model", model_file]) == 1
    assert re.search(r"must be 28 x 28 pixels, not \d+ x \d+$", capsys.readouterr().err.strip())


def test_predict_command_without_a_model(sheet, capsys):
    if hasattr(LeNet5, "pretrained"):
        assert predict_main([sheet["npy"]]) == 0
    else:
        assert predict_main([sheet["npy"]]) == 2
        assert "--model PATH" in capsys.readouterr().err


def test_predict_command_bad_model_file(sheet, tmp_path, capsys):
    bad = tmp_path / "m.dat"
    bad.write_bytes(b"\0" * 100)
    assert predict_main([sheet["npy"], "--model", str(bad)]) == 1
    assert "415216" in capsys.readouterr().err


def test_without_pillow_npy_still_works_and_pictures_say_how_to_install(sheet, model_file):
    """Pillow hidden from the import system, in a fresh interpreter."""
    code = (
        "import sys; sys.modules['PIL'] = None\n"
        "from lenet5.predict import main\n"
        f"sys.exit(main([{sheet['npy']!r}, {sheet['good0']!r}, '--model', {model_file!r}]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stdout.startswith(sheet["npy"] + ": ")
    assert r.stderr.strip() == (
        f"lenet5.predict: {sheet['good0']}: reading image files needs Pillow: "
        'pip install pillow scipy (in a checkout of lenet5: pip install -e ".[images]") '
        "(.npy arrays need nothing)"
    )


def test_public_names():
    import lenet5

    assert lenet5.preprocess is preprocess and lenet5.load_image is load_image
    assert core.N_CLASSES == 10


def test_preprocess_from_28_to_4000_pixels_a_side(mnist_test, net):
    """The same digit as a 4,000 x 4,000 grainy photo (dark ink, tinted paper)
    and as a tiny 28 x 28 picture of dark ink on white."""
    digit, label = mnist_test[0][11], int(mnist_test[1][11])
    assert net.predict(digit) == label
    big = np.asarray(Image.fromarray(255 - digit).resize((2000, 2000), Image.BICUBIC)).astype(np.float32)
    grain = np.random.default_rng(0).standard_normal((4000, 4000), dtype=np.float32) * 8
    photo = np.empty((4000, 4000, 3), np.uint8)
    for c, paper in enumerate((232, 226, 205)):
        plane = np.full((4000, 4000), np.float32(paper))
        plane[1200:3200, 900:2900] = paper * big / 255.0 * 0.95
        photo[:, :, c] = np.clip(plane + grain, 0, 255)
    assert net.predict(preprocess(photo)) == label
    assert net.predict(preprocess(255 - digit)) == label
