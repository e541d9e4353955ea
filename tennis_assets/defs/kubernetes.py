"""The code location of the Kubernetes deployment (deploy/kubernetes/, extra ``k8s``): the
Definitions of tennis_assets.definitions plus ``tune_in_pods``, the study whose tuning workers
run as Kubernetes Jobs (k8s_job_executor). Loaded by the user-code Deployment with
``-m tennis_assets.defs.kubernetes``; nothing else imports it, so the rest of the project needs
no dagster-k8s."""

import dagster as dg

from tennis_assets.definitions import defs as _base

from .step_jobs import pod_jobs

defs = dg.Definitions.merge(_base, dg.Definitions(jobs=pod_jobs()))
