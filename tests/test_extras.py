"""One stack per extra that resolves: every extra of pyproject.toml accepts the versions constraints.txt
pins (checked offline), and pip's resolver accepts each extra under those constraints (a dry run that
reads wheel metadata and downloads no wheel, CUDA ones included; it needs the package index)."""

import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest
import tomllib
from conftest import REPO, pypi_reachable
from packaging.requirements import Requirement

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS = tuple(PYPROJECT["project"]["optional-dependencies"])


def pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()  # markers apart: the pin is the version
        if "==" in line:
            name, version = line.split("==", 1)
            out[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return out


@pytest.mark.parametrize("extra", ("core", *EXTRAS))
def test_the_pinned_versions_satisfy_every_extra(extra):
    requirements = (
        PYPROJECT["project"]["dependencies"]
        if extra == "core"
        else PYPROJECT["project"]["optional-dependencies"][extra]
    )
    pinned = pins()
    checked = 0
    for text in requirements:
        req = Requirement(text)
        version = pinned.get(re.sub(r"[-_.]+", "-", req.name).lower())
        if version is None:
            continue
        checked += 1
        assert req.specifier.contains(version, prereleases=True), f"{extra}: {text} excludes the pinned {version}"
    assert checked or extra == "gpu"  # unsloth itself is pinned in the extra, not in the CPU stack


def _index_serves_wheel_metadata(index: str) -> bool:
    request = urllib.request.Request(
        index.rstrip("/") + "/trl/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            files = json.load(response).get("files", [])
    except (OSError, ValueError):
        return False
    return any(f.get("core-metadata") or f.get("data-dist-info-metadata") for f in files)


@pytest.mark.slow
def test_pip_resolves_every_extra_with_the_constraints_downloading_no_wheel(tmp_path):
    if not pypi_reachable():
        pytest.skip("the package index cannot be reached")
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
    if not _index_serves_wheel_metadata(index):
        pytest.skip(
            f"{index} does not serve wheel metadata (PEP 658): a dry run would download every wheel, "
            "CUDA ones included, to read it"
        )

    # One resolution of all extras together (a subset of a resolvable set resolves too); on failure,
    # each extra alone names the one that does not.
    def dry_run(extras):
        report = tmp_path / f"report-{'-'.join(extras)}.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-v"]
        command += ["--report", str(report), "-c", "constraints.txt", f".[{','.join(extras)}]"]
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
        return proc, report

    proc, report = dry_run(EXTRAS)
    if proc.returncode != 0:
        failing = [extra for extra in EXTRAS if dry_run((extra,))[0].returncode != 0]
        pytest.fail(f"pip cannot resolve the extras {failing} with constraints.txt:\n{proc.stderr[-3000:]}")
    downloaded = re.findall(r"Downloading (\S+\.whl)\b(?!\.metadata)", proc.stdout + proc.stderr)
    assert not downloaded, f"a dry run downloaded wheels: {downloaded}"
    resolved = {
        i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]
    }
    pinned = pins()
    assert resolved["unsloth"] == "2026.10.9"
    for name in ("transformers", "datasets", "trl", "peft", "accelerate", "bitsandbytes"):
        assert resolved[name] == pinned[name], name
