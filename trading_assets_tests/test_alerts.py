"""The alert outbox on its own: each alert queued once, and a failing alert never starves the others."""

from trading_assets.alerts import Outbox, RunFailureAlert


def _alert(run_id: str) -> RunFailureAlert:
    return RunFailureAlert(run_id, "market_data_job", "KRW-BTC|1m", "upbit", "raw_candles", "boom", "http://ui", 0.0)


def test_a_webhook_that_stays_down_gets_every_alert_in_turn(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    for run_id in ("a", "b", "c"):
        assert outbox.add(_alert(run_id), tmp_path / "alerts.jsonl", webhook=True)
    assert not outbox.add(_alert("a"), tmp_path / "alerts.jsonl", webhook=True)
    tried = []
    for _ in range(4):  # one failed POST per call (the webhook is down), no backoff: every alert is due again
        report = outbox.deliver("http://127.0.0.1:9/hook", 10, 1, 0, 0, 3600)
        tried += list(report.failed)
    assert tried == ["run:a", "run:b", "run:c", "run:a"]
    assert all(outbox.state(f"run:{r}")["state"] == "pending" for r in "abc")


def test_owner_only_modes_are_applied_again_to_what_exists(tmp_path, monkeypatch):
    """A data folder or alert log left readable by others (an older version, a copy) is made owner-only."""
    import os
    import stat

    from trading_assets.alerts import append_line
    from trading_assets.settings import data_dir

    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    monkeypatch.setenv("TRADING_DATA_DIR", str(folder))
    assert stat.S_IMODE(data_dir().stat().st_mode) == 0o700
    log = folder / "alerts.jsonl"
    log.write_text("")
    os.chmod(log, 0o644)
    append_line(log, {"event_id": "x"})
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and log.read_text().count("\n") == 1
