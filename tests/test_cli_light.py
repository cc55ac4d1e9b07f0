"""`cra --help` and every command's --help stay fast: no training library is imported for them."""

import json
import subprocess
import sys

from cra.cli import COMMANDS

HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "unsloth", "gguf", "llama_cpp", "numpy", "pandas")

PROBE = r"""
import json, sys
from click.testing import CliRunner
from cra.cli import cli, COMMANDS
runner = CliRunner()
out = {}
for args in [["--help"]] + [[name, "--help"] for name in COMMANDS]:
    result = runner.invoke(cli, args)
    out[" ".join(args)] = result.exit_code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",")))
print(json.dumps({"exit_codes": out, "heavy": heavy}))
"""


def test_help_of_every_command_imports_nothing_heavy():
    proc = subprocess.run([sys.executable, "-c", PROBE, ",".join(HEAVY)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert len(report["exit_codes"]) == len(COMMANDS) + 1
    assert set(report["exit_codes"].values()) == {0}, report["exit_codes"]
