"""`kubectl kustomize` renders every overlay, Job and component mix, and the result says what
the issue asks for (GPU scheduling, probes, headless Service, same args in both overlays...)."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.k8s.conftest import TARGETS, config_map_files, tf_serving_container


@pytest.mark.parametrize("target", TARGETS)
def test_renders(rendered, target):
    objs = rendered[target]
    assert objs, f"{target} rendered nothing"
    for o in objs:
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == "tfgate", f"{target}: {o['kind']} {o['metadata']['name']}"
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tfgate"


def _pod(rendered, target, kind, name):
    return rendered.find(target, kind, name)["spec"]["template"]["spec"]


def test_gpu_overlay_schedules_tf_serving_on_gpus(rendered):
    pod = _pod(rendered, "overlays/gpu", "Deployment", "tf-serving")
    c = tf_serving_container(rendered["overlays/gpu"])
    assert c["image"] == "tensorflow/serving:2.19.1-gpu"
    assert c["command"] == ["tensorflow_model_server"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert "podAntiAffinity" in pod["affinity"]
    batching = config_map_files(rendered["overlays/gpu"], "tf-serving-config")["batching.config"]
    assert "max_batch_size { value: 128 }" in batching


def test_cpu_overlay_runs_tfgate_model_server_with_the_same_args(rendered):
    gpu = tf_serving_container(rendered["overlays/gpu"])
    cpu = tf_serving_container(rendered["overlays/cpu"])
    assert cpu["command"] == ["tfgate", "model-server"]
    assert cpu["image"] == "tfgate/serving:0.1.0"
    assert cpu["args"] == gpu["args"]
    assert "nvidia.com/gpu" not in json.dumps(_pod(rendered, "overlays/cpu", "Deployment", "tf-serving"))
    for pvc in (o for o in rendered["overlays/cpu"] if o["kind"] == "PersistentVolumeClaim"):
        assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("target", ["overlays/gpu", "overlays/cpu"])
def test_tf_serving_args_probes_and_config(rendered, target):
    c = tf_serving_container(rendered[target])
    args = dict(a.removeprefix("--").split("=", 1) for a in c["args"])
    assert args["port"] == "8500" and args["rest_api_port"] == "8501"
    assert "grpc.max_connection_age_ms=" in args["grpc_channel_arguments"]
    assert args["enable_grpc_healthcheck_service"] == "true"
    assert args["enable_batching"] == "true"
    files = config_map_files(rendered[target], "tf-serving-config")
    mount = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["config"]
    for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
        directory, _, name = args[flag].rpartition("/")
        assert directory == mount and name in files, flag
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"] == {"port": 8500}, probe
    # Model loading may take minutes: the startup probe must allow for it.
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 300
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"]


@pytest.mark.parametrize("target", ["overlays/gpu", "overlays/cpu"])
def test_headless_service_and_gateway_targets(rendered, target):
    svc = rendered.find(target, "Service", "tf-serving")
    assert svc["spec"]["clusterIP"] == "None"
    port = {p["name"]: p["port"] for p in svc["spec"]["ports"]}["grpc"]
    cfg = yaml.safe_load(config_map_files(rendered[target], "gateway-config")["gateway.yaml"])
    assert set(cfg["models"]) == {"housing", "fashion"}
    for m in cfg["models"].values():
        assert m["targets"] == [f"dns:///{svc['metadata']['name']}:{port}"]


@pytest.mark.parametrize("target", ["overlays/gpu", "overlays/cpu"])
def test_gateway_workload(rendered, target):
    dep = rendered.find(target, "Deployment", "tfgate-gateway")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["tfgate"] and c["args"][0] == "gateway"
    assert c["securityContext"]["readOnlyRootFilesystem"]
    assert pod["securityContext"]["runAsNonRoot"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"] == {"port": 9000}
    assert "replicas" not in dep["spec"], "the HPA owns replicas"
    hpa = rendered.find(target, "HorizontalPodAutoscaler", "tfgate-gateway")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "tfgate-gateway"
    for name in ("tfgate-gateway", "tf-serving"):
        rendered.find(target, "PodDisruptionBudget", name)
    # Shutdown drain must fit in the grace period.
    cfg = yaml.safe_load(config_map_files(rendered[target], "gateway-config")["gateway.yaml"])
    drain = cfg["shutdown"]["readiness_seconds"] + cfg["shutdown"]["grace_seconds"]
    assert pod["terminationGracePeriodSeconds"] > drain


def test_gpu_gateway_requires_tokens_secret(rendered):
    pod = _pod(rendered, "overlays/gpu", "Deployment", "tfgate-gateway")
    vol = {v["name"]: v for v in pod["volumes"]}["secrets"]
    assert vol["secret"]["optional"] is False
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    mount = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}["secrets"]
    assert env["TFGATE_GATEWAY__AUTH__TOKENS_FILE"].startswith(mount + "/")


@pytest.mark.parametrize("target", ["overlays/gpu", "overlays/cpu"])
def test_only_the_gateway_reaches_tf_serving(rendered, target):
    policies = [o for o in rendered[target] if o["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert deny and "ingress" not in deny[0]["spec"], "default deny-all ingress"
    tfs = [p for p in policies if p["spec"]["podSelector"].get("matchLabels", {}).get(
        "app.kubernetes.io/name") == "tf-serving"]
    assert len(tfs) == 1
    (rule,) = tfs[0]["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "tfgate-gateway"}}}]


def test_components(rendered):
    objs = rendered["gpu+servicemonitor+gcs"]
    kinds = [o["kind"] for o in objs]
    assert kinds.count("ServiceMonitor") == 2
    models = config_map_files(objs, "tf-serving-config")["models.config"]
    assert 'base_path: "gs://BUCKET/models/housing"' in models
    assert "max_batch_size { value: 128 }" in config_map_files(objs, "tf-serving-config")["batching.config"]
    pod = _pod(rendered, "gpu+servicemonitor+gcs", "Deployment", "tf-serving")
    assert "model-store" not in json.dumps(pod)
    sa = rendered.find("gpu+servicemonitor+gcs", "ServiceAccount", "tf-serving")
    assert "iam.gke.io/gcp-service-account" in sa["metadata"]["annotations"]


def test_multiworker_job_builds_tf_config_per_worker(rendered):
    job = rendered.find("jobs/train-multiworker", "Job", "tfgate-train-multiworker")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"]
    pod = spec["template"]["spec"]
    svc = rendered.find("jobs/train-multiworker", "Service", "tfgate-train-workers")
    assert pod["subdomain"] == svc["metadata"]["name"] and svc["spec"]["clusterIP"] == "None"
    env = pod["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert names.index("WORKER_INDEX") < names.index("TF_CONFIG"), "$(WORKER_INDEX) expands only if earlier"
    args = pod["containers"][0]["args"]
    assert args[args.index("--strategy") + 1] == "multi-worker"
    assert args[args.index("--version") + 1] == "$(VERSION)", "all workers export the same version"
    tf_config = {e["name"]: e.get("value") for e in env}["TF_CONFIG"]
    for i in range(spec["completions"]):
        rendered_config = json.loads(tf_config.replace("$(WORKER_INDEX)", str(i)))
        workers = rendered_config["cluster"]["worker"]
        assert len(workers) == spec["completions"]
        assert workers[i].startswith(f"{job['metadata']['name']}-{i}.{svc['metadata']['name']}:")
        assert rendered_config["task"] == {"type": "worker", "index": i}


def test_jobs_share_params_and_volumes(rendered):
    for target in ("jobs/pipeline", "jobs/train", "jobs/publish"):
        (job,) = [o for o in rendered[target] if o["kind"] == "Job"]
        pod = job["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert c["image"] == "tfgate/pipeline:0.1.0"
        assert c["envFrom"][0]["configMapRef"]["name"].startswith("tfgate-job-params")
        claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        assert "tfgate-work" in claims
    publish = _pod(rendered, "jobs/publish", "Job", "tfgate-publish")
    script = publish["containers"][0]["args"][0]
    assert 'mv "$dst/.publish-$VERSION" "$dst/$VERSION"' in script
