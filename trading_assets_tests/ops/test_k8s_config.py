"""The Kubernetes configuration loads and maps training to GPU nodes (no cluster needed)."""

from pathlib import Path

import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import get_user_defined_k8s_config

from trading_assets.defs import defs

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
ENV = {
    "DAGSTER_PG_HOST": "postgres",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "dagster",
    "DAGSTER_PG_PASSWORD": "x",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_K8S_NAMESPACE": "trading",
}


def test_instance_config_and_run_launcher_validate(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config, _ = dagster_instance_config(str(DEPLOY))
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors
    assert result.value["job_namespace"] == "trading" and result.value["load_incluster_config"] is True
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_training_runs_and_steps_ask_for_a_gpu_node():
    for job_name in ("training_job", "full_pipeline_job"):
        tags = defs.resolve_job_def(job_name).tags
        k8s = get_user_defined_k8s_config(tags)
        assert k8s.container_config["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert k8s.pod_spec_config["node_selector"] == {"trading-assets/node-pool": "gpu"}
        assert tags["trading_assets/gpu"] == "1"
    assert "dagster-k8s/config" not in defs.resolve_job_def("market_data_job").tags  # data runs stay on CPU nodes
    trained = defs.resolve_assets_def("trained_model")
    assert trained.op.pool == "gpu"
    step = get_user_defined_k8s_config(trained.op.tags)
    assert step.container_config["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_helm_values_point_at_the_code_location():
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "trading_assets.defs", "--attribute", "defs"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    limits = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert limits == instance["concurrency"]["runs"]["tag_concurrency_limits"]


def test_production_instance_limits_gpu_work():
    """The top-level dagster.yaml: one training step (pool gpu) and one GPU-tagged run at a time, retries on."""
    config = yaml.safe_load((DEPLOY.parents[1] / "dagster.yaml").read_text())
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert {"key": "trading_assets/gpu", "limit": 1} in config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert config["run_retries"]["enabled"] and config["storage"]["postgres"]["postgres_db"]["password"] == {
        "env": "DAGSTER_PG_PASSWORD"
    }
