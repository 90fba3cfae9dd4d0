"""Model files (.npz and the reference .dat) and the inference API."""

import json

import numpy as np
import pytest

from helpers import GOLDEN, golden_params
from lenet5 import LeNet5, ModelFileError, core


@pytest.fixture(scope="module")
def trained():
    return LeNet5(golden_params("xent_b300_n60000_e1.dat"), {"loss": "xent"})


@pytest.mark.parametrize("suffix", [".npz", ".dat"])
def test_round_trip_keeps_every_bit_and_prediction(tmp_path, trained, mnist_test, suffix):
    path = tmp_path / ("m" + suffix)
    trained.save(path)
    loaded = LeNet5.load(path)
    assert np.array_equal(loaded.params.view(np.uint64), trained.params.view(np.uint64))
    images = mnist_test[0][:2000]
    assert np.array_equal(loaded.predict(images), trained.predict(images))


def test_dat_is_the_reference_layout(tmp_path, trained):
    trained.save(tmp_path / "m.dat")
    raw = (tmp_path / "m.dat").read_bytes()
    assert raw == (GOLDEN / "xent_b300_n60000_e1.dat").read_bytes()


def test_npz_holds_blocks_and_metadata(tmp_path, trained):
    trained.meta.update(batch_size=300)
    trained.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert f["W3"].shape == (16, 120, 5, 5) and f["b4"].shape == (10,)
        meta = json.loads(str(f["meta"]))
    assert meta["format_version"] == 1 and meta["loss"] == "xent" and meta["batch_size"] == 300
    assert LeNet5.load(tmp_path / "m.npz").meta["batch_size"] == 300


def test_inference_api(trained, mnist_test):
    images, labels = mnist_test
    single = trained.predict(images[0])
    assert isinstance(single, int) and single == int(trained.predict(images[:1])[0])
    proba = trained.predict_proba(images[:100])
    assert proba.shape == (100, 10) and np.allclose(proba.sum(axis=1), 1)
    assert np.array_equal(proba.argmax(axis=1), trained.predict(images[:100]))
    result = trained.evaluate(images, labels)
    assert result.correct == 9679 and result.total == 10000  # the manifest's count
    assert result.confusion.sum() == 10000 and np.trace(result.confusion) == 9679
    assert np.array_equal(result.confusion.sum(axis=1), np.bincount(labels, minlength=10))
    assert "97" in str(result)


def test_api_copies_non_contiguous_images(trained, mnist_test):
    images = mnist_test[0][:20]
    strided = np.asfortranarray(images)
    assert np.array_equal(trained.predict(strided), trained.predict(images))
    read_only = images.copy()
    read_only.flags.writeable = False
    assert np.array_equal(trained.predict(read_only), trained.predict(images))


def test_api_rejects_bad_images(trained):
    with pytest.raises(TypeError, match="uint8"):
        trained.predict(np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="shape"):
        trained.predict(np.zeros((2, 28), np.uint8))
    with pytest.raises(TypeError):
        trained.predict([[0] * 28] * 28)
    with pytest.raises(ValueError, match="0..9"):
        trained.evaluate(np.zeros((2, 28, 28), np.uint8), [1, 11])


def test_init_is_seeded_and_scaled():
    a, b, c = LeNet5.init(0), LeNet5.init(0), LeNet5.init(1)
    assert np.array_equal(a.params, b.params) and not np.array_equal(a.params, c.params)
    for name, fan in (("W1", 175), ("W2", 550), ("W3", 3400), ("W4", 130)):
        w = core.block(a.params, name)
        bound = np.sqrt(6 / fan)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    for name in ("b1", "b2", "b3", "b4"):
        assert not core.block(a.params, name).any()


BAD_MODELS = [
    ("short.dat", b"\0" * 8 * 51901, "415208 bytes"),
    ("long.dat", b"\0" * 8 * 51903, "415224 bytes"),
    ("empty.dat", b"", "0 bytes"),
    ("nan.dat", np.full(51902, np.nan).tobytes(), "NaN or infinite"),
    ("inf.dat", np.r_[np.zeros(51901), np.inf].tobytes(), "NaN or infinite"),
    ("model.txt", b"hello", "unknown model format"),
    ("garbage.npz", b"not a zip", "not a readable .npz"),
]


@pytest.mark.parametrize("name,content,message", BAD_MODELS, ids=[b[0] for b in BAD_MODELS])
def test_bad_model_files(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        LeNet5.load(tmp_path / name)


def test_bad_npz_blocks(tmp_path):
    good = {name: np.zeros(shape) for name, (_, shape) in core.BLOCKS.items()}
    np.savez(tmp_path / "missing.npz", **{k: v for k, v in good.items() if k != "W2"})
    with pytest.raises(ModelFileError, match="missing parameter block W2"):
        LeNet5.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "shape.npz", **dict(good, W4=np.zeros((10, 120))))
    with pytest.raises(ModelFileError, match="W4 has shape"):
        LeNet5.load(tmp_path / "shape.npz")
    np.savez(tmp_path / "dtype.npz", **dict(good, b1=np.zeros(6, np.float32)))
    with pytest.raises(ModelFileError, match="dtype"):
        LeNet5.load(tmp_path / "dtype.npz")
    with pytest.raises(ModelFileError, match="no such model file"):
        LeNet5.load(tmp_path / "absent.npz")


def test_save_is_atomic(tmp_path, trained, monkeypatch):
    """A save that fails half way leaves the old file whole and no litter."""
    path = tmp_path / "m.npz"
    trained.save(path)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(OSError, match="disk full"):
        LeNet5.init(5).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
