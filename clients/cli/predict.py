"""`tfgate predict housing`, `tfgate classify fashion`, `tfgate models`: the gateway from the shell.

Results go to stdout (or `--output`) as a table, JSON or CSV; progress, per-row errors and the
summary go to stderr. Exit codes: 0 all predicted, 1 some rows/images (or the call) failed,
2 usage errors (one line on stderr).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import struct
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from tfgate.clients._core import HOUSING_COLUMNS, HOUSING_OPTIONAL
from tfgate.clients.errors import TfgateError
from tfgate.clients.gateway_client import GatewayClient

from .console import console, errors, fail

HOUSING_REQUIRED = [c for c in HOUSING_COLUMNS if c not in HOUSING_OPTIONAL]
PROGRESS_MIN_ITEMS = 1000
TABLE_MAX_ROWS = 20


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


# ----- one-line usage errors -----------------------------------------------------------------------

# typer carries its own click; its UsageError is the base of the public typer.BadParameter.
UsageError: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _usage_line(err: Any) -> None:
    where = err.ctx.command_path if err.ctx else "tfgate"
    fail(f"{where}: {err.format_message()} (see --help)")


class OneLineCommand(TyperCommand):
    """Usage errors (unknown option, bad value) as one line on stderr, exit code 2."""

    def make_context(self, info_name, args, parent=None, **extra):  # type: ignore[override]
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as err:
            _usage_line(err)


class OneLineGroup(TyperGroup):
    def resolve_command(self, ctx, args):  # type: ignore[override]
        try:
            return super().resolve_command(ctx, args)
        except UsageError as err:
            _usage_line(err)


# ----- common options ------------------------------------------------------------------------------

Target = Annotated[str, typer.Option("--target", envvar="TFGATE_TARGET",
                                     help="Gateway address host:port.")]
TlsCa = Annotated[Path | None, typer.Option("--tls-ca", envvar="TFGATE_TLS_CA",
                                            help="CA certificate (PEM): use TLS and trust this CA.")]
TlsCert = Annotated[Path | None, typer.Option("--tls-cert", envvar="TFGATE_TLS_CERT",
                                              help="Client certificate (PEM) for mutual TLS.")]
TlsKey = Annotated[Path | None, typer.Option("--tls-key", envvar="TFGATE_TLS_KEY",
                                             help="Client key (PEM) for mutual TLS.")]
Token = Annotated[str | None, typer.Option("--token", envvar="TFGATE_TOKEN", show_default=False,
                                           help="Bearer token.")]
Timeout = Annotated[float, typer.Option("--timeout", envvar="TFGATE_TIMEOUT", min=0.001,
                                        help="Deadline of each request in seconds.")]
Fmt = Annotated[Format, typer.Option("--format", help="Output format.")]
ChunkSize = Annotated[int, typer.Option("--chunk-size", min=1, help="Rows or images per request.")]
Concurrency = Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight at once.")]


@dataclass
class Conn:
    target: str
    tls_ca: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    token: str | None
    timeout: float
    chunk_size: int = 512
    concurrency: int = 4

    def client(self) -> GatewayClient:
        for what, path in (("--tls-ca", self.tls_ca), ("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key)):
            if path is not None and not path.is_file():
                fail(f"{what} {path}: no such file")
        if bool(self.tls_cert) != bool(self.tls_key):
            fail("--tls-cert and --tls-key go together")
        return GatewayClient(self.target, ca_file=self.tls_ca, cert_file=self.tls_cert, key_file=self.tls_key,
                             token=self.token or None, timeout=self.timeout, chunk_size=self.chunk_size,
                             concurrency=self.concurrency)


# ----- output helpers ------------------------------------------------------------------------------

@dataclass
class RowError:
    where: int | str  # CSV line number, image path or IDX index
    message: str
    code: str = "INVALID_ARGUMENT"


@dataclass
class Summary:
    kind: str
    total: int
    started: float = field(default_factory=time.monotonic)
    errors: list[RowError] = field(default_factory=list)
    versions: set[int] = field(default_factory=set)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        return {self.kind: self.total, "predicted": self.total - len(self.errors), "errors": len(self.errors),
                "seconds": round(seconds, 3), f"{self.kind}_per_second": round(self.total / max(seconds, 1e-9), 1),
                "model_versions": sorted(self.versions), **self.extra}


def _report_errors(errs: list[RowError], label: str) -> None:
    """One line per error; identical errors of many rows (e.g. the gateway down) grouped in one line."""
    groups: dict[str, list[int | str]] = {}
    for e in errs:
        groups.setdefault(f"{e.code}: {e.message}" if e.code != "INVALID_ARGUMENT" else e.message, []).append(e.where)
    shown = 0
    for message, wheres in groups.items():
        if shown == 50:
            errors.print(f"… {len(groups) - shown} more distinct errors", highlight=False)
            break
        places = ", ".join(str(w) for w in wheres[:5]) + (f", … ({len(wheres)} in all)" if len(wheres) > 5 else "")
        plural = "s" if len(wheres) > 1 else ""
        errors.print(f"[red]{label}{plural} {places}:[/] {message}", highlight=False, soft_wrap=True, markup=True)
        shown += 1


def _print_summary(s: Summary) -> None:
    d = s.as_dict()
    versions = ", ".join(str(v) for v in d["model_versions"]) or "-"
    extra = "".join(f"; {k} {v}" for k, v in s.extra.items())
    errors.print(f"summary: {d[s.kind]:,} {s.kind}, {d['predicted']:,} predicted, {d['errors']:,} errors in "
                 f"{d['seconds']:.2f} s ({d[f'{s.kind}_per_second']:,.0f} {s.kind}/s); model version {versions}"
                 f"{extra}", highlight=False, soft_wrap=True)


@contextmanager
def _progress(total: int, what: str) -> Iterator[Callable[[int], None] | None]:
    if total < PROGRESS_MIN_ITEMS:
        yield None
        return
    bar = Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=errors, transient=False)
    task = bar.add_task(what, total=total)
    with bar:
        yield lambda n: bar.advance(task, n)


def _emit(fmt: Format, output: Path | None, columns: list[str], rows: list[dict[str, Any]],
          document: dict[str, Any], title: str) -> None:
    """Rows as a table (stdout only, first rows), CSV or a JSON document; to --output when given."""
    if output is not None and fmt is Format.table:
        fmt = Format.csv  # a file gets every row, in a format a program can read back
    if fmt is Format.json:
        text = json.dumps(document, indent=None if output else 2) + "\n"
    elif fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buf.getvalue()
    else:
        table = Table(title=title, title_justify="left")
        for c in columns:
            table.add_column(c, justify="right" if rows and isinstance(rows[0].get(c), int | float) else "left")
        for r in rows[:TABLE_MAX_ROWS]:
            table.add_row(*(_cell(r.get(c)) for c in columns))
        console.print(table)
        if len(rows) > TABLE_MAX_ROWS:
            console.print(f"… {len(rows) - TABLE_MAX_ROWS:,} more rows (--format csv or --output FILE for all)",
                          highlight=False)
        return
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        output.write_text(text)
    except OSError as exc:
        fail(f"--output {output}: {exc.strerror}")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 10 else f"{v:,.0f}"
    return "" if v is None else str(v)


def _call_error(err: TfgateError) -> None:
    errors.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


# ----- tfgate predict housing ----------------------------------------------------------------------

def read_housing_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]], list[RowError]]:
    """Header and rows (with their 1-based line numbers); rows with the wrong field count or invalid
    UTF-8 become errors. A missing file or required column is a usage error."""
    try:
        fh = open(path, newline="", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except OSError as exc:
        fail(f"--csv {path}: {exc.strerror}")
    rows: list[tuple[int, dict[str, str]]] = []
    bad: list[RowError] = []
    with fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            fail(f"--csv {path}: empty file, expected a header line")
        except csv.Error as exc:
            fail(f"--csv {path}: line 1: {exc}")
        missing = [c for c in HOUSING_REQUIRED if c not in header]
        if missing:
            seen = ", ".join(header)
            seen = f" (header: {seen[:200]})" if seen.isprintable() else " (the first line is not a CSV header)"
            fail(f"--csv {path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}{seen}")
        start = reader.line_num + 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                bad.append(RowError(reader.line_num, f"unreadable CSV: {exc}"))
                continue
            line, start = start, reader.line_num + 1
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                bad.append(RowError(line, f"expected {len(header)} fields, got {len(fields)}"))
                continue
            if any("\udc80" <= ch <= "\udcff" for f in fields for ch in f):
                bad.append(RowError(line, "not valid UTF-8"))
                continue
            rows.append((line, dict(zip(header, fields, strict=True))))
    return header, rows, bad


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def predict_housing_command(
    csv_path: Annotated[Path, typer.Option("--csv", help="CSV with a header and the 9 raw housing columns "
                                           "(total_bedrooms may be empty; other columns are kept or ignored).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the predictions to this file "
                                                "(CSV, or JSON with --format json).")] = None,
    target: Target = "127.0.0.1:9000",
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    token: Token = None,
    timeout: Timeout = 30.0,
    fmt: Fmt = Format.table,
    chunk_size: ChunkSize = 512,
    concurrency: Concurrency = 4,
) -> None:
    """Predict the median house value of every row of a CSV file."""
    conn = Conn(target, tls_ca, tls_cert, tls_key, token, timeout, chunk_size, concurrency)
    header, rows, bad = read_housing_csv(csv_path)
    summary = Summary("rows", len(rows) + len(bad), errors=list(bad))
    results: list[dict[str, Any]] = []
    if rows:
        with conn.client() as client, _progress(len(rows), "predicting") as advance:
            preds = client.predict_housing([r for _, r in rows], errors="collect", progress=advance)
        for i, (line, row) in enumerate(rows):
            if i in preds.errors:
                err = preds.errors[i]
                # "records[17].x: …" names the position sent; the line number is what the user knows.
                message = err.message.replace(f"records[{i}].", "")
                summary.errors.append(RowError(line, message, err.code.name))
                continue
            out: dict[str, Any] = {"line": line, "predicted_median_house_value": round(float(preds.values[i]), 2),
                                   "model_version": int(preds.versions[i])}
            actual = _float_or_none(row.get("median_house_value"))
            if "median_house_value" in header:
                out["median_house_value"] = actual
            results.append(out)
        summary.versions.update(int(v) for v in set(preds.versions.tolist()) if v)
    summary.errors.sort(key=lambda e: e.where if isinstance(e.where, int) else 0)
    columns = ["line", "predicted_median_house_value", "model_version"]
    if "median_house_value" in header:
        columns.append("median_house_value")
        pairs = [(r["predicted_median_house_value"], r["median_house_value"]) for r in results
                 if r["median_house_value"] is not None]
        if pairs:
            p, a = np.array(pairs, dtype=np.float64).T
            summary.extra["mae"] = round(float(np.mean(np.abs(p - a))), 2)
    _finish(summary, "line", fmt, output, columns, results, "predictions", f"housing predictions ({csv_path})")


def _finish(summary: Summary, label: str, fmt: Format, output: Path | None, columns: list[str],
            results: list[dict[str, Any]], key: str, title: str) -> None:
    document = {key: results,
                "errors": [{label: e.where, "code": e.code, "error": e.message} for e in summary.errors],
                "summary": summary.as_dict()}
    _emit(fmt, output, columns, results, document, title)
    _report_errors(summary.errors, label)
    _print_summary(summary)
    if summary.errors:
        raise typer.Exit(1)


# ----- tfgate classify fashion ---------------------------------------------------------------------

def read_idx(path: Path, want_dims: int, limit: int | None) -> np.ndarray:
    """An IDX file (gzip or plain) of uint8: images [N, 28, 28] (dims 3) or labels [N] (dims 1)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        fail(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})")
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] != want_dims:
        fail(f"{path}: not an IDX file of uint8 with {want_dims} dimension{'s' if want_dims > 1 else ''}")
    dims = struct.unpack(f">{want_dims}I", raw[4:4 + 4 * want_dims])
    if want_dims == 3 and dims[1:] != (28, 28):
        fail(f"{path}: images are {dims[1]}x{dims[2]}, expected 28x28")
    count = dims[0] if limit is None else min(dims[0], limit)
    per = int(np.prod(dims[1:], dtype=np.int64)) if want_dims > 1 else 1
    body = raw[4 + 4 * want_dims:]
    if len(body) < count * per:
        fail(f"{path}: truncated: header says {dims[0]} items, data holds {len(body) // per}")
    return np.frombuffer(body, dtype=np.uint8, count=count * per).reshape((count, *dims[1:]))


def classify_fashion_command(
    images: Annotated[list[Path] | None, typer.Argument(help="PNG or JPEG files (any size; the gateway "
                                                         "makes them 28x28 grayscale).", show_default=False)] = None,
    idx: Annotated[Path | None, typer.Option("--idx", help="Fashion-MNIST IDX images file (.gz or plain) "
                                             "instead of image files.")] = None,
    labels: Annotated[Path | None, typer.Option("--labels", help="IDX labels file matching --idx: adds the "
                                                "true class and the accuracy.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N images of --idx.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=10, help="Classes per image.")] = 3,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the results to this file "
                                                "(CSV, or JSON with --format json).")] = None,
    target: Target = "127.0.0.1:9000",
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    token: Token = None,
    timeout: Timeout = 30.0,
    fmt: Fmt = Format.table,
    chunk_size: ChunkSize = 256,
    concurrency: Concurrency = 4,
) -> None:
    """Classify Fashion-MNIST style images (files, or an IDX file) with the top-k classes of each."""
    if bool(images) == bool(idx):
        fail("give image files or --idx FILE, not both" if images else "give image files or --idx FILE")
    if labels and not idx:
        fail("--labels needs --idx")
    conn = Conn(target, tls_ca, tls_cert, tls_key, token, timeout, chunk_size, concurrency)
    truth: np.ndarray | None = None
    if idx:
        pixels = read_idx(idx, 3, limit)
        inputs: Any = pixels
        names: list[int | str] = list(range(len(pixels)))
        if labels:
            truth = read_idx(labels, 1, limit)
            if len(truth) != len(pixels):
                fail(f"--labels {labels}: {len(truth)} labels for {len(pixels)} images")
    else:
        inputs = [str(p) for p in images or []]
        names = list(inputs)
    summary = Summary("images", len(names))
    with conn.client() as client, _progress(len(names), "classifying") as advance:
        result = client.classify_fashion(inputs, top_k=top_k, errors="collect", progress=advance)
    results: list[dict[str, Any]] = []
    correct = 0
    for i, name in enumerate(names):
        if i in result.errors:
            err = result.errors[i]
            summary.errors.append(RowError(name, err.message.replace(f"images[{i}]", "image"), err.code.name))
            continue
        row: dict[str, Any] = {"image": name, "model_version": int(result.versions[i])}
        for rank, score in enumerate(result.top[i], start=1):
            row[f"class_id_{rank}"] = score.class_id
            row[f"class_name_{rank}"] = score.class_name
            row[f"probability_{rank}"] = round(score.probability, 6)
        row["top"] = [{"class_id": s.class_id, "class_name": s.class_name, "probability": round(s.probability, 6)}
                      for s in result.top[i]]
        if truth is not None:
            row["label"] = int(truth[i])
            correct += int(result.top[i][0].class_id == truth[i])
        results.append(row)
        summary.versions.add(int(result.versions[i]))
    if truth is not None and results:
        summary.extra["accuracy"] = round(correct / len(results), 4)
    columns = ["image", "model_version"]
    for rank in range(1, top_k + 1):
        columns += [f"class_id_{rank}", f"class_name_{rank}", f"probability_{rank}"]
    if truth is not None:
        columns.append("label")
    if fmt is Format.json:
        for r in results:
            for rank in range(1, top_k + 1):
                for key in ("class_id", "class_name", "probability"):
                    r.pop(f"{key}_{rank}", None)
    elif fmt is Format.table and output is None:
        columns = ["image", "model_version", "class_name_1", "probability_1", "others"]
        if truth is not None:
            columns.append("label")
        for r in results:
            r["others"] = ", ".join(f"{s['class_name']} {s['probability']:.3f}" for s in r["top"][1:])
    _finish(summary, "image", fmt, output, columns, results, "classifications", "fashion classifications")


# ----- tfgate models -------------------------------------------------------------------------------

def models_command(
    target: Target = "127.0.0.1:9000",
    tls_ca: TlsCa = None,
    tls_cert: TlsCert = None,
    tls_key: TlsKey = None,
    token: Token = None,
    timeout: Timeout = 30.0,
    fmt: Fmt = Format.table,
) -> None:
    """List the models the gateway serves, their versions and states, labels and traffic split."""
    conn = Conn(target, tls_ca, tls_cert, tls_key, token, timeout)
    try:
        with conn.client() as client:
            models = client.list_models()
    except TfgateError as err:
        _call_error(err)
    if fmt is Format.json:
        doc = {"models": [{"name": m.name,
                           "versions": [{"version": v.version, "state": v.state, "error_message": v.error_message}
                                        for v in m.versions],
                           "labels": m.labels, "traffic_split": m.traffic_split, "targets": m.targets,
                           "healthy_targets": m.healthy_targets} for m in models]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    rows = []
    for m in models:
        common = {"name": m.name, "labels": " ".join(f"{k}={v}" for k, v in m.labels.items()),
                  "traffic_split": " ".join(f"{k}={v}" for k, v in m.traffic_split.items()),
                  "healthy_targets": f"{m.healthy_targets}/{len(m.targets)}"}
        if fmt is Format.csv:
            rows += [{**common, "version": v.version, "state": v.state} for v in m.versions] or [
                {**common, "version": "", "state": ""}]
        else:
            rows.append({**common, "versions": ", ".join(f"{v.version} {v.state}" for v in m.versions) or "-"})
    if fmt is Format.csv:
        _emit(fmt, None, ["name", "version", "state", "labels", "traffic_split", "healthy_targets"], rows, {}, "")
    else:
        _emit(fmt, None, ["name", "versions", "labels", "traffic_split", "healthy_targets"], rows, {},
              f"models at {target}")


def register(app: typer.Typer) -> None:
    """Add `predict`, `classify` and `models` to the `tfgate` command line."""
    predict = typer.Typer(cls=OneLineGroup, no_args_is_help=True, help="Predictions from a file, over gRPC.")
    predict.command("housing", cls=OneLineCommand)(predict_housing_command)
    classify = typer.Typer(cls=OneLineGroup, no_args_is_help=True, help="Image classification over gRPC.")
    classify.command("fashion", cls=OneLineCommand)(classify_fashion_command)
    app.add_typer(predict, name="predict")
    app.add_typer(classify, name="classify")
    app.command("models", cls=OneLineCommand)(models_command)
