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
    with pytest.raises(CandleDataError, match=r"KRW-BTC 1m column 'close': 1 non-numeric") as exc:
        FileSource(tmp_path).fetch("KRW-BTC", "1m", candles_1m.index[0], END)
    assert "'KRW-BTC'" in str(exc.value)
    with pytest.raises(UnknownSymbolError, match="KRW-XRP 1m: no candle file found"):
        FileSource(tmp_path).fetch("KRW-XRP", "1m", candles_1m.index[0], END)
    pd.DataFrame({"when": [1], "open": [1]}).to_csv(tmp_path / "KRW-DOGE_1m.csv", index=False)
    with pytest.raises(CandleDataError, match="lacks columns"):
        FileSource(tmp_path).fetch("KRW-DOGE", "1m", candles_1m.index[0], END)
