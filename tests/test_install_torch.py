"""The torch-build decision of scripts/install_torch.sh (run with --dry-run: nothing installs)."""

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install_torch.sh"
no_real_gpu = pytest.mark.skipif(shutil.which("nvidia-smi") is not None,
                                 reason="this machine has nvidia-smi; cannot pretend it has none")


def choose(tmp_path, nvidia_smi=False, **env):
    """Run the script's dry run; return (choice, printed pip command line)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    if nvidia_smi:
        tool = fake_bin / "nvidia-smi"
        tool.write_text("#!/bin/sh\nexit 0\n")
        tool.chmod(0o755)
    full_env = {k: v for k, v in os.environ.items() if k != "TORCH_PIN"}
    full_env.update(PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
                    TORCH_PROBE_TIMEOUT="2", **env)
    out = subprocess.run(["bash", str(SCRIPT), "--dry-run", sys.executable], env=full_env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    return lines["torch-choice"], out


@pytest.fixture
def index_url():
    """A local HTTP server standing in for PyTorch's CPU wheel index."""
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/whl/cpu"
    server.shutdown()


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/whl/cpu"  # nothing listens there any more


def test_pin_overrides_everything(tmp_path, index_url):
    choice, out = choose(tmp_path, RECATTN_OS="Linux", TORCH_CPU_INDEX=index_url,
                         TORCH_PIN="torch==2.13.0 --no-deps")
    assert choice == "pin"
    assert out.splitlines()[1].endswith("pip install torch==2.13.0 --no-deps")


@no_real_gpu
def test_linux_without_nvidia_gets_the_cpu_index(tmp_path, index_url):
    choice, out = choose(tmp_path, RECATTN_OS="Linux", TORCH_CPU_INDEX=index_url)
    assert choice == "cpu"
    assert f"pip install torch>=2.4 --index-url {index_url}" in out
    assert "0.2 GB" in out


@no_real_gpu
def test_unreachable_cpu_index_falls_back_to_default(tmp_path):
    url = closed_port_url()
    choice, out = choose(tmp_path, RECATTN_OS="Linux", TORCH_CPU_INDEX=url)
    assert choice == "default"
    assert "did not answer" in out and "--index-url" not in out


def test_nvidia_smi_gets_the_default_cuda_build(tmp_path, index_url):
    choice, out = choose(tmp_path, nvidia_smi=True, RECATTN_OS="Linux", TORCH_CPU_INDEX=index_url)
    assert choice == "default" and "CUDA" in out and "--index-url" not in out


def test_macos_gets_the_default_build(tmp_path, index_url):
    choice, out = choose(tmp_path, RECATTN_OS="Darwin", TORCH_CPU_INDEX=index_url)
    assert choice == "default" and "--index-url" not in out


def test_spec_follows_torch_spec(tmp_path, index_url):
    _, out = choose(tmp_path, RECATTN_OS="Darwin", TORCH_SPEC="torch>=2.6")
    assert "pip install torch>=2.6" in out
