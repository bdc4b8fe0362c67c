"""settings: the one reader of the environment, and locations given by a caller without writing it."""

import os

import pytest

from trading_assets import settings
from trading_assets.defs.resources import Locations
from trading_assets.redaction import redact


def test_given_locations_win_over_the_environment_inside_the_block_only(monkeypatch, tmp_path):
    monkeypatch.setenv("TRADING_FILES_DIR", str(tmp_path / "from_env"))
    locations = Locations()  # unset fields: the variable, read when asked
    assert locations.resolved_files_dir() == tmp_path / "from_env"
    with settings.given(files_dir=str(tmp_path / "given"), upbit_base_url=None):
        assert locations.resolved_files_dir() == tmp_path / "given"
        assert settings.location("files_dir") == str(tmp_path / "given")
        assert settings.location("upbit_base_url") is None  # None gives nothing
    assert locations.resolved_files_dir() == tmp_path / "from_env"
    assert os.environ["TRADING_FILES_DIR"] == str(tmp_path / "from_env")  # never written


def test_a_given_url_is_redacted_like_an_environment_one():
    with settings.given(upbit_base_url="https://user:PlantedPassw0rd@mirror.example/api"):
        assert "PlantedPassw0rd" not in redact("GET failed: PlantedPassw0rd rejected")
    assert "PlantedPassw0rd" in redact("GET failed: PlantedPassw0rd rejected")


def test_an_unknown_location_is_refused():
    with pytest.raises(ValueError, match="unknown location"), settings.given(nowhere="x"):
        pass


def test_cadences_and_the_instance_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRADING_REFRESH_CRON_5M", "*/10 * * * *")
    monkeypatch.setenv("TRADING_ALERT_SENSOR_INTERVAL", "7")
    assert settings.refresh_cron("5m", "*/5 * * * *") == "*/10 * * * *"
    assert settings.refresh_cron("1m", "* * * * *") == "* * * * *"
    assert settings.alert_sensor_interval() == 7
    assert settings.dagster_home() is None
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert settings.dagster_home() == tmp_path


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TRADING_FEATURE_SET", "bogus", "TRADING_FEATURE_SET: unknown feature set 'bogus'; expected one of default"),
        ("TRADING_REFERENCE_SYMBOLS", "KRW-BTC,KRW-ETH", "TRADING_REFERENCE_SYMBOLS: one reference symbol per quote"),
    ],
)
def test_an_invalid_code_location_setting_stops_the_command_line_with_its_message(variable, value, message):
    import subprocess
    import sys

    env = {**os.environ, variable: value}
    assert settings.location_settings_error() is None  # the tests' environment is valid
    # the instance's modules read them (symbols), the definitions too (materialize); its help reads neither
    command = ["symbols", "list"] if variable == "TRADING_FEATURE_SET" else ["materialize", "--symbols", "KRW-BTC"]
    done = subprocess.run(
        [sys.executable, "-m", "trading_assets.app.cli", *command], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.startswith(f"Error: {message}"), (command, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    help_command = [sys.executable, "-m", "trading_assets.app.cli", "materialize", "--help"]
    done = subprocess.run(help_command, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("Usage:") and done.stderr == "", done.stderr
