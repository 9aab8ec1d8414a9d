"""Every shell command in the README is either executed here or tagged with why it cannot be.

The `runnable` blocks run in order, as written, in one bash session in a scratch copy of the
repository's layout; background servers they start are stopped by PID when the script ends.
Every link in the README resolves: `(#anchor)` to a heading, a relative path to a file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.conftest import REPO

TAGS = {"runnable", "walkthrough", "ci", "placeholder", "benchmark", "network", "cloud", "cluster"}
FENCE = re.compile(r"^```(\w+)(?: (\w[\w-]*))?\n(.*?)^```\n", re.S | re.M)


def blocks(language: str) -> list[tuple[str | None, str]]:
    text = (REPO / "README.md").read_text()
    return [(tag, body) for lang, tag, body in FENCE.findall(text) if lang == language]


def test_every_shell_block_is_tagged():
    found = blocks("sh")
    assert found, "no shell blocks found: the README or this parser changed"
    untagged = [body.splitlines()[0] for tag, body in found if tag not in TAGS]
    assert not untagged, f"shell blocks without a known tag: {untagged}"


def test_walkthrough_blocks_repeat_runnable_commands():
    runnable = "\n".join(body for tag, body in blocks("sh") if tag == "runnable")
    for tag, body in blocks("sh"):
        if tag == "walkthrough":
            for line in body.splitlines():
                assert line.strip() in runnable, f"not in the walkthrough: {line}"


def test_runnable_blocks_run_as_written(tmp_path):
    script = "\n".join(body for tag, body in blocks("sh") if tag == "runnable")
    assert "tfgate pipeline" in script and "tfgate predict" in script
    (tmp_path / "data").symlink_to(REPO / "data")
    (tmp_path / ".venv").symlink_to(REPO / ".venv")  # .venv/oip: Triton's client for the v2 example
    (tmp_path / "work").mkdir()
    wrapped = (
        "set -euo pipefail\n"
        # servers the blocks start in the background are stopped by their PIDs whatever happens
        "trap 'for pid in $(jobs -p); do kill $pid 2>/dev/null || true; done; wait' EXIT\n" + script
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    result = subprocess.run(["bash", "-c", wrapped], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=1500)
    logs = "".join(p.read_text(errors="replace")[-2000:] for p in (tmp_path / "work").glob("*.log"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + logs
    predictions = (tmp_path / "work" / "housing-predictions.csv").read_text().splitlines()
    assert len(predictions) == 20_641  # header + every row of the bundled CSV
    assert len((tmp_path / "work" / "fashion-top3.csv").read_text().splitlines()) == 4_444
    assert "from housing version 1" in result.stdout
    assert '"predictions"' in result.stdout  # the REST answer
    assert '"model_name":"housing","model_version":"1"' in result.stdout  # the v2 REST answer
    assert "[b'" in result.stdout  # tritonclient's classes, through the gateway


# ----- links ------------------------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (fences may be indented, e.g. inside list items)."""
    out, fence = [], None
    for line in text.splitlines():
        marker = line.lstrip()[:3]
        if fence is None and marker in ("```", "~~~"):
            fence = marker
        elif fence is not None and marker == fence:
            fence = None
        elif fence is None:
            out.append(line)
    return out


def github_anchor(heading: str) -> str:
    """GitHub's rule: link markup reduced to its text, lowercase, punctuation dropped except
    hyphens and spaces (letters, digits and underscores stay), spaces become hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def heading_anchors(text: str) -> set[str]:
    """Anchors of every heading; a repeated one gets -1, -2, ... in order, as on GitHub."""
    seen: Counter = Counter()
    out = set()
    for line in prose_lines(text):
        m = HEADING.match(line)
        if m:
            base = github_anchor(m.group(2))
            out.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
            seen[base] += 1
    return out


def broken_links(text: str, root: Path) -> list[str]:
    """Links to a missing heading anchor or a missing file (relative to `root`)."""
    anchors = heading_anchors(text)
    bad = []
    for line in prose_lines(text):
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line)):
            if target.startswith("#"):
                if target[1:] not in anchors:
                    bad.append(target)
            elif not SCHEME.match(target):
                path = target.split("#", 1)[0].split("?", 1)[0]
                if path and not (root / path).exists():
                    bad.append(target)
    return bad


def test_anchor_rule_matches_github():
    text = ("# tfgate\n## Model server: tfgate model-server\n### Metrics (`metrics_listen`)\n"
            "### Benchmark\n```sh\n# Benchmark\n```\n### Benchmark\n## Walkthrough: raw files to a "
            "prediction ##\n## [Clients](x.md) & more\n")
    assert heading_anchors(text) == {
        "tfgate", "model-server-tfgate-model-server", "metrics-metrics_listen", "benchmark",
        "benchmark-1", "walkthrough-raw-files-to-a-prediction", "clients--more"}


def test_broken_links_are_found(tmp_path):
    (tmp_path / "here.txt").write_text("x")
    text = ("# Yes\n## Yes\n[a](#yes) [b](#yes-1) [c](#yes-2) [d](here.txt) [e](gone.png#top)\n"
            "![f](here.txt) [g](https://example.invalid/x) `[h](#in-code)`\n```\n[i](#in-fence)\n```\n")
    assert broken_links(text, tmp_path) == ["#yes-2", "gone.png#top"]


def test_every_readme_link_resolves():
    text = (REPO / "README.md").read_text()
    assert "](#" in text, "no anchor links found: the README or this parser changed"
    bad = broken_links(text, REPO)
    assert not bad, f"README links to missing headings or files: {bad}"


# ----- the gateway's config reference -----------------------------------------------------------
def _gateway_reference() -> dict:
    import yaml

    text = (REPO / "README.md").read_text()
    section = text.split("### Config reference (YAML)", 1)[1]
    body = re.search(r"^```yaml\n(.*?)^```", section, re.S | re.M).group(1)
    return yaml.safe_load(body)


def test_gateway_config_reference_lists_every_field_with_its_default():
    import dataclasses

    from tfgate.serving.gateway import config

    ref = _gateway_reference()

    def compare(cls, node: dict, path: str, defaults: bool) -> None:
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(node) == names, f"{path or 'top level'}: README {sorted(node)} vs config.py {sorted(names)}"
        default = cls()
        for f in dataclasses.fields(cls):
            value, sub = node[f.name], getattr(default, f.name)
            if dataclasses.is_dataclass(sub):
                compare(type(sub), value, f"{path}{f.name}.", defaults)
            elif defaults and f.name not in ("listen", "metrics_listen", "models"):
                assert value == sub, f"{path}{f.name}: README says {value!r}, default is {sub!r}"

    compare(config.GatewayConfig, {**ref, "models": {}}, "", defaults=True)
    (model,) = ref["models"].values()
    compare(config.ModelConfig, model, "models.housing.", defaults=False)
    # Values in the reference are valid ones (class_names is elided there).
    model["class_names"] = ["a"]
    cfg = config.validate(config._convert(config.GatewayConfig, ref, ""))
    assert cfg.models["housing"].split == {"stable": 90, "canary": 10}


def test_gateway_env_override_examples_apply(tmp_path):
    from tfgate.serving.gateway import config

    path = tmp_path / "gateway.yaml"
    path.write_text("listen: 127.0.0.1:9000\nmodels: {housing: {targets: ['127.0.0.1:8500'], "
                    "labels: {stable: 1, canary: 2}}}\n")
    text = (REPO / "README.md").read_text().split("## Gateway: tfgate gateway", 1)[1]
    examples = dict(re.findall(r"`(TFGATE_GATEWAY__\w+)='?([^`']+)'?`", text))
    assert len(examples) >= 4, examples
    cfg = config.load(path, environ=examples)
    assert cfg.listen == "0.0.0.0:9000"
    assert cfg.backend.retry.max_attempts == 2
    assert cfg.models["housing"].deadline_ms == 500
    assert cfg.models["housing"].targets == ["10.0.0.1:8500", "10.0.0.2:8500"]
    assert cfg.models["housing"].split == {"stable": 90, "canary": 10}
