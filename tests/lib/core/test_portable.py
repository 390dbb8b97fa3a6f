"""Data prep, colorize, evaluate and serve run where Linux's own calls do not exist (macOS, Windows): each tool runs
as a real process, its worker processes too, with os.sched_getaffinity and signal masks removed and /proc
unreadable (a sitecustomize that every Python process of the run loads)."""

import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys

import image_corpus
import pytest
import run_dirs
from conftest import REPO_ROOT
from PIL import Image

from colorgan.core import portable

# Loaded by every Python process started with this folder on PYTHONPATH (data prep's spawned workers included); each
# leaves a file named after its pid, so a test sees how many processes ran without the Linux calls.
_SHIM = '''
import builtins, os, signal
for module, names in ((os, ("sched_getaffinity", "sched_setaffinity")),
                      (signal, ("pthread_sigmask", "sigwait", "sigwaitinfo", "sigtimedwait", "pthread_kill"))):
    for name in names:
        if hasattr(module, name):
            delattr(module, name)
_open = builtins.open

def _open_but_not_proc(file, *args, **kwargs):
    if isinstance(file, (str, bytes, os.PathLike)) and os.fsdecode(file).startswith("/proc"):
        raise FileNotFoundError(2, "No such file or directory", file)
    return _open(file, *args, **kwargs)

builtins.open = _open_but_not_proc
_open(os.path.join(os.path.dirname(__file__), "loaded", str(os.getpid())), "w").close()
'''


@pytest.fixture
def not_linux(tmp_path):
    """(environment for a tool's process, folder of the pids that loaded the shim)."""
    shim = tmp_path / "shim"
    (shim / "loaded").mkdir(parents=True)
    (shim / "sitecustomize.py").write_text(_SHIM)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), REPO_ROOT])}, shim / "loaded"


def _run(script, *args, env):
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, script), *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_the_shim_removes_the_linux_calls(not_linux):
    env, loaded = not_linux
    probe = subprocess.run([sys.executable, "-c", "import os, signal\n"
                            "print(hasattr(os, 'sched_getaffinity'), hasattr(signal, 'pthread_sigmask'))\n"
                            "open('/proc/self/stat')"], capture_output=True, text=True, env=env, timeout=60)
    assert probe.stdout.split() == ["False", "False"] and "FileNotFoundError" in probe.stderr
    assert len(list(loaded.iterdir())) == 1


def test_usable_cpus_falls_back_to_the_machines_count(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity")
    assert portable.usable_cpus() == os.cpu_count()


def test_data_prep_with_its_default_workers_converts_without_linux_calls(not_linux, photo_dir, tmp_path):
    env, loaded = not_linux
    result = _run("data_prep/make_tfrecords.py", f"--input_dir={photo_dir}", f"--output_dir={tmp_path / 'data'}",
                  "--image_size=32", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert sum(split["num_examples"] for split in manifest["splits"].values()) == 40
    workers = os.cpu_count() if os.cpu_count() > 1 else 0  # the default: every CPU; inline on one
    assert len(list(loaded.iterdir())) >= 1 + workers  # and multiprocessing's resource tracker


def test_colorize_evaluate_and_serve_run_without_linux_calls(not_linux, tmp_path):
    env, _ = not_linux
    model_dir = run_dirs.make_run(tmp_path / "run", "unet")[0]
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(2):
        Image.fromarray(image_corpus.colourful(48, 32, seed=index)).save(photos / f"photo{index}.png")
    colorized = _run("launch/colorize.py", f"--model={model_dir}", f"--input={photos}",
                     f"--output_dir={tmp_path / 'out'}", env=env)
    assert colorized.returncode == 0, colorized.stderr[-3000:]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["photo0.png", "photo1.png"]
    evaluated = _run("launch/evaluate.py", f"--model={model_dir}", f"--input_dir={photos}", env=env)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert json.loads(evaluated.stdout.strip().splitlines()[-1])["examples"] == 2

    server = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, "launch", "serve.py"), f"--model={model_dir}",
                               "--port=0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    try:
        port = None
        for line in server.stderr:
            match = re.match(r"^serve: http://127\.0\.0\.1:(\d+)/", line)
            if match:
                port = int(match.group(1))
                break
        assert port, "serve.py did not start"
        photo = io.BytesIO()
        Image.open(photos / "photo0.png").save(photo, format="PNG")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        connection.request("POST", "/colorize", body=photo.getvalue(), headers={"Content-Type": "image/png"})
        response = connection.getresponse()
        assert (response.status, Image.open(io.BytesIO(response.read())).size) == (200, (48, 32))
        connection.close()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(120) == 128 + signal.SIGTERM
    assert len(list((tmp_path / "shim" / "loaded").iterdir())) == 3  # colorize, evaluate, serve
