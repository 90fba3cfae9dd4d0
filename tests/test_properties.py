"""Random shapes, dtypes, layouts and values at the Python boundary and at the
IDX reader: each call gives a clean result or the documented error
(TypeError / ValueError / DataError), never a crash or a hang."""

import gzip

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lenet5 import LeNet5, core, data
from lenet5.params import init_params

PARAMS = init_params(0)
NET = LeNet5(PARAMS)

DTYPES = st.sampled_from([np.uint8, np.int8, np.int32, np.int64, np.uint16, np.float32, np.float64, np.bool_])


@st.composite
def arrays(draw, near_shape):
    """Arrays of any small rank, often close to the expected shape, sometimes strided."""
    dtype = draw(DTYPES)
    shape = draw(st.one_of(st.just(near_shape), hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=30)))
    a = draw(
        hnp.arrays(
            dtype, shape, elements=None if dtype != np.float64 else st.floats(allow_nan=True, allow_infinity=True)
        )
    )
    if a.ndim and draw(st.booleans()):
        a = np.repeat(a, 2, axis=0)[::2]  # same values, not contiguous
    if draw(st.booleans()):
        a.flags.writeable = False
    return a


@settings(max_examples=150, deadline=None)
@given(
    images=arrays((3, 28, 28)),
    labels=arrays((3,)),
    lr=st.one_of(st.floats(), st.integers(-2, 2)),
    sign=st.integers(-2, 2),
    loss=st.sampled_from(["mse", "xent", "MSE", ""]),
)
def test_train_batch_is_clean_or_refuses(images, labels, lr, sign, loss):
    params = PARAMS.copy()
    try:
        value, correct = core.train_batch(params, images, labels, loss=loss, sign=sign, lr=lr)
    except (TypeError, ValueError):
        assert np.array_equal(params, PARAMS)  # refused: nothing touched
        return
    assert images.dtype == np.uint8 and labels.shape == (len(images),)
    assert 0 <= correct <= len(images) and not np.isnan(value)


@settings(max_examples=150, deadline=None)
@given(images=arrays((2, 28, 28)))
def test_api_predict_is_clean_or_refuses(images):
    try:
        pred = NET.predict(images)
    except (TypeError, ValueError):
        return
    assert images.dtype == np.uint8
    pred = np.atleast_1d(pred)
    assert ((0 <= pred) & (pred <= 9)).all()
    proba = NET.predict_proba(images)
    assert np.allclose(proba.sum(axis=1), 1)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_idx_parser_on_random_bytes(raw):
    try:
        a = data.parse_idx(raw)
    except data.DataError as e:
        assert "\n" not in str(e)
        return
    assert a.dtype == np.uint8 and a.size == len(raw) - 4 - 4 * raw[3]


@settings(max_examples=200, deadline=None)
@given(
    dims=st.lists(st.integers(0, 40), min_size=1, max_size=3),
    cut=st.integers(-20, 20),
    magic_byte=st.sampled_from([1, 2, 3, 4, 0, 5, 200]),
    zip_it=st.booleans(),
    flip=st.integers(0, 400),
)
def test_idx_reader_on_damaged_files(tmp_path_factory, dims, cut, magic_byte, zip_it, flip):
    body = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    body += bytes(int(np.prod(dims)))
    body = body[: max(0, len(body) + cut)] if cut < 0 else body + bytes(cut)
    if len(body) > 3 and magic_byte != len(dims):
        body = body[:3] + bytes([magic_byte]) + body[4:]
    blob = gzip.compress(body) if zip_it else body
    if flip < len(blob) and zip_it:
        blob = blob[:flip] + bytes([blob[flip] ^ 0xFF]) + blob[flip + 1 :]
    path = tmp_path_factory.mktemp("idx") / "file"
    path.write_bytes(blob)
    try:
        a = data.read_idx(path)
    except data.DataError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    seen = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob  # what the reader read
    ndim = seen[3]
    assert list(a.shape) == [int.from_bytes(seen[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    assert a.size == len(seen) - 4 - 4 * ndim
