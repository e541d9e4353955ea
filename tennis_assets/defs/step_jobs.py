"""The tuning study with each of its steps in a container or pod of its own.

``tune_in_containers`` (docker_executor, dagster-docker): for the compose stack of docker/. Its
run container starts one container per step through the engine's API socket (the code
location's container context gives run containers that socket, docker/docker-compose.yml); the
steps get the run launcher's image, network, variables and data volumes, but not the socket, and
carry the label ``com.tennis-assets.role=dagster-step``.

``tune_in_pods`` (k8s_job_executor, dagster-k8s, extra ``k8s``): for deploy/kubernetes/, where
each tuning worker becomes a Kubernetes Job that the cluster places on any node with room; the
steps get the K8sRunLauncher's image, variables, volumes and service account. Only the
Kubernetes code location (tennis_assets.defs.kubernetes) loads it.

The worker steps still take slots of the ``training`` pool, so the instance's pool limit decides
how many train at once wherever they run.
"""

import warnings

import dagster as dg
from dagster_docker import docker_executor

from .assets import tuning_study

STEP_ROLE = {"com.tennis-assets.role": "dagster-step"}
# container_kwargs merge over the run launcher's key by key: the steps keep its volumes and
# network, get their own label, and no engine socket (``mounts`` from the code location's
# container context): only the run's own container starts containers.
STEP_CONTAINER_KWARGS = {"labels": STEP_ROLE, "mounts": []}

with warnings.catch_warnings():
    # docker_executor is marked beta; its warning says nothing a user of this job can act on.
    warnings.simplefilter("ignore", dg.BetaWarning)
    _container_steps = docker_executor.configured(
        {"container_kwargs": STEP_CONTAINER_KWARGS}, name="docker_steps")

tune_in_containers = dg.define_asset_job(
    "tune_in_containers", selection=dg.AssetSelection.assets(tuning_study),
    executor_def=_container_steps, tags={"stage": "tuning"},
    description="The tuning study with each step (creating the study, every tuning worker, "
                "the summary) in a container of its own, started by the run's container through "
                "the engine (docker_executor); for the compose stack of docker/.")


# Each step's pod: a tuning worker trains on one core (one requested, room to burst to two);
# merged over the run launcher's run_k8s_config (deploy/kubernetes/render_configmaps.py).
POD_STEP_K8S_CONFIG = {"container_config": {"resources": {
    "requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}}}


def pod_jobs() -> list:
    """``tune_in_pods``: needs dagster-k8s (extra ``k8s``)."""
    from dagster_k8s import k8s_job_executor

    pod_steps = k8s_job_executor.configured(
        {"step_k8s_config": POD_STEP_K8S_CONFIG, "max_concurrent": 8}, name="k8s_steps")
    return [dg.define_asset_job(
        "tune_in_pods", selection=dg.AssetSelection.assets(tuning_study),
        executor_def=pod_steps, tags={"stage": "tuning"},
        description="The tuning study with each step in a Kubernetes Job of its own "
                    "(k8s_job_executor): n_workers tuning workers spread over the cluster's "
                    "nodes; for deploy/kubernetes/.")]
