"""The Partition value: validated when made, one key form, the Dagster key of the same pair."""

import pytest

from trading_assets.defs.partitions import dagster_key, partition_key, partition_of
from trading_assets.partition import Partition


def test_a_partition_round_trips_through_its_key_and_dagster():
    p = Partition("KRW-BTC", "5m")
    assert p.key == "KRW-BTC|5m" and str(p) == "KRW-BTC 5m"
    assert Partition.parse(p.key) == p
    assert str(dagster_key(p)) == p.key == str(partition_key("KRW-BTC", "5m"))
    assert partition_of(dagster_key(p)) == p and partition_of(p.key) == p
    assert sorted([Partition("KRW-ETH", "1m"), p]) == [p, Partition("KRW-ETH", "1m")]


@pytest.mark.parametrize(
    "symbol, timeframe, message",
    [
        ("KRW|BTC", "1m", "invalid symbol"),
        ("../etc", "1m", "invalid symbol"),
        ("KRW-BTC", "2m", "unknown timeframe"),
        ("KRW-BTC", "", "unknown timeframe"),
    ],
)
def test_a_bad_pair_is_refused_naming_the_part(symbol, timeframe, message):
    with pytest.raises(ValueError, match=message):
        Partition(symbol, timeframe)


def test_a_key_without_separator_is_refused():
    with pytest.raises(ValueError, match="invalid partition key 'KRW-BTC'"):
        Partition.parse("KRW-BTC")
