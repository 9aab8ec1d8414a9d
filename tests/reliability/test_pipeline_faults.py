"""Pipeline faults (in-process `pipeline.beam_pipeline.run`, small inputs): every input row is either
transformed or rejected with its reason, and the counts add up."""

from __future__ import annotations

import glob
import gzip
import json
from pathlib import Path

import pytest

from tests.conftest import HOUSING_CSV

HEADER = HOUSING_CSV.read_bytes().split(b"\n", 1)[0] + b"\n"
GOOD = HOUSING_CSV.read_bytes().split(b"\n")[1:41]  # 40 valid rows
ROW = b"-122.2,37.8,41.0,880.0,129.0,322.0,126.0,8.3,452600.0,"


def _rejected(out: Path) -> list[dict]:
    rows = []
    for path in glob.glob(str(out / "rejected" / "*.jsonl")):
        rows += [json.loads(line) for line in Path(path).read_text().splitlines() if line]
    return rows


def _tfrecords(out: Path) -> int:
    import tensorflow as tf

    files = glob.glob(str(out / "tfrecords" / "*.tfrecord.gz"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    """One run over three files: faults mixed with good rows, a header-only file, a gzipped CSV."""
    from tfgate.pipeline import beam_pipeline

    src = tmp_path_factory.mktemp("faulty-input")
    mixed = [*GOOD[:20],
             ROW + b'"NEAR, BAY"',                        # quoted comma: a valid row
             ROW + b"caf\xe9",  # latin-1 byte: invalid UTF-8
             ROW.replace(b"452600.0", b"lots"),            # label column with text
             b"9" * (10 * 1024 * 1024),                    # a 10 MB single line
             ROW + b'"unterminated',  # quote never closed
             *GOOD[20:]]
    (src / "mixed.csv").write_bytes(HEADER + b"\n".join(mixed) + b"\n")
    (src / "header_only.csv").write_bytes(HEADER)
    (src / "good.csv.gz").write_bytes(gzip.compress(HEADER + b"\n".join(GOOD) + b"\n"))
    out = tmp_path_factory.mktemp("faulty-output")
    stats = beam_pipeline.run("housing", str(src / "*"), str(out))
    return stats, out, len(mixed) + len(GOOD)


def test_counts_add_up_and_every_row_is_accounted_for(faulty_run):
    stats, out, n_rows = faulty_run
    on_disk = json.loads((out / "stats.json").read_text())
    assert on_disk == stats
    assert stats["input_rows"] == n_rows
    assert stats["input_rows"] == sum(stats["splits"].values()) + stats["rejected"]
    assert stats["rows_accounted"] is True
    assert _tfrecords(out) == sum(stats["splits"].values())
    assert len(_rejected(out)) == stats["rejected"]


def test_each_fault_is_rejected_with_its_reason(faulty_run):
    stats, out, _ = faulty_run
    reasons = {(Path(r["source"]).name, r["line"]): r["reason"] for r in _rejected(out)}
    # Line numbers count the header as line 1: the faults are lines 23..26 of mixed.csv.
    assert reasons[("mixed.csv", 23)] == "invalid UTF-8"
    assert reasons[("mixed.csv", 24)].startswith("non-numeric value for median_house_value: 'lots'")
    assert reasons[("mixed.csv", 25)].startswith("unparseable CSV line: field larger than field limit")
    # The quoted comma row is valid and transformed; an unclosed quote is read leniently (as the csv
    # module does) and transformed too. Nothing else is rejected.
    assert ("mixed.csv", 22) not in reasons and ("mixed.csv", 26) not in reasons
    assert stats["rejected"] == 3
    assert sum(stats["splits"].values()) == 80 + 2
    big = next(r for r in _rejected(out) if r["line"] == 25)
    assert len(big["raw"]) <= 1000  # the rejected record keeps a bounded excerpt, not 10 MB


def _distinct_rows(n: int) -> bytes:
    """Valid rows that do not compress to nothing, so a corruption can sit past the header."""
    return b"".join(b"-122.%d,37.%d,41.0,%d.0,129.0,322.0,126.0,8.3,452600.0,NEAR BAY\n" % (i, i * 7 % 1000, 800 + i)
                    for i in range(n))


def test_corrupt_gzip_fails_loudly_without_claiming_success(tmp_path):
    from tfgate.pipeline import beam_pipeline

    data = gzip.compress(HEADER + _distinct_rows(20_000))
    cut = len(data) * 3 // 4  # past what the header check reads: Beam's reader hits it
    (tmp_path / "in.csv.gz").write_bytes(data[:cut] + b"\x00\xffgarbage" + data[cut + 8:])
    with pytest.raises(Exception) as info:
        beam_pipeline.run("housing", str(tmp_path / "in.csv.gz"), str(tmp_path / "out"))
    # A row it cannot read is neither transformed nor rejected: the run must not report success.
    assert not isinstance(info.value, beam_pipeline.PipelineInputError)
    assert not (tmp_path / "out" / "stats.json").exists()
    assert any(w in str(info.value).lower() for w in ("crc", "gzip", "compress", "invalid", "zlib")), info.value


def test_gzip_corrupt_at_the_start_is_refused_with_one_line(tmp_path):
    from tfgate.pipeline import beam_pipeline

    data = gzip.compress(HEADER + b"\n".join(GOOD) + b"\n")
    (tmp_path / "in.csv.gz").write_bytes(data[:12] + b"\x00\xffgarbage" + data[20:])
    with pytest.raises(beam_pipeline.PipelineInputError, match="cannot read a CSV header"):
        beam_pipeline.run("housing", str(tmp_path / "in.csv.gz"), str(tmp_path / "out"))


def test_zero_byte_file_is_refused_with_one_line(tmp_path):
    from tfgate.pipeline import beam_pipeline

    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(beam_pipeline.PipelineInputError, match="is not a housing CSV"):
        beam_pipeline.run("housing", str(tmp_path / "empty.csv"), str(tmp_path / "out"))


def test_gzip_that_is_not_gzip_is_refused_with_one_line(tmp_path):
    from tfgate.pipeline import beam_pipeline

    (tmp_path / "plain.csv.gz").write_bytes(HEADER + GOOD[0])
    with pytest.raises(beam_pipeline.PipelineInputError, match="cannot read a CSV header"):
        beam_pipeline.run("housing", str(tmp_path / "plain.csv.gz"), str(tmp_path / "out"))
