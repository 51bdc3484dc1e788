"""The README's examples run as written, in the order they appear, from a copy of the
project's root: a reader who types them meets no missing file and no error."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A block preceded by `<!-- not run by tests/test_readme.py: why -->` is left out.
BLOCK = re.compile(
    r"(?P<note><!-- not run by tests/test_readme\.py[^>]*-->\n)?```sh\n(?P<code>.*?)```", re.S
)
# A synopsis (`infer-cli predict [-m PATH] ...`) shows the options; it is not an example.
SYNOPSIS = re.compile(r"^infer-cli \w+ (\[|-i FILE)")


def _examples() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return [
        match["code"]
        for match in BLOCK.finditer(readme)
        if not match["note"] and not SYNOPSIS.match(match["code"])
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_readme_has_examples_for_every_command() -> None:
    text = "\n".join(_examples())
    for command in ("train", "predict", "serve", "evaluate"):
        assert f"infer-cli {command} " in text, command


@pytest.mark.skipif(shutil.which("curl") is None, reason="the serve example uses curl")
def test_the_readme_examples_run_in_order(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    # The examples name the server's usual port; the test's server takes a free one.
    port = str(_free_port())
    script = "\n".join(code.replace("5000", port) for code in _examples())
    env = {key: value for key, value in os.environ.items() if not key.startswith("INFER_CLI")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # Stop at the first failing command, and stop the server whatever happens: the script
    # runs in a process group of its own, ended as a whole if it does not finish.
    runner = subprocess.Popen(
        ["bash", "-c", "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
         + script],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = runner.communicate(timeout=900)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(runner.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(runner.args, runner.returncode, out, err)
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr[-4000:]
    stdout = result.stdout.decode()
    # The outputs the README shows, as it shows them.
    assert stdout.count('{"predictions":["setosa"]}') == 2, stdout[-2000:]
    assert "setosa" in stdout and "infer-cli: error" not in stderr
    summary = json.loads((tmp_path / "run.json").read_text())
    assert summary["status"] in ("ok", "drift") and summary["rows_read"] > 0
    assert (tmp_path / "model" / "model.json").exists() and (tmp_path / "scored.parquet").exists()
