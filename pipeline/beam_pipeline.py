"""The Beam + TF Transform pipeline: validate, split, analyze on train, transform every split.

Output layout (DESIGN.md, "Pipeline output"):
    DIR/metadata/  DIR/transform_fn/  DIR/transformed_metadata/
    DIR/tfrecords/{train,eval,test}-*.tfrecord.gz  DIR/rejected/*.jsonl  DIR/stats.json
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import logging
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import apache_beam as beam
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    SetupOptions,
    StandardOptions,
    TestOptions,
    WorkerOptions,
)
from google.protobuf import json_format
from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder
from tfx_bsl.public import tfxio

from tfgate.pipeline import fashion, housing, statistics_beam

SPLITS = ("train", "eval", "test")
COUNTER_NAMESPACE = "tfgate"
OUTPUT_SUBDIRS = ("metadata", "transform_fn", "transformed_metadata", "tfrecords", "rejected")


class PipelineInputError(ValueError):
    """The input cannot be processed at all (missing, wrong format); the CLI turns it into exit code 2."""


def split_bucket(key: bytes) -> int:
    """A stable 0..99 bucket from a record's own content, so membership never depends on order."""
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100


def housing_split(line: str) -> str:
    bucket = split_bucket(line.encode("utf-8"))
    return "train" if bucket < 80 else "eval" if bucket < 90 else "test"


def fashion_split(source: str, image: bytes) -> str:
    if source == "t10k":
        return "test"
    return "train" if split_bucket(image) < 90 else "eval"


def rejection(source: str, position: str, index: int, reason: str, raw: str | None = None) -> str:
    record = {"source": source, position: index, "reason": reason}
    if raw is not None:
        record["raw"] = raw[:1000]
    return json.dumps(record)


# ---------------------------------------------------------------------------------------------
# Housing: CSV lines, numbered, validated; the valid ones decoded by TFXIO's CSV decoder.


def check_housing_input(pattern: str) -> list[str]:
    """The CSV files `pattern` names, each with our header; read through Beam's FileSystems."""
    try:
        matched = FileSystems.match([pattern])[0].metadata_list
    except BeamIOError as err:
        raise PipelineInputError(f"cannot list {pattern}: {err}") from err
    files = sorted(m.path for m in matched)
    if not files:
        raise PipelineInputError(f"no input file matches {pattern}")
    expected = ",".join(housing.CSV_COLUMNS)
    for path in files:
        try:  # Beam reads *.gz decompressed (by extension), so the header check does too
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw_handle:
                handle = gzip.GzipFile(fileobj=raw_handle) if path.endswith(".gz") else raw_handle
                head = handle.read(4096)
            first = head.split(b"\n", 1)[0].strip().decode("utf-8", "replace")
            columns = [c.strip() for c in housing.parse_row(first)] if first else []
        except IsADirectoryError as err:  # a local folder matches its own name
            raise PipelineInputError(f"{path} is a directory, expected a CSV file") from err
        except (OSError, EOFError, zlib.error, csv.Error, BeamIOError) as err:
            raise PipelineInputError(f"{path}: cannot read a CSV header ({err})") from err
        if sorted(columns) != sorted(housing.CSV_COLUMNS):
            raise PipelineInputError(
                f"{path} is not a housing CSV: its header must name the columns {expected}, "
                f"found {ascii(first[:60])}"
            )
    return files


class ReadNumberedLines(beam.DoFn):
    """(file) → (source, line number, text or None when not UTF-8, raw bytes, column order), header skipped.

    The column order is None when the header is in the canonical order (the usual case), so the
    lines stay small when they are shuffled between workers.
    """

    def process(self, readable: fileio.ReadableFile) -> Iterable[tuple]:
        source = readable.metadata.path
        order: list[int] | None = None
        with readable.open() as handle:
            # readline, not iteration: Beam's CompressedFile (*.gz) is not iterable
            for number, raw in enumerate(iter(handle.readline, b""), start=1):
                raw = raw.rstrip(b"\r\n")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
                if number == 1:  # check_housing_input made sure it names exactly our columns
                    header = [c.strip() for c in housing.parse_row(text or "")]
                    if header != housing.CSV_COLUMNS:
                        order = [header.index(c) for c in housing.CSV_COLUMNS]
                    continue
                yield source, number, text, raw if text is None else b"", order


class ValidateHousingRow(beam.DoFn):
    REJECTED = "rejected"

    def __init__(self):
        self.rows = Metrics.counter(COUNTER_NAMESPACE, "input_rows")
        self.rejected = Metrics.counter(COUNTER_NAMESPACE, "rejected")

    def process(self, item):
        source, number, text, raw, order = item
        self.rows.inc()
        if text is None:
            reason, shown = "invalid UTF-8", raw.decode("utf-8", "backslashreplace")
        elif not text.strip():
            reason, shown = "empty line", text
        else:
            try:
                fields = housing.parse_row(text)
            except csv.Error as err:  # e.g. a field over the csv module's 128 KiB limit
                fields, reason, shown = None, f"unparseable CSV line: {err}", text
            if fields is not None:
                if order is not None and len(fields) == len(order):
                    fields = [fields[i] for i in order]
                reason, shown = housing.validate_row(fields), text
                if reason is None:
                    line = housing.normalize_row(fields)
                    yield housing_split(line), line
                    return
        self.rejected.inc()
        yield beam.pvalue.TaggedOutput(self.REJECTED, rejection(source, "line", number, reason, shown))


def housing_sources(p: beam.Pipeline, files: list[str] | str):
    """→ ({split: PCollection[RecordBatch]}, rejected JSON lines, TensorAdapterConfig, raw metadata).

    `files`: the checked file list, or (dry run, nothing read) the pattern, which MatchAll expands.
    """
    files = [files] if isinstance(files, str) else files
    metadata = tft.DatasetMetadata.from_feature_spec(housing.raw_feature_spec())
    csv_io = tfxio.CsvTFXIO(
        file_pattern=files[0], column_names=housing.CSV_COLUMNS, schema=metadata.schema
    )
    checked = (
        p
        | "ListFiles" >> beam.Create(files)
        | "Match" >> fileio.MatchAll()
        | "Open" >> fileio.ReadMatches()
        | "NumberLines" >> beam.ParDo(ReadNumberedLines())
        | "Spread" >> beam.Reshuffle()  # a file is read by one worker; spread its lines over all of them
        | "Validate" >> beam.ParDo(ValidateHousingRow()).with_outputs(ValidateHousingRow.REJECTED, main="valid")
    )
    batches = {}
    for split in SPLITS:
        batches[split] = (
            checked.valid
            | f"Select{split}" >> beam.Filter(lambda kv, s=split: kv[0] == s)
            | f"Line{split}" >> beam.Map(lambda kv: kv[1].encode("utf-8"))
            | f"Decode{split}" >> csv_io.RawRecordToRecordBatch()
        )
    return batches, checked[ValidateHousingRow.REJECTED], csv_io.TensorAdapterConfig(), metadata


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST: IDX pairs → raw tf.Examples → TFXIO's tf.Example decoder.


def check_fashion_input(directory: str) -> None:
    try:
        fashion.check_source_dir(directory)
    except (FileNotFoundError, fashion.IdxFormatError) as err:
        raise PipelineInputError(str(err)) from err


class ReadIdxPair(beam.DoFn):
    REJECTED = "rejected"

    def __init__(self):
        self.rows = Metrics.counter(COUNTER_NAMESPACE, "input_rows")
        self.rejected = Metrics.counter(COUNTER_NAMESPACE, "rejected")

    def process(self, item):
        source, images_path, labels_path = item
        for index, image, label, reason in fashion.read_pairs(images_path, labels_path):
            self.rows.inc()
            if reason is None:
                yield fashion_split(source, image), fashion.to_example(image, label)
            else:
                self.rejected.inc()
                yield beam.pvalue.TaggedOutput(
                    self.REJECTED, rejection(f"{images_path}|{labels_path}", "index", index, reason)
                )


def fashion_sources(p: beam.Pipeline, directory: str):
    metadata = tft.DatasetMetadata.from_feature_spec(fashion.raw_feature_spec())
    example_io = tfxio.TFExampleBeamRecord(physical_format="tf.Example", schema=metadata.schema)
    pairs = [(source, images, labels) for source, (images, labels) in fashion.source_paths(directory).items()]
    read = (
        p
        | "ListPairs" >> beam.Create(pairs)
        | "ReadIdx" >> beam.ParDo(ReadIdxPair()).with_outputs(ReadIdxPair.REJECTED, main="valid")
    )
    valid = read.valid | "Spread" >> beam.Reshuffle()
    batches = {}
    for split in SPLITS:
        batches[split] = (
            valid
            | f"Select{split}" >> beam.Filter(lambda kv, s=split: kv[0] == s)
            | f"Example{split}" >> beam.Map(lambda kv: kv[1])
            | f"Decode{split}" >> example_io.RawRecordToRecordBatch()
        )
    return batches, read[ReadIdxPair.REJECTED], example_io.TensorAdapterConfig(), metadata


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    name: str
    check_input: Callable
    sources: Callable
    preprocessing_fn: Callable


DATASETS = {
    "housing": Dataset("housing", check_housing_input, housing_sources, housing.preprocessing_fn),
    "fashion": Dataset("fashion", check_fashion_input, fashion_sources, fashion.preprocessing_fn),
}


def is_dataflow(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner or ""
    name = runner if isinstance(runner, str) else type(runner).__name__
    return name.rsplit(".", 1)[-1].lower().removesuffix("runner") == "dataflow"


def _flag(value, name: str) -> bool:
    """Beam declares --dry_run without a type, so "--dry_run=False" arrives as a truthy string."""
    if isinstance(value, str):
        if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise PipelineInputError(f"--{name}={value}: expected True or False")
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def default_job_name(dataset: str) -> str:
    """Dataflow job names: lower-case letters, digits and dashes; the time keeps reruns apart."""
    return f"tfgate-{dataset}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def _parsed(beam_args: list[str]) -> PipelineOptions:
    """Beam's options, parsed now: argparse would print its whole usage and exit on a malformed value."""
    options = PipelineOptions(beam_args)
    problems = io.StringIO()
    try:
        with contextlib.redirect_stderr(problems):
            options.get_all_options()
    except SystemExit as err:
        last = (problems.getvalue().strip().splitlines() or [f"exit {err.code}"])[-1]
        raise PipelineInputError(f"bad Beam option: {last.split('error: ', 1)[-1]}") from None
    return options


def pipeline_options(beam_args: list[str], dataset: str = "pipeline") -> PipelineOptions:
    """Beam options as given, plus tfgate's deliberate defaults (each only when not given).

    - runner: the offline FnApiRunner (the default runner would download Prism).
    - pickle_library=cloudpickle: what Beam picks for Dataflow anyway, chosen for every runner so the
      local runs test the same pickling the workers unpickle.
    - save_main_session=False: every DoFn and function lives in the importable `pipeline` package,
      nothing in __main__ (the `tfgate` script); Beam would otherwise pickle the main session on Dataflow.
    - Dataflow: a job name `tfgate-<dataset>-<UTC time>`; with --sdk_container_image the image's own
      Beam SDK (--sdk_location=container, nothing staged); and a refusal, before anything is built,
      when the workers would have no way to import tfgate.
    """
    options = _parsed(beam_args)
    if not options.view_as(StandardOptions).runner:
        options = _parsed(["--runner=FnApiRunner", *beam_args])
    setup = options.view_as(SetupOptions)
    if setup.pickle_library == "default":
        setup.pickle_library = "cloudpickle"
    if setup.save_main_session is None:
        setup.save_main_session = False
    test = options.view_as(TestOptions)
    test.dry_run = _flag(test.dry_run, "dry_run")
    if not is_dataflow(options):
        if test.dry_run:
            raise PipelineInputError(
                "--dry_run=True builds a Dataflow job without running it: add --runner=DataflowRunner"
            )
        return options
    cloud = options.view_as(GoogleCloudOptions)
    cloud.job_name = cloud.job_name or default_job_name(dataset)
    worker = options.view_as(WorkerOptions)
    if worker.sdk_container_image and setup.sdk_location == "default":
        setup.sdk_location = "container"
    if not (worker.sdk_container_image or setup.extra_packages or setup.setup_file
            or setup.prebuild_sdk_container_engine):
        raise PipelineInputError(
            "DataflowRunner: the workers need tfgate's code: pass --sdk_container_image=IMAGE (built from "
            "pipeline/Dockerfile), or --extra_package=dist/tfgate-0.1.0.tar.gz "
            "--requirements_file=requirements/workers.txt"
        )
    return options


def delete_tree(path: str) -> None:
    """Remove a folder and everything under it, on any Beam file system (an object store: the prefix)."""
    if FileSystems.get_filesystem(path).has_dirs():
        if FileSystems.exists(path):
            FileSystems.delete([path])
        return
    matched = FileSystems.match([FileSystems.join(path, "**")])[0].metadata_list
    if matched:
        FileSystems.delete([m.path for m in matched])


def prepare_output(output_dir: str) -> None:
    """A writable output folder without the previous run's files, through Beam's FileSystems."""
    try:
        if not FileSystems.exists(output_dir):
            FileSystems.mkdirs(output_dir)  # object stores have no folders: a no-op there
        probe = FileSystems.join(output_dir, f".write-test-{uuid.uuid4().hex}")
        with FileSystems.create(probe) as handle:
            handle.write(b"ok")
        FileSystems.delete([probe])
    except (BeamIOError, OSError, ValueError) as err:
        raise PipelineInputError(f"output directory {output_dir} is not writable: {err}") from err
    # TF Transform writes transform_fn/ and metadata/ with TensorFlow's own file systems (local, gs://).
    try:
        tf.io.gfile.exists(output_dir)
    except tf.errors.UnimplementedError as err:
        raise PipelineInputError(
            f"output directory {output_dir}: TF Transform cannot write there ({err.message}); use a local path or gs://"
        ) from err
    for sub in OUTPUT_SUBDIRS:  # a rerun replaces the previous output instead of mixing shards
        delete_tree(FileSystems.join(output_dir, sub))
    stats = FileSystems.join(output_dir, "stats.json")  # written last: absent until this run accounts its rows
    if FileSystems.exists(stats):
        FileSystems.delete([stats])
    train_stats = FileSystems.join(output_dir, statistics_beam.STATISTICS_FILE)  # issue 17: per-feature
    if FileSystems.exists(train_stats):
        FileSystems.delete([train_stats])


def encode_and_count(split: str):
    written = Metrics.counter(COUNTER_NAMESPACE, f"{split}_rows")

    def encode(batch, _unused_passthrough, encoder):
        for example in encoder.encode(batch):
            written.inc()
            yield example

    return encode


def tft_temp_dir(options: PipelineOptions, output_dir: str) -> str:
    """TF Transform's temp folder (analyzer outputs, SavedModels): under --temp_location when given."""
    temp_location = options.view_as(GoogleCloudOptions).temp_location
    return FileSystems.join(temp_location or output_dir, f"tft-tmp-{uuid.uuid4().hex[:8]}")


def dataflow_job(
    dataset: str, pipeline, result, options, tft_temp: str, dry_run_tft_temp: str, job_file: str | None
) -> dict:
    """What a dry run built: Beam's Job message (name, type; its steps stay empty under Runner v2), the
    options Beam would send, and the portable pipeline (every transform, its environment and the
    artifacts to stage) that Dataflow would run. Written to `job_file` as JSON when given.
    """
    job = {
        "dataset": dataset,
        "dry_run": True,
        "job": json.loads(type(result.job.proto).to_json(result.job.proto)),
        "options": options.get_all_options(drop_default=True, retain_unknown_options=True),
        # a real run's TF Transform temp folder, and the local one this dry run was built against
        "tft_temp_dir": tft_temp,
        "dry_run_tft_temp_dir": dry_run_tft_temp,
        "pipeline": json_format.MessageToDict(pipeline.runner.proto_pipeline),
    }
    if job_file:
        with FileSystems.create(job_file) as handle:
            handle.write(json.dumps(job, indent=1, default=str).encode("utf-8"))
    transforms = job["pipeline"]["components"]["transforms"]
    environments = job["pipeline"]["components"]["environments"]
    return {
        "dataset": dataset,
        "dry_run": True,
        "job_name": result.job.proto.name,
        "transforms": len(transforms),
        "environments": len(environments),
    }


def run(
    dataset: str,
    input_path: str,
    output_dir: str,
    beam_args: list[str] | None = None,
    job_file: str | None = None,
) -> dict:
    """Run the pipeline for `dataset` and return the stats it wrote to DIR/stats.json.

    With --runner=DataflowRunner --dry_run=True the Dataflow job is built and not submitted: nothing
    is read or written (the input and output are usually gs://, which needs credentials), and the
    return value (and `job_file`, when given) describes the job instead.
    """
    spec = DATASETS[dataset]
    options = pipeline_options(list(beam_args or []), dataset)
    dry_run = options.view_as(TestOptions).dry_run
    if job_file and not dry_run:
        raise PipelineInputError("--job-file describes a job built with --runner=DataflowRunner --dry_run=True")
    if dry_run:
        checked_input = input_path
    else:
        checked_input = spec.check_input(input_path) or input_path
        prepare_output(output_dir)
    tft_temp = tft_temp_dir(options, output_dir)
    if dry_run:
        # TF Transform makes its temp folder and writes placeholder vocabulary files into it while the
        # pipeline is *built* (tf.io.gfile, not Beam), which a gs:// temp location cannot take offline.
        # A dry run therefore builds against a local scratch folder; a real run uses tft_temp.
        scratch = tempfile.TemporaryDirectory(prefix="tfgate-dry-run-tft-")  # removed even if the build fails
        cloud_tft_temp, tft_temp = tft_temp, scratch.name
    started = time.monotonic()

    pipeline = beam.Pipeline(options=options)
    with tft_beam.Context(temp_dir=tft_temp):
        batches, rejected, adapter_config, raw_metadata = spec.sources(pipeline, checked_input)
        (train_data, _), transform_fn = (
            batches["train"],
            adapter_config,
        ) | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(
            spec.preprocessing_fn, output_record_batches=True
        )
        transformed = {"train": train_data}
        # the raw training features' statistics, beside stats.json: what `tfgate drift` compares with
        _ = batches["train"] | "TrainStatistics" >> statistics_beam.WriteTrainStatistics(dataset, output_dir)
        for split in ("eval", "test"):
            transformed[split], _ = (
                ((batches[split], adapter_config), transform_fn)
                | f"Transform{split}" >> tft_beam.TransformDataset(output_record_batches=True)
            )
        _, transformed_metadata = transform_fn
        encoder_schema = transformed_metadata.schema
        for split, data in transformed.items():
            encode = encode_and_count(split)
            _ = (
                data
                | f"Encode{split}"
                >> beam.FlatMapTuple(
                    lambda batch, passthrough, fn=encode: fn(
                        batch, passthrough, RecordBatchToExamplesEncoder(encoder_schema)
                    )
                )
                | f"Write{split}"
                >> beam.io.WriteToTFRecord(
                    FileSystems.join(output_dir, "tfrecords", split),
                    file_name_suffix=".tfrecord.gz",
                    compression_type=beam.io.filesystem.CompressionTypes.GZIP,
                )
            )
        _ = rejected | "WriteRejected" >> beam.io.WriteToText(
            FileSystems.join(output_dir, "rejected", "rejected"), file_name_suffix=".jsonl"
        )
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(output_dir)
        _ = raw_metadata | "WriteRawMetadata" >> tft_beam.WriteMetadata(
            FileSystems.join(output_dir, "metadata"), pipeline
        )
        result = pipeline.run()
        if dry_run:
            scratch.cleanup()
            return dataflow_job(dataset, pipeline, result, options, cloud_tft_temp, tft_temp, job_file)
        result.wait_until_finish()
    delete_tree(tft_temp)

    counters = {
        c.key.metric.name: c.committed or c.attempted
        for c in result.metrics().query(beam.metrics.MetricsFilter().with_namespace(COUNTER_NAMESPACE))[
            "counters"
        ]
    }
    stats = {
        "dataset": dataset,
        "input": input_path,
        "runner": options.view_as(StandardOptions).runner,
        "input_rows": int(counters.get("input_rows", 0)),
        "splits": {split: int(counters.get(f"{split}_rows", 0)) for split in SPLITS},
        "rejected": int(counters.get("rejected", 0)),
        "seconds": round(time.monotonic() - started, 3),
    }
    accounted = sum(stats["splits"].values()) + stats["rejected"]
    stats["rows_accounted"] = accounted == stats["input_rows"]
    with FileSystems.create(FileSystems.join(output_dir, "stats.json")) as handle:
        handle.write((json.dumps(stats, indent=2) + "\n").encode("utf-8"))
    if not stats["rows_accounted"]:
        raise RuntimeError(
            f"row accounting failed: {stats['input_rows']} input rows but {accounted} written or rejected"
        )
    logging.info("pipeline %s done: %s", dataset, stats)
    return stats
