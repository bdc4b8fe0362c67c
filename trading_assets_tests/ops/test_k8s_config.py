"""The Kubernetes configuration loads and maps training to GPU nodes (no cluster needed)."""

import re
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher
from dagster_k8s.job import UserDefinedDagsterK8sConfig, get_user_defined_k8s_config

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
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert values["runLauncher"]["type"] == "CustomRunLauncher"
    custom = values["runLauncher"]["config"]["customRunLauncher"]
    assert {k: custom[k] for k in ("module", "class", "config")} == instance["run_launcher"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]["config"]["customRunCoordinator"]
    assert (coordinator["module"], coordinator["class"]) == ("trading_assets.defs.run_guard", "GuardedRunCoordinator")
    assert {k: instance["run_coordinator"][k] for k in ("module", "class")} == {
        k: coordinator[k] for k in ("module", "class")
    }
    assert coordinator["config"]["tag_concurrency_limits"] == instance["concurrency"]["runs"]["tag_concurrency_limits"]


def test_production_instance_limits_gpu_work():
    """The top-level dagster.yaml: one training step (pool gpu) and one GPU-tagged run at a time, retries on."""
    config = yaml.safe_load((DEPLOY.parents[1] / "dagster.yaml").read_text())
    assert config["run_coordinator"]["class"] == "GuardedRunCoordinator"  # queued, refusing {env: ...} configs
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert {"key": "trading_assets/gpu", "limit": 1} in config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert config["run_retries"]["enabled"] and config["storage"]["postgres"]["postgres_db"]["password"] == {
        "env": "DAGSTER_PG_PASSWORD"
    }


def _docs(name):
    return list(yaml.safe_load_all((DEPLOY / name).read_text()))


def test_run_tags_cannot_widen_a_pod(monkeypatch):
    """The launcher's allowlist passes the GPU tag of training and refuses anything else a tag could ask for."""
    from dagster_k8s.container_context import K8sContainerContext

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config, _ = dagster_instance_config(str(DEPLOY))
    launcher = process_config(K8sRunLauncher.config_type(), config["run_launcher"]["config"]).value
    allowed, env_vars = (
        launcher["only_allow_user_defined_k8s_config_fields"],
        launcher["only_allow_user_defined_env_vars"],
    )
    gpu = K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(defs.resolve_job_def("training_job").tags))
    gpu.validate_user_k8s_config_for_run(allowed, env_vars)
    for widened in (
        {"container_config": {"security_context": {"privileged": True}}},
        {"pod_spec_config": {"host_network": True}},
        {"container_config": {"env": [{"name": "TRADING_DB_URL", "value": "sqlite:////etc/x"}]}},
        {"pod_spec_config": {"service_account_name": "dagster"}},
        {"pod_spec_config": {"volumes": [{"name": "host", "host_path": {"path": "/"}}]}},
    ):
        context = K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(widened))
        with pytest.raises(Exception, match="violated the allowed list"):
            context.validate_user_k8s_config_for_run(allowed, env_vars)
    assert env_vars == []  # and were env allowed as a field, no variable would pass


def test_run_pods_have_a_read_only_account_and_the_code_server_a_network_policy():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs("security.yaml")}
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    account = instance["run_launcher"]["config"]["service_account_name"]
    assert docs[("ServiceAccount", account)]["automountServiceAccountToken"] is False
    binding = docs[("RoleBinding", account)]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]
    role = docs[("Role", binding["roleRef"]["name"])]
    assert {v for rule in role["rules"] for v in rule["verbs"]} <= {"get", "list", "watch"}
    policy = docs[("NetworkPolicy", "trading-assets-code-server")]["spec"]
    assert policy["podSelector"]["matchLabels"]["deployment"] == "trading-assets"
    [rule] = policy["ingress"]
    assert [p["podSelector"]["matchLabels"]["component"] for p in rule["from"]] == [
        "dagster-webserver",
        "dagster-daemon",
    ]
    assert rule["ports"] == [{"protocol": "TCP", "port": 3030}]


def test_secrets_live_in_a_secret_not_a_config_map():
    from trading_assets.redaction import SECRET_ENV_VARS

    docs = {d["kind"]: d for d in _docs("security.yaml")}
    assert set(SECRET_ENV_VARS) <= set(docs["Secret"]["stringData"])
    assert not set(SECRET_ENV_VARS) & set(docs["ConfigMap"]["data"])
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_launcher"]["config"]
    assert instance["env_secrets"] == [docs["Secret"]["metadata"]["name"]]
    assert instance["env_config_maps"] == [docs["ConfigMap"]["metadata"]["name"]]


def test_image_runs_unprivileged_from_a_pinned_base_with_locked_dependencies():
    lines = [x.strip() for x in (DEPLOY / "Dockerfile").read_text().splitlines() if x.strip() and x[0] != "#"]
    [base] = [x.split()[1] for x in lines if x.startswith("FROM ")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    users = [x.split()[1] for x in lines if x.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    installs = [x for x in lines if "pip install" in x]
    assert installs and all(x.count("pip install") == x.count("--constraint constraints.txt") for x in installs)
    pins = [x for x in (DEPLOY / "constraints.txt").read_text().splitlines() if x and not x.startswith("#")]
    assert all(re.fullmatch(r"[a-z0-9-]+==[\w.]+", p) for p in pins)
    names = {p.split("==")[0] for p in pins}
    assert {"dagster", "dagster-k8s", "torch", "mlflow", "pandas", "ta-lib"} <= names
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True


def test_the_ui_is_never_exposed_without_authentication():
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP" and values["dagsterWebserver"]["enableReadOnly"]
    nginx = (DEPLOY.parent / "proxy" / "nginx.conf").read_text()
    servers = [s for s in re.split(r"\n    server \{", nginx)[1:]]
    assert len(servers) == 2
    for server in servers:
        assert "auth_basic_user_file" in server or "auth_request" in server
        assert re.findall(r"proxy_pass (\S+);", server)[0].startswith("http://127.0.0.1:")
    assert "--read-only" in nginx and "-h 127.0.0.1 -p 3001 --read-only" in nginx
    readme = (DEPLOY.parents[1] / "README.md").read_text()
    assert "0.0.0.0" not in readme and "--read-only" in readme and "deploy/proxy/nginx.conf" in readme
