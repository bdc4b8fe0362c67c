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


def _admitted(policy, labels, namespace=None):
    """Whether a pod with ``labels`` (in this namespace, or in ``namespace``) may reach the policy's pods."""

    def matches(selector, values):
        if any(values.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
            return False
        return all(values.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))

    for rule in policy["spec"].get("ingress", []):
        for peer in rule["from"]:
            if namespace is None and "namespaceSelector" not in peer and matches(peer["podSelector"], labels):
                return True
            if namespace is not None and "namespaceSelector" in peer:
                if matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
                    return True
    return False


def test_network_policies_admit_only_the_proxy_to_the_webservers_and_them_to_the_code_server():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs("security.yaml")}
    deny = docs[("NetworkPolicy", "trading-assets-default-deny-ingress")]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}  # everything else: no ingress at all
    web = docs[("NetworkPolicy", "trading-assets-webservers")]
    code = docs[("NetworkPolicy", "trading-assets-code-server")]
    webservers = [{"component": "dagster-webserver"}, {"component": "dagster-webserver-read-only"}]
    for pod in webservers:
        assert all(e["values"] for e in web["spec"]["podSelector"]["matchExpressions"])
        assert pod["component"] in web["spec"]["podSelector"]["matchExpressions"][0]["values"]
        assert _admitted(code, pod)  # both webservers reach the code server
    assert _admitted(web, {"trading-assets/role": "ui-proxy"}) and _admitted(web, {}, namespace="ingress-nginx")
    assert _admitted(code, {"component": "dagster-daemon"})
    for intruder in ({"component": "run_worker"}, {"app": "anything"}, {"component": "user-deployments"}):
        assert not _admitted(web, intruder) and not _admitted(code, intruder)  # a run pod or any other pod
    assert not _admitted(web, {"component": "dagster-daemon"})
    assert not _admitted(web, {}, namespace="default") and not _admitted(code, {}, namespace="ingress-nginx")
    assert [r["ports"] for r in web["spec"]["ingress"]] == [[{"protocol": "TCP", "port": 80}]]
    assert [r["ports"] for r in code["spec"]["ingress"]] == [[{"protocol": "TCP", "port": 3030}]]


def test_run_pods_have_a_read_only_account_no_token_and_a_restricted_security_context(monkeypatch):
    """The pod spec dagster-k8s builds for a training run (the GPU tag applied): no token, restricted."""
    import kubernetes
    from dagster import DagsterRun
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import construct_dagster_k8s_job

    docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs("security.yaml")}
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    account = instance["run_launcher"]["config"]["service_account_name"]
    assert docs[("ServiceAccount", account)]["automountServiceAccountToken"] is False
    binding = docs[("RoleBinding", account)]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]
    role = docs[("Role", binding["roleRef"]["name"])]
    assert {v for rule in role["rules"] for v in rule["verbs"]} <= {"get", "list", "watch"}

    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(kubernetes.config, "load_incluster_config", lambda: None)  # no cluster here
    config, _ = dagster_instance_config(str(DEPLOY))
    launcher = K8sRunLauncher(**process_config(K8sRunLauncher.config_type(), config["run_launcher"]["config"]).value)
    run = DagsterRun(job_name="training_job", run_id="0" * 8, tags=defs.resolve_job_def("training_job").tags)
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=True)
    job = construct_dagster_k8s_job(
        context.get_k8s_job_config("registry.example.internal/trading-assets:0.1.0", launcher),
        ["dagster", "api", "execute_run"],
        "dagster-run-00000000",
        context.run_k8s_config,
        component="run_worker",
    )
    manifest = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    pod = manifest["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == account
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"} and security["runAsNonRoot"] is True
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"  # the training tag still applies
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())["runLauncher"]["config"]["customRunLauncher"]
    assert values["config"]["run_k8s_config"] == config["run_launcher"]["config"]["run_k8s_config"]
    _validate(manifest)


def _validate(manifest):
    import kubernetes_validate

    kubernetes_validate.validate(manifest, "1.30.0", strict=True)


def test_every_manifest_validates_against_the_kubernetes_schema():
    for doc in _docs("security.yaml"):
        _validate(doc)


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
    installs = " ".join(x for x in lines if "pip install" in x or x.startswith("&&"))
    # dependencies only from the hashed lock; the project itself without dependencies
    assert "pip install --require-hashes --no-deps -r requirements.lock" in installs
    assert [x.strip() for x in re.findall(r"pip install ([^&\\]+)", installs)] == [
        "--require-hashes --no-deps -r requirements.lock",
        "--no-deps .",
    ]
    pins = [x for x in (DEPLOY / "constraints.txt").read_text().splitlines() if x and not x.startswith("#")]
    assert all(re.fullmatch(r"[a-z0-9-]+==[\w.]+", p) for p in pins)
    names = {p.split("==")[0] for p in pins}
    assert {"dagster", "dagster-k8s", "torch", "mlflow", "pandas", "ta-lib"} <= names
    hashed = re.findall(
        r"^([a-z0-9-]+==[\w.]+) \\\n    --hash=sha256:[0-9a-f]{64}", (DEPLOY / "requirements.lock").read_text(), re.M
    )
    assert hashed == pins  # every pin of constraints.txt, each with its wheel's hash
    assert "torch>=2.6" in (DEPLOY.parents[1] / "pyproject.toml").read_text()  # CVE-2025-32434 fixed
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert deployment["podSecurityContext"]["runAsNonRoot"] is True


def test_the_ui_is_never_exposed_without_authentication():
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP" and values["dagsterWebserver"]["enableReadOnly"]
    nginx = (DEPLOY.parent / "proxy" / "nginx.conf").read_text()
    blocks = re.split(r"\n    server \{", nginx)[1:]
    servers = [s for s in blocks if "proxy_pass" in s]
    [default] = [s for s in blocks if "proxy_pass" not in s]  # any other Host: nothing behind it
    assert len(servers) == 2 and "default_server" in default and "return 421;" in default
    for server in servers:
        assert "auth_basic_user_file" in server or "auth_request" in server
        assert re.findall(r"proxy_pass (\S+);", server)[0].startswith("http://127.0.0.1:")
    assert "--read-only" in nginx and "-h 127.0.0.1 -p 3001 --read-only" in nginx
    readme = (DEPLOY.parents[1] / "docs" / "security.md").read_text()
    assert "0.0.0.0" not in readme and "--read-only" in readme and "deploy/proxy/nginx.conf" in readme
