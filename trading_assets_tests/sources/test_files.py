import json

import numpy as np
import pandas as pd
import pytest

from trading_assets.errors import CandleDataError, UnknownSymbolError
from trading_assets.sources import FileSource
from trading_assets_tests.conftest import END


def test_csv_with_aliases_and_epoch_ms(tmp_path, candles_1m):
    raw = candles_1m.reset_index()
    raw = raw.rename(
        columns={
            "open_time": "timestamp",
            "open": "opening_price",
            "close": "trade_price",
            "volume": "vol",
            "value": "quote_volume",
        }
    )
    raw["timestamp"] = raw["timestamp"].astype("int64") // 1_000_000
    raw.to_csv(tmp_path / "KRW-BTC_1m.csv", index=False)
    out = FileSource(tmp_path).fetch("KRW-BTC", "1m", candles_1m.index[10], candles_1m.index[-1])
    pd.testing.assert_frame_equal(out, candles_1m.iloc[10:-1], check_freq=False)


def test_parquet_with_datetime_index_and_iso_text(tmp_path, candles_1m):
    candles_1m.to_parquet(tmp_path / "KRW-BTC_5m.parquet")
    five = candles_1m[candles_1m.index.minute % 5 == 0]
    five.to_parquet(tmp_path / "KRW-BTC_5m.parquet")
    out = FileSource(tmp_path).fetch("KRW-BTC", "5m", END - pd.Timedelta(days=3), END)
    pd.testing.assert_frame_equal(out, five, check_freq=False)
    text = five.reset_index()
    text["open_time"] = text["open_time"].dt.strftime("%Y-%m-%d %H:%M:%S")  # naive text = UTC
    text.to_csv(tmp_path / "KRW-ETH_5m.csv", index=False)
    pd.testing.assert_frame_equal(
        FileSource(tmp_path).fetch("KRW-ETH", "5m", END - pd.Timedelta(days=3), END), five, check_freq=False
    )


def test_json_rows_without_value_estimate_turnover(tmp_path, caplog):
    rows = [[1509836520000 + 60000 * i, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 10.0] for i in range(5)]
    (tmp_path / "BTC-ETH_1m.json").write_text(json.dumps(rows))
    out = FileSource(tmp_path).fetch("BTC-ETH", "1m", pd.Timestamp("2017-01-01", tz="UTC"), END)
    assert len(out) == 5 and out.index[0] == pd.Timestamp(1509836520000, unit="ms", tz="UTC")
    np.testing.assert_allclose(out["value"], 10.0 * (out["high"] + out["low"] + out["close"]) / 3)
    assert "estimating value" in caplog.text


def test_malformed_rows_and_unknown_symbol(tmp_path, candles_1m):
    raw = candles_1m.reset_index().astype({"close": object})
    raw.loc[7, "close"] = "KRW-BTC"
    raw.to_csv(tmp_path / "KRW-BTC_1m.csv", index=False)
    out = FileSource(tmp_path).fetch("KRW-BTC", "1m", candles_1m.index[0], END)  # the bad bar becomes missing
    assert len(out) == len(candles_1m) - 1 and candles_1m.index[7] not in out.index
    assert out.attrs["invalid_bars"] == [f"{candles_1m.index[7].isoformat()}: close = 'KRW-BTC'"]
    with pytest.raises(UnknownSymbolError, match="KRW-XRP 1m: no candle file found"):
        FileSource(tmp_path).fetch("KRW-XRP", "1m", candles_1m.index[0], END)
    pd.DataFrame({"when": [1], "open": [1]}).to_csv(tmp_path / "KRW-DOGE_1m.csv", index=False)
    with pytest.raises(CandleDataError, match="lacks columns"):
        FileSource(tmp_path).fetch("KRW-DOGE", "1m", candles_1m.index[0], END)


def test_pandas_exports_with_an_unnamed_or_named_datetime_index(tmp_path, candles_1m):
    frame = candles_1m.iloc[:300]
    unnamed = frame.rename_axis(None)
    unnamed.to_csv(tmp_path / "KRW-BTC_1m.csv")  # first column "Unnamed: 0"
    unnamed.to_parquet(tmp_path / "KRW-ETH_1m.parquet")
    frame.rename_axis("Datetime").rename(columns=str.capitalize).to_csv(tmp_path / "KRW-XRP_1m.csv")
    source = FileSource(tmp_path)
    for symbol in ("KRW-BTC", "KRW-ETH", "KRW-XRP"):
        out = source.fetch(symbol, "1m", frame.index[0], END)
        pd.testing.assert_frame_equal(out, frame, check_freq=False)  # exact floats, also from CSV text


def test_json_floats_are_exact(tmp_path):
    values = [0.1 + 0.2, 1 / 3, 2 / 3 * 1e5, 123456.78901234567]
    rows = [[1509836520000 + 60000 * i, v, v * 1.5, v * 0.5, v, v] for i, v in enumerate(values)]
    (tmp_path / "BTC-ETH_1m.json").write_text(json.dumps(rows))
    out = FileSource(tmp_path).fetch("BTC-ETH", "1m", pd.Timestamp("2017-01-01", tz="UTC"), END)
    assert out["open"].tolist() == values and out["high"].tolist() == [v * 1.5 for v in values]


def test_errors_name_the_file_and_the_accepted_columns(tmp_path):
    (tmp_path / "KRW-BTC_1m.csv").write_text("")
    with pytest.raises(CandleDataError, match=r"KRW-BTC_1m.csv"):
        FileSource(tmp_path).fetch("KRW-BTC", "1m", END - pd.Timedelta(days=1), END)
    pd.DataFrame({"when": ["2026-01-01"], "price": [1.0]}).to_csv(tmp_path / "KRW-ETH_1m.csv", index=False)
    with pytest.raises(CandleDataError) as err:
        FileSource(tmp_path).fetch("KRW-ETH", "1m", END - pd.Timedelta(days=1), END)
    assert "KRW-ETH_1m.csv lacks columns" in str(
        err.value
    ) and "accepted names: open_time: open_time, timestamp" in str(err.value)


def test_bad_cells_become_missing_bars_and_rows_outside_the_span_are_not_read(tmp_path, candles_1m):
    frame = candles_1m.iloc[:300].astype(object)
    frame.iloc[10, frame.columns.get_loc("close")] = "n/a"
    frame.iloc[250, frame.columns.get_loc("volume")] = -5.0
    frame.to_csv(tmp_path / "KRW-BTC_1m.csv")
    out = FileSource(tmp_path).fetch("KRW-BTC", "1m", candles_1m.index[100], END)  # bar 10 is outside the span
    assert len(out) == 199 and candles_1m.index[250] not in out.index
    assert out.attrs["invalid_bars"] == [f"{candles_1m.index[250].isoformat()}: negative volume"]


def test_higher_timeframes_aggregated_from_the_finest_file(tmp_path, candles_1m):
    candles_1m.to_parquet(tmp_path / "KRW-BTC_1m.parquet")
    start, end = candles_1m.index[0].ceil("1h"), END - pd.Timedelta(hours=1)
    out = FileSource(tmp_path).fetch("KRW-BTC", "60m", start, end)
    hour = candles_1m.loc[(candles_1m.index >= start) & (candles_1m.index < start + pd.Timedelta(hours=1))]
    first = out.iloc[0]
    assert out.index[0] == start and len(out) == (end - start) / pd.Timedelta(hours=1)
    assert first["open"] == hour["open"].iloc[0] and first["close"] == hour["close"].iloc[-1]
    assert first["high"] == hour["high"].max() and first["low"] == hour["low"].min()
    assert first["volume"] == pytest.approx(hour["volume"].sum(), rel=1e-12)
    assert first["value"] == pytest.approx(hour["value"].sum(), rel=1e-12)
    daily = FileSource(tmp_path).fetch("KRW-BTC", "1d", END - pd.Timedelta(days=1), END)
    assert list(daily.index) == [END - pd.Timedelta(days=1)]  # days start 00:00 UTC, as on the exchange


def test_a_directory_named_like_a_candle_file_is_not_read_through_its_links(tmp_path, candles_1m):
    """pyarrow reads a directory as a dataset and follows the links in it: only a regular file inside the
    folder is read, its path resolved at every level."""
    outside = tmp_path / "outside"
    outside.mkdir()
    candles_1m.to_parquet(outside / "secret.parquet")
    folder = tmp_path / "candles"
    (folder / "KRW-BTC_1m.parquet").mkdir(parents=True)
    (folder / "KRW-BTC_1m.parquet" / "part.parquet").symlink_to(outside / "secret.parquet")
    with pytest.raises(CandleDataError, match="is not a regular file inside"):
        FileSource(folder).fetch("KRW-BTC", "1m", candles_1m.index[0], candles_1m.index[-1])
    (folder / "KRW-ETH_1m.parquet").symlink_to(outside / "secret.parquet")  # a link out, named like a file
    with pytest.raises(ValueError, match="leaves the directory|is not a regular file inside"):
        FileSource(folder).fetch("KRW-ETH", "1m", candles_1m.index[0], candles_1m.index[-1])


def test_files_are_bounded_before_reading_and_read_in_batches(tmp_path, candles_1m, monkeypatch):
    from trading_assets.sources import files

    candles_1m.to_parquet(tmp_path / "KRW-BTC_1m.parquet", row_group_size=100)
    candles_1m.to_csv(tmp_path / "KRW-ETH_1m.csv")
    window = (candles_1m.index[200], candles_1m.index[900])
    whole = {s: FileSource(tmp_path).fetch(s, "1m", *window) for s in ("KRW-BTC", "KRW-ETH")}
    monkeypatch.setattr(files, "BATCH_ROWS", 64)  # many batches: the same candles
    for symbol, expected in whole.items():
        pd.testing.assert_frame_equal(FileSource(tmp_path).fetch(symbol, "1m", *window), expected)
    monkeypatch.setattr(files, "MAX_FILE_ROWS", 1000)  # rows: from Parquet's metadata, counted in a CSV
    for symbol in whole:
        with pytest.raises(CandleDataError, match=f"{symbol} 1m: candle file .* more than 1,000"):
            FileSource(tmp_path).fetch(symbol, "1m", *window)
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 1024)  # bytes: before the file is opened
    with pytest.raises(CandleDataError, match=r"bytes, more than 1,024"):
        FileSource(tmp_path).fetch("KRW-BTC", "1m", *window)
