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
