"""The Beam + TF Transform pipeline: validate, split, analyze on train, transform every split.

Output layout (DESIGN.md, "Pipeline output"):
    DIR/metadata/  DIR/transform_fn/  DIR/transformed_metadata/
    DIR/tfrecords/{train,eval,test}-*.tfrecord.gz  DIR/rejected/*.jsonl  DIR/stats.json
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import os
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
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions
from tfx_bsl.coders.example_coder import RecordBatchToExamplesEncoder
from tfx_bsl.public import tfxio

from pipeline import fashion, housing

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
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise PipelineInputError(f"no input file matches {pattern}")
    expected = ",".join(housing.CSV_COLUMNS)
    for path in files:
        if tf.io.gfile.isdir(path):
            raise PipelineInputError(f"{path} is a directory, expected a CSV file")
        try:  # Beam reads *.gz decompressed (by extension), so the header check does too
            with tf.io.gfile.GFile(path, "rb") as raw_handle:
                handle = gzip.GzipFile(fileobj=raw_handle) if path.endswith(".gz") else raw_handle
                head = handle.read(4096)
            first = head.split(b"\n", 1)[0].strip().decode("utf-8", "replace")
            columns = [c.strip() for c in housing.parse_row(first)] if first else []
        except (OSError, EOFError, zlib.error, csv.Error) as err:
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


def housing_sources(p: beam.Pipeline, files: list[str]):
    """→ ({split: PCollection[RecordBatch]}, rejected JSON lines, TensorAdapterConfig, raw metadata)."""
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
    pairs = [
        (source, os.path.join(directory, images), os.path.join(directory, labels))
        for source, (images, labels) in fashion.SOURCE_FILES.items()
    ]
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


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam options as given; the local default is the offline FnApiRunner (no Prism download)."""
    options = PipelineOptions(beam_args)
    if not options.view_as(StandardOptions).runner:
        options = PipelineOptions(["--runner=FnApiRunner", *beam_args])
    return options


def prepare_output(output_dir: str) -> None:
    try:
        tf.io.gfile.makedirs(output_dir)
        probe = os.path.join(output_dir, f".write-test-{uuid.uuid4().hex}")
        with tf.io.gfile.GFile(probe, "w") as handle:
            handle.write("ok")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as err:
        raise PipelineInputError(f"output directory {output_dir} is not writable: {err}") from err
    for sub in OUTPUT_SUBDIRS:  # a rerun replaces the previous output instead of mixing shards
        path = os.path.join(output_dir, sub)
        if tf.io.gfile.exists(path):
            tf.io.gfile.rmtree(path)


def encode_and_count(split: str):
    written = Metrics.counter(COUNTER_NAMESPACE, f"{split}_rows")

    def encode(batch, _unused_passthrough, encoder):
        for example in encoder.encode(batch):
            written.inc()
            yield example

    return encode


def run(dataset: str, input_path: str, output_dir: str, beam_args: list[str] | None = None) -> dict:
    """Run the pipeline for `dataset` and return the stats it wrote to DIR/stats.json."""
    spec = DATASETS[dataset]
    checked_input = spec.check_input(input_path) or input_path
    prepare_output(output_dir)
    options = pipeline_options(list(beam_args or []))
    temp_location = options.view_as(GoogleCloudOptions).temp_location
    tft_temp = os.path.join(temp_location or output_dir, f"tft-tmp-{uuid.uuid4().hex[:8]}")
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
                    os.path.join(output_dir, "tfrecords", split),
                    file_name_suffix=".tfrecord.gz",
                    compression_type=beam.io.filesystem.CompressionTypes.GZIP,
                )
            )
        _ = rejected | "WriteRejected" >> beam.io.WriteToText(
            os.path.join(output_dir, "rejected", "rejected"), file_name_suffix=".jsonl"
        )
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(output_dir)
        _ = raw_metadata | "WriteRawMetadata" >> tft_beam.WriteMetadata(
            os.path.join(output_dir, "metadata"), pipeline
        )
        result = pipeline.run()
        result.wait_until_finish()
    if tf.io.gfile.exists(tft_temp):
        tf.io.gfile.rmtree(tft_temp)

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
    with tf.io.gfile.GFile(os.path.join(output_dir, "stats.json"), "w") as handle:
        handle.write(json.dumps(stats, indent=2) + "\n")
    if not stats["rows_accounted"]:
        raise RuntimeError(
            f"row accounting failed: {stats['input_rows']} input rows but {accounted} written or rejected"
        )
    logging.info("pipeline %s done: %s", dataset, stats)
    return stats
