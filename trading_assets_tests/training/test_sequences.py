import numpy as np
import pandas as pd
import pytest

from trading_assets.features import TARGET
from trading_assets.training.sequences import build_sequences


def _frame(n=600, n_features=5, seed=0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC", name="open_time")
    frame = pd.DataFrame(
        rng.standard_normal((n, n_features)).astype("float32"), index=idx, columns=[f"f{i}" for i in range(n_features)]
    )
    frame[TARGET] = (rng.standard_normal(n) * 1e-3).astype("float32")
    return frame


def test_windows_are_views_not_copies():
    data = build_sequences(_frame(), seq_len=16)
    windows = data.windows()
    assert windows.shape == (600 - 16 + 1, 16, 5)
    assert windows.untyped_storage().data_ptr() == data.features.untyped_storage().data_ptr()
    np.testing.assert_array_equal(windows[10].numpy(), data.features[10:26].numpy())
    x, y = data.batch(data.train_ends[:8])
    assert x.shape == (8, 16, 5) and y.shape == (8,)


@pytest.mark.parametrize("horizon,lag", [(1, 1), (3, 1), (2, 3)])
def test_labels_are_the_trades_returns(horizon, lag):
    frame = _frame()
    data = build_sequences(frame, seq_len=8, horizon=horizon, entry_lag=lag)
    target = frame[TARGET].to_numpy(dtype="float64")
    t = int(data.train_ends[5])
    assert float(data.labels[t]) == pytest.approx(target[t : t + horizon].sum(), rel=1e-5)
    # the AR(1) input: the latest label already realised at t's close (its prices end at row t)
    known = t - lag - horizon
    assert float(data.last_return[t]) == pytest.approx(target[known : known + horizon].sum(), rel=1e-5)


@pytest.mark.parametrize("seq_len,horizon,lag", [(16, 1, 1), (30, 5, 1), (16, 2, 4)])
def test_chronological_split_without_overlap(seq_len, horizon, lag):
    data = build_sequences(_frame(), seq_len=seq_len, horizon=horizon, entry_lag=lag)

    def rows(ends):  # every row a sample reads: its window and the prices its label reads
        return int(ends.min()) - seq_len + 1, int(ends.max()) + lag + horizon

    train, val, test = rows(data.train_ends), rows(data.validation_ends), rows(data.test_ends)
    assert train[1] < val[0] and val[1] < test[0]
    assert train[0] >= 0 and test[1] <= 600
    assert train[1] <= data.split.train.stop <= data.split.validation.start  # a label reads up to the stop row
    assert len(data.train_ends) > len(data.validation_ends) > 0 and len(data.test_ends) > 0


def test_gap_shorter_than_window_is_refused():
    with pytest.raises(ValueError, match="spans would share rows"):
        build_sequences(_frame(), seq_len=32, gap=10)
    with pytest.raises(ValueError, match="too few"):
        build_sequences(_frame(n=50), seq_len=32)
