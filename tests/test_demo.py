"""The main job end to end: `tfgate demo` as a real subprocess with small settings, then its artefacts,
its report in headless Chromium, and that it left no server running."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TFGATE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    workdir = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [*TFGATE, "demo", "--workdir", str(workdir), "--epochs", "1", "--fashion-model", "mlp"],
        capture_output=True, text=True, timeout=1500,
        env={**os.environ, "COLUMNS": "200"},
    )
    return workdir, result


def test_demo_succeeds_and_writes_every_artefact(demo_run):
    workdir, result = demo_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for stage in ("1/6 pipeline", "2/6 training", "3/6 model server", "4/6 predictions", "5/6 served", "6/6 report"):
        assert stage in result.stdout
    for dataset in ("housing", "fashion"):
        stats = json.loads((workdir / dataset / "stats.json").read_text())
        assert stats["rows_accounted"] and sum(stats["splits"].values()) + stats["rejected"] == stats["input_rows"]
        version = workdir / "models" / dataset / "1"
        assert (version / "saved_model.pb").exists()
        for name in ("metrics.json", "tf_serving_warmup_requests", "learning_curves.png"):
            assert (version / "assets.extra" / name).exists(), name
    report = workdir / "report"
    page = (report / "index.html").read_text()
    for src in re.findall(r'<img src="([^"]+)"', page):
        assert (report / src).stat().st_size > 1000, src  # every image the page shows exists
    for heading in ("Data", "Models", "Serving", "Reproduce"):
        assert f"<h2>{heading}</h2>" in page
    assert "latency.png" in page and "fashion-samples.png" in page and "confusion" in page


def test_served_metrics_equal_the_offline_evaluation(demo_run):
    workdir, _ = demo_run
    summary = json.loads((workdir / "demo.json").read_text())
    housing, fashion = summary["models"]["housing"], summary["models"]["fashion"]
    assert housing["served_metrics"]["examples"] == housing["metrics"]["examples"] == 2008
    assert housing["served_metrics"]["rmse"] == pytest.approx(housing["metrics"]["rmse"], rel=1e-4)
    assert fashion["served_metrics"]["examples"] == fashion["metrics"]["examples"] == 4443
    assert fashion["served_metrics"]["accuracy"] == fashion["metrics"]["accuracy"]
    assert summary["versions_answered"] == {"housing": {"1": 2008}, "fashion": {"1": 4443}}


def test_report_shows_drift_of_the_demos_own_traffic_and_none_is_flagged(demo_run):
    workdir, _ = demo_run
    drift = json.loads((workdir / "demo.json").read_text())["drift"]
    # every request the demo sent through the gateway was logged: the test split, then the latency calls
    assert drift == {"housing": {"rows": 2008 + 5 + 300, "drifted": []}, "fashion": {"rows": 4443, "drifted": []}}
    page = (workdir / "report" / "index.html").read_text()
    assert "<h2>Drift of served traffic</h2>" in page and "drifted: none" in page


def test_demo_leaves_no_server_running(demo_run):
    _, result = demo_run
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", result.stdout)]
    assert len(pids) == 2  # model server and gateway
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package (.ci/run installs it)")
def test_report_renders_in_headless_chromium(demo_run):
    workdir, _ = demo_run
    page = workdir / "report" / "index.html"
    screenshot = workdir / "report" / "screenshot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={workdir / 'chromium-profile'}", "--enable-logging=stderr", "--v=0"]
    shot = subprocess.run([CHROMIUM, *flags, "--window-size=1200,2400", f"--screenshot={screenshot}",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 20_000  # a rendered page, not a blank one
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert "tfgate demo report" in dom.stdout
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    failed_loads = [line for line in dom.stderr.splitlines() if "ERR_FILE_NOT_FOUND" in line]
    assert not console_errors and not failed_loads, "\n".join(console_errors + failed_loads)
