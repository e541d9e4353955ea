"""deploy/kubernetes/ without a cluster: every manifest against the Kubernetes API's own schemas
(kubernetes-validate ships them; strict: an unknown field is an error), the references between
the objects, the ConfigMaps generated from docker/ up to date, and the Dagster configuration they
carry loaded in Dagster with dagster-k8s: the instance (K8sRunLauncher), the code location
(tune_in_pods on k8s_job_executor), and the Kubernetes Jobs a run and a tuning worker step would
be launched as, built by dagster-k8s itself and validated like the manifests."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")
pytest.importorskip("dagster_k8s")

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
# The oldest Kubernetes still supported upstream when this was written; the schemas of newer
# versions accept these manifests too (test below).
K8S_VERSION = "1.33"
NAMESPACE = "tennis-assets"
# Created by the user (deploy/kubernetes/README.md), never stored here: name -> keys.
USER_SECRETS = {"tennis-assets-secrets": {"DAGSTER_POSTGRES_PASSWORD",
                                          "TENNIS_ASSETS_OPTUNA_STORAGE",
                                          "TENNIS_ASSETS_ALERT_WEBHOOK"},
                "mlflow-backend": {"MLFLOW_BACKEND_STORE_URI"}}
IMAGES = {"tennis-assets/user-code:0.1.0", "tennis-assets/dagster:1.13.27",
          "tennis-assets/optuna-dashboard:0.21.0", "postgres:17.6-bookworm",
          "prom/prometheus:v3.5.0", "prom/alertmanager:v0.28.1"}


def _kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _objects() -> list[dict]:
    return [doc for name in _kustomization()["resources"]
            for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def _by_kind(kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in _objects() if o["kind"] == kind}


def _pod_specs() -> dict[str, dict]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in _objects()
            if o["kind"] in ("Deployment", "StatefulSet")}


def _validate(doc: dict, version: str = K8S_VERSION) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_every_manifest_validates_against_the_kubernetes_api_schema():
    listed = set(_kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, f"not in kustomization.yaml: {on_disk - listed}"
    objects = _objects()
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == ["ConfigMap", "Deployment", "Namespace", "PersistentVolumeClaim", "Role",
                     "RoleBinding", "Service", "ServiceAccount", "StatefulSet"]
    for doc in objects:
        for version in (K8S_VERSION, kubernetes_validate.utils.latest_version()):
            try:
                _validate(doc, version)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {version}): "
                            f"{exc.message} at {list(exc.path)}")
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]
    assert _kustomization()["namespace"] == NAMESPACE


def test_the_schema_check_catches_mistakes():
    deployment = _by_kind("Deployment")["policy-server"]
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerport"] = 8000
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(broken)  # a misspelt field
    broken = copy.deepcopy(deployment)
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(broken)


def test_every_service_selects_a_workload_and_a_named_port():
    pods = {name: o["spec"]["template"] for name, o in _by_kind("Deployment").items()} | \
        {name: o["spec"]["template"] for name, o in _by_kind("StatefulSet").items()}
    for name, service in _by_kind("Service").items():
        selector = service["spec"]["selector"]
        matched = [p for p in pods.values()
                   if selector.items() <= p["metadata"]["labels"].items()]
        assert len(matched) == 1, f"service {name} selects {len(matched)} workloads"
        ports = {p["name"] for c in matched[0]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (name, port)
    for name, workload in {**_by_kind("Deployment"), **_by_kind("StatefulSet")}.items():
        assert workload["spec"]["selector"]["matchLabels"].items() <= \
            workload["spec"]["template"]["metadata"]["labels"].items(), name


def _references(spec: dict) -> dict[str, set]:
    """What a pod spec needs from elsewhere: ConfigMaps (with keys), Secrets (with keys),
    claims and its service account."""
    refs: dict[str, set] = {"configmap": set(), "secret": set(), "claim": set(), "account": set()}
    if "serviceAccountName" in spec:
        refs["account"].add(spec["serviceAccountName"])
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            keys = [i["key"] for i in volume["configMap"].get("items", [])] or [None]
            refs["configmap"] |= {(volume["configMap"]["name"], k) for k in keys}
        if "persistentVolumeClaim" in volume:
            refs["claim"].add(volume["persistentVolumeClaim"]["claimName"])
    for container in spec["containers"]:
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                refs["configmap"].add((source["configMapRef"]["name"], None))
            if "secretRef" in source:
                refs["secret"].add((source["secretRef"]["name"], None))
        for env in container.get("env", []):
            ref = env.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                refs["configmap"].add((ref["configMapKeyRef"]["name"],
                                       ref["configMapKeyRef"]["key"]))
            if "secretKeyRef" in ref:
                refs["secret"].add((ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]))
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in {v["name"] for v in spec.get("volumes", [])} | \
                {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])} | {"data"}
    return refs


def test_every_reference_resolves():
    config_maps, claims = _by_kind("ConfigMap"), set(_by_kind("PersistentVolumeClaim"))
    accounts = set(_by_kind("ServiceAccount"))
    for name, spec in _pod_specs().items():
        refs = _references(spec)
        for cm, key in refs["configmap"]:
            assert cm in config_maps, (name, cm)
            assert key is None or key in config_maps[cm]["data"], (name, cm, key)
        for secret, key in refs["secret"]:
            assert secret in USER_SECRETS, (name, secret)
            assert key is None or key in USER_SECRETS[secret], (name, secret, key)
        assert refs["claim"] <= claims and refs["account"] <= accounts, name
        for container in spec["containers"]:
            assert container["image"] in IMAGES, container["image"]
    binding = _by_kind("RoleBinding")["dagster-runs"]
    assert binding["roleRef"]["name"] in _by_kind("Role")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dagster",
                                    "namespace": NAMESPACE}]
    # The README says how to create each user Secret with exactly these keys.
    readme = (K8S / "README.md").read_text()
    for secret, keys in USER_SECRETS.items():
        assert f"create secret generic {secret}" in readme
        for key in keys:
            assert f"--from-literal={key}=" in readme, key


def test_the_images_and_commands_are_the_compose_stacks():
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())["services"]
    specs = _pod_specs()
    for name, service in (("mlflow", "mlflow"), ("policy-server", "policy-server"),
                          ("postgres", "postgres"), ("prometheus", "prometheus"),
                          ("alertmanager", "alertmanager"),
                          ("optuna-dashboard", "optuna-dashboard")):
        assert specs[name]["containers"][0]["image"] == compose[service]["image"], name
    assert specs["policy-server"]["containers"][0]["command"] == \
        compose["policy-server"]["command"]
    assert specs["alertmanager"]["containers"][0]["args"] == compose["alertmanager"]["command"]
    user_code = specs["user-code"]["containers"][0]
    command = user_code["command"]
    assert command[command.index("-m") + 1] == "tennis_assets.defs.kubernetes"
    assert {e["name"]: e["value"] for e in user_code["env"]}["DAGSTER_CURRENT_IMAGE"] == \
        user_code["image"]
    workspace = yaml.safe_load(_by_kind("ConfigMap")["dagster-workspace"]["data"]
                               ["workspace.yaml"])["load_from"][0]["grpc_server"]
    assert workspace["host"] in _by_kind("Service")
    assert str(workspace["port"]) == command[command.index("-p") + 1]
    assert workspace["location_name"] == command[command.index("--location-name") + 1]


def test_generated_config_maps_are_current():
    out = subprocess.run([sys.executable, str(K8S / "render_configmaps.py"), "--check"],
                         capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr
    data = _by_kind("ConfigMap")
    docker = REPO / "docker"
    assert data["prometheus-rules"]["data"]["tennis.rules.yml"] == \
        (docker / "prometheus" / "rules" / "tennis.rules.yml").read_text()
    assert data["alertmanager-config"]["data"]["start.sh"] == \
        (docker / "alertmanager" / "start.sh").read_text()
    assert data["postgres-init"]["data"]["init-databases.sh"] == \
        (docker / "postgres" / "init-databases.sh").read_text()


@pytest.fixture
def k8s_instance(tmp_path):
    """The dagster-instance ConfigMap's dagster.yaml loaded by Dagster, with the two things a
    machine outside a cluster must change: a local storage instead of the PostgreSQL service
    (the storage block is docker/dagster.yaml's, run on a real PostgreSQL by the services
    tests) and a kubeconfig file instead of the pod's in-cluster credentials."""
    import dagster as dg

    shipped = yaml.safe_load(_by_kind("ConfigMap")["dagster-instance"]["data"]["dagster.yaml"])
    config = copy.deepcopy(shipped)
    config["storage"] = {"sqlite": {"base_dir": str(tmp_path / "storage")}}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "offline",
        "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "offline", "user": {"token": "unused"}}],
        "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}]}))
    launcher = config["run_launcher"]["config"]
    assert launcher["load_incluster_config"] is True
    launcher.update(load_incluster_config=False, kubeconfig_file=str(kubeconfig))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance, shipped


def _as_manifest(job) -> dict:
    import kubernetes

    return kubernetes.client.ApiClient().sanitize_for_serialization(job)


def test_the_instance_loads_with_k8s_run_launcher_and_its_jobs_validate(k8s_instance):
    import dagster as dg
    from dagster_k8s import K8sRunLauncher, construct_dagster_k8s_job
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    from tennis_assets.defs.step_jobs import POD_STEP_K8S_CONFIG

    instance, shipped = k8s_instance
    launcher = instance.run_launcher
    assert isinstance(launcher, K8sRunLauncher)
    assert launcher.job_namespace == NAMESPACE and launcher.service_account_name == "dagster"
    assert launcher.instance_config_map in _by_kind("ConfigMap")
    assert launcher.env_secrets == ["tennis-assets-secrets"]
    assert set(launcher.env_config_maps) <= set(_by_kind("ConfigMap"))
    assert shipped["concurrency"]["pools"]["default_limit"] == 4
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 4

    run = dg.DagsterRun(job_name="tune_in_pods", run_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    context = launcher.get_container_context_for_run(run)
    job_config = context.get_k8s_job_config(job_image="tennis-assets/user-code:0.1.0",
                                            run_launcher=launcher)
    run_job = _as_manifest(construct_dagster_k8s_job(
        job_config, args=["dagster", "api", "execute_run", "{}"], job_name="dagster-run-0f1e2d3c",
        pod_name="dagster-run-0f1e2d3c", component="run_worker",
        user_defined_k8s_config=context.run_k8s_config, labels={"dagster/job": "tune_in_pods"}))
    # A tuning worker's step: the executor's step_k8s_config merged over the run's.
    step_context = context.merge(K8sContainerContext(
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(POD_STEP_K8S_CONFIG)))
    step_job = _as_manifest(construct_dagster_k8s_job(
        step_context.get_k8s_job_config(job_image="tennis-assets/user-code:0.1.0",
                                        run_launcher=launcher),
        args=["dagster", "api", "execute_step", "{}"], job_name="dagster-step-0f1e2d3c",
        pod_name="dagster-step-0f1e2d3c", component="step_worker",
        user_defined_k8s_config=step_context.run_k8s_config))
    for job in (run_job, step_job):
        _validate(job)
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "dagster"
        assert pod["securityContext"] == {"fsGroup": 1000, "runAsNonRoot": True,
                                          "runAsUser": 1000}
        (container,) = pod["containers"]
        assert container["image"] == "tennis-assets/user-code:0.1.0"
        assert {"configMapRef": {"name": "tennis-assets-env"}} in container["envFrom"]
        assert {"secretRef": {"name": "tennis-assets-secrets"}} in container["envFrom"]
        assert container["volumeMounts"] == [{"mountPath": "/data", "name": "data"}]
        assert pod["volumes"] == [{"name": "data", "persistentVolumeClaim": {
            "claimName": "tennis-assets-data"}}]
        refs = _references(pod)
        assert refs["claim"] <= set(_by_kind("PersistentVolumeClaim"))
    assert run_job["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == \
        {"cpu": "1", "memory": "2Gi"}
    assert step_job["spec"]["template"]["spec"]["containers"][0]["resources"] == \
        POD_STEP_K8S_CONFIG["container_config"]["resources"]


def test_the_code_location_runs_tuning_workers_as_kubernetes_jobs():
    import dagster as dg

    from tennis_assets.defs.kubernetes import defs

    job = defs.resolve_job_def("tune_in_pods")
    assert job.executor_def.name == "k8s_steps"
    config = {"ops": {"tuning_study": {"config": {"profile": "quick", "n_trials": 8,
                                                  "n_workers": 4}}}}
    resolved = dg.validate_run_config(job, config)
    # The graph asset's config mapping hands every worker step the same values.
    assert resolved["ops"]["tuning_study.tune_trials"]["config"]["n_workers"] == 4
    from tennis_assets.defs.step_jobs import POD_STEP_K8S_CONFIG

    executor = resolved["execution"]["k8s_steps"]
    assert executor["step_k8s_config"]["container_config"] == \
        POD_STEP_K8S_CONFIG["container_config"] and executor["max_concurrent"] == 8
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, {"ops": {"tuning_study": {"config": {"n_workerz": 4}}}})
    # Everything else of the project is there too: same jobs, sensors and schedules.
    from tennis_assets.definitions import defs as base

    assert {j.name for j in base.jobs} | {"tune_in_pods"} == {j.name for j in defs.jobs}
    # A user-code image without the extra fails with a clear import error, not at run time.
    assert re.search(r'pip install "\.\[k8s\]"',
                     (REPO / "docker" / "Dockerfile.user_code").read_text())
