"""Tests of launch/serve.py as a real uvicorn process on 127.0.0.1: TF Serving's REST examples (tests/data/
tf_serving_rest) round trip, results equal the export's own bytes signature, batched equals unbatched, limits (non-
image, oversize body, bomb) and the queue bound answer with their status and one JSON line, SIGTERM lets a request
in progress finish, and the page driven in headless Chromium inside a network namespace with only loopback."""

import base64
import http.client
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

import image_corpus
import numpy as np
import pytest
import run_dirs
import tensorflow as tf
from conftest import REPO_ROOT
from conftest import run_script
from conftest import skip_unless_ci
from PIL import Image
from skimage.color import rgb2lab

from colorgan.training import local_cluster

SCRIPT = os.path.join(REPO_ROOT, "launch", "serve.py")
EXAMPLES = os.path.join(REPO_ROOT, "tests", "data", "tf_serving_rest")
STATIC = os.path.join(REPO_ROOT, "colorgan", "serving", "static")
BANNER = re.compile(r"^serve: http://127\.0\.0\.1:(\d+)/")
STARTUP_TIMEOUT = 300  # TensorFlow's import and the model's load on a loaded 2-core machine
REFUSAL_TIMEOUT = 120  # a limit answers before any model work: a server waiting for the body instead fails here


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(run dir, export dir) of a tiny Lab U-Net predicting strong chroma, exported at 64 px as TF Serving lays
    exports out (BASE/VERSION, version 123 as in TF Serving's examples)."""
    root = tmp_path_factory.mktemp("serving")
    model_dir, _ = run_dirs.make_run(root / "run", "unet", step=7, ema=True)
    export_dir = str(root / "models" / "colorgan" / "123")
    run_script("launch/export.py", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--render_size=64",
               check=True)
    return model_dir, export_dir


class Server:
    """launch/serve.py in its own process (optionally prefixed, e.g. by nsenter); stderr kept in `lines`."""

    def __init__(self, model, *flags, prefix=(), port=0, env=None):
        self.process = subprocess.Popen([*prefix, sys.executable, SCRIPT, f"--model={model}", f"--port={port}",
                                         *flags], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        env=env)
        self.lines, self.ready = [], threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(STARTUP_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise AssertionError("serve.py did not start:\n" + "".join(self.lines[-30:]))
        self.port = int(BANNER.match(next(line for line in self.lines if BANNER.match(line))).group(1))

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line)
            if BANNER.match(line):
                self.ready.set()
        self.ready.set()

    def request(self, method, path, body=None, headers=None):
        """(status, headers, body bytes) of one request on a fresh connection."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=STARTUP_TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def json(self, method, path, payload=None):
        status, headers, body = self.request(method, path, None if payload is None else json.dumps(payload),
                                             {"Content-Type": "application/json"})
        return status, headers, body

    def info(self):
        return json.loads(self.request("GET", "/server")[2])

    def wait_in_progress(self, count):
        """Waits until the server holds `count` requests, uploading or admitted (a condition, not a duration)."""
        self.wait_for("in_progress", count)

    def wait_for(self, counter, count):
        """Waits until /server's `counter` (in_progress, uploading, queued) is `count`."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while self.info()[counter] != count:
            assert time.monotonic() < deadline, f"never {counter} {count}"
            time.sleep(0.05)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def server(exported):
    """One server for the tests that leave it as they found it: uploads capped at 1 MB."""
    running = Server(exported[1], "--max_upload_mb=1")
    yield running
    running.stop()


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg_gray(width, height, seed=0):
    buffer = io.BytesIO()
    Image.fromarray(image_corpus.colourful(width, height, seed)).convert("L").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _decode(b64_value):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64_value))))


def _example(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return json.load(f)


def _export_serving_default(export_dir, photos):
    """What TF Serving would answer: the export's own bytes signature, one photo at a time."""
    loaded = tf.saved_model.load(export_dir)
    return [np.asarray(Image.open(io.BytesIO(loaded.signatures["serving_default"](
        image_bytes=tf.constant([photo]))["image_bytes"][0].numpy()))) for photo in photos]


def _one_json_line(body):
    assert b"\n" not in body.strip(), body
    answer = json.loads(body)
    assert list(answer) == ["error"] and isinstance(answer["error"], str), answer
    return answer["error"]


def test_tf_serving_examples_round_trip(server, exported):
    """TF Serving's documented requests, with real photos in their b64 values, get TF Serving's answers' shapes,
    and the photos are what TF Serving running the export would return."""
    photos = [_png(image_corpus.colourful(101, 67)), _jpeg_gray(75, 120, seed=1)]
    expected = _export_serving_default(exported[1], photos)

    status, _, body = server.request("GET", "/v1/models/colorgan")
    assert status == 200 and json.loads(body) == _example("model_status_response.json")  # version 123 in both

    request = _example("predict_b64_request.json")
    assert [set(value) for value in request["instances"]] == [{"b64"}, {"b64"}]
    request["instances"] = [{"b64": base64.b64encode(photo).decode()} for photo in photos]
    status, _, body = server.json("POST", "/v1/models/colorgan:predict", request)
    answer = json.loads(body)
    example = _example("predict_bytes_response.json")
    assert status == 200 and set(answer) == set(example) == {"predictions"}
    assert len(answer["predictions"]) == len(request["instances"])  # one per instance, as in the row example
    assert len(_example("predict_row_response.json")["predictions"]) == len(
        _example("predict_row_request.json")["instances"])
    for value, want in zip(answer["predictions"], expected):
        assert set(value) == set(example["predictions"][0][0]) == {"b64"}
        got = _decode(value["b64"])
        assert got.shape == want.shape and np.abs(got.astype(int) - want.astype(int)).max() <= 1

    columnar = {"inputs": [{"b64": base64.b64encode(photos[0]).decode()}]}  # as predict_columnar_request.json
    assert set(_example("predict_columnar_request.json")) == set(columnar)
    status, _, body = server.json("POST", "/v1/models/colorgan/versions/123:predict", columnar)
    assert status == 200 and set(json.loads(body)) == set(_example("predict_columnar_response.json"))
    named = {"instances": [{"image_bytes": {"b64": base64.b64encode(photos[0]).decode()}}]}  # BUILD.md's curl
    status, _, body = server.json("POST", "/v1/models/colorgan:predict", named)
    got = _decode(json.loads(body)["predictions"][0]["b64"])
    assert status == 200 and np.abs(got.astype(int) - expected[0].astype(int)).max() <= 1

    status, _, body = server.json("POST", "/v1/models/half:predict", _example("predict_row_request.json"))
    assert status == 404 and json.loads(body) == _example("not_found_response.json")


def test_metadata_is_shaped_as_tf_serving_shapes_it(server):
    status, _, body = server.request("GET", "/v1/models/colorgan/metadata")
    ours, example = json.loads(body), _example("model_metadata_response.json")
    assert status == 200 and ours["model_spec"] == {"name": "colorgan", "signature_name": "", "version": "123"}
    assert set(ours) == set(example) and set(ours["model_spec"]) == set(example["model_spec"])
    signatures = ours["metadata"]["signature_def"]["signature_def"]
    examples = example["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "colorize", "chroma", "__saved_model_init_op"}
    assert set(signatures["serving_default"]) == set(examples["serving_default"])
    tensor, example_tensor = signatures["serving_default"]["inputs"]["image_bytes"], examples["serving_default"][
        "inputs"]["x"]
    assert set(tensor) == set(example_tensor) and set(tensor["tensor_shape"]) == set(example_tensor["tensor_shape"])
    assert set(tensor["tensor_shape"]["dim"][0]) == set(example_tensor["tensor_shape"]["dim"][0])
    assert (tensor["dtype"], tensor["tensor_shape"]["dim"]) == ("DT_STRING", [{"size": "-1", "name": ""}])
    assert list(signatures["serving_default"]["outputs"]) == ["image_bytes"]
    assert signatures["serving_default"]["method_name"] == examples["serving_default"]["method_name"]
    assert [d["size"] for d in signatures["chroma"]["inputs"]["gray"]["tensor_shape"]["dim"]] == ["-1", "64", "64",
                                                                                                    "1"]


def test_batched_results_equal_unbatched_ones(server):
    """A request's photos go to the model in one batch; each photo comes back as it does alone."""
    photos = [_jpeg_gray(90, 60, seed=2), _png(image_corpus.colourful(101, 67)), _jpeg_gray(40, 130, seed=3)]
    alone = []
    for photo in photos:
        status, _, body = server.request("POST", "/colorize", photo, {"Content-Type": "image/jpeg"})
        assert status == 200
        alone.append(np.asarray(Image.open(io.BytesIO(body))))
    before = server.info()
    status, _, body = server.json("POST", "/v1/models/colorgan:predict",
                                  {"instances": [{"b64": base64.b64encode(photo).decode()} for photo in photos]})
    after = server.info()
    assert status == 200 and after["largest_batch"] >= 3 and after["batches"] == before["batches"] + 1
    for value, single in zip(json.loads(body)["predictions"], alone):
        batched = _decode(value["b64"])
        assert batched.shape == single.shape
        assert np.abs(batched.astype(int) - single.astype(int)).max() <= 1
        assert np.abs(batched.astype(int) - batched.mean(-1, keepdims=True)).mean() > 3  # chroma, not gray


def test_requests_arriving_together_share_one_model_call(exported):
    """Two requests of one photo each: the first waits (up to --batch_timeout_ms, far longer than the second takes
    to arrive) until --max_batch=2 photos are there, then one call serves both."""
    running = Server(exported[1], "--max_batch=2", "--batch_timeout_ms=10000")
    try:
        photos = [_jpeg_gray(50, 70, seed=6), _jpeg_gray(90, 40, seed=7)]
        answers = [None, None]

        def post(index):
            answers[index] = running.request("POST", "/colorize", photos[index], {"Content-Type": "image/jpeg"})

        threads = [threading.Thread(target=post, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [answer[0] for answer in answers] == [200, 200]
        assert [Image.open(io.BytesIO(answer[2])).size for answer in answers] == [(50, 70), (90, 40)]
        info = running.info()
        assert (info["batches"], info["photos"], info["largest_batch"]) == (1, 2, 2)
    finally:
        running.stop()


def _bomb_png(width, height):
    """A 1x1 PNG whose header claims width x height: what a decompression bomb looks like before decoding."""
    data = _png(np.zeros((1, 1), np.uint8))
    header = struct.pack(">II", width, height) + data[24:29]
    return data[:16] + header + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + data[33:]


def _raw_request(port, head, body):
    """Sends exactly these bytes and reads the answer: for bodies an HTTP client library would not send."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=REFUSAL_TIMEOUT) as sock:
        sock.sendall(head.encode() + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


def _answers_both_ways(server, name, data, want_status, want_message):
    """POST /colorize and :predict of the same bytes both answer `want_status` with a message starting so."""
    status, _, body = server.request("POST", "/colorize", data, {"Content-Type": "application/octet-stream"})
    assert status == want_status and _one_json_line(body).startswith(want_message), (name, status, body)
    status, _, body = server.json("POST", "/v1/models/colorgan:predict",
                                  {"instances": [{"b64": base64.b64encode(data).decode()}]})
    assert status == want_status and _one_json_line(body).startswith(want_message), (name, status, body)


def test_bad_uploads_get_their_status_and_a_one_line_json_error(server, tmp_path):
    cases = {
        "not an image": (b"just some text, not a photo\n" * 10, 400, "not an image"),
        "bomb": (_bomb_png(30000, 30000), 413, "too many pixels"),
        "over --max_pixels": (_bomb_png(8000, 7000), 413, "too many pixels: 8000x7000 > --max_pixels=50000000"),
        "truncated": (_jpeg_gray(200, 150)[:300], 400, "corrupt image: "),
        "tiff": (None, 400, "unsupported image format TIFF"),
    }
    Image.fromarray(image_corpus.colourful(30, 20)).save(tmp_path / "photo.tif")
    cases["tiff"] = ((tmp_path / "photo.tif").read_bytes(), *cases["tiff"][1:])
    for name, (data, want_status, want_message) in cases.items():
        _answers_both_ways(server, name, data, want_status, want_message)
    status, _, body = server.json("POST", "/v1/models/colorgan:predict", {"instances": [{"b64": "not base64!"}]})
    assert status == 400 and _one_json_line(body).startswith("Unable to base64 decode")

    # Over --max_upload_mb=1: refused from Content-Length before the body is read, and while reading a chunked one.
    size = 2**20 + 1
    status, body = _raw_request(server.port, f"POST /colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}"
                                             "\r\nConnection: close\r\n\r\n", b"")
    assert status == 413 and _one_json_line(body) == f"request body of {size} bytes is over --max_upload_mb=1"
    chunk = b"x" * 65536
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17)) + b"0\r\n\r\n"
    status, body = _raw_request(server.port, "POST /colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
                                             "chunked\r\nConnection: close\r\n\r\n", chunked)
    assert status == 413 and _one_json_line(body) == "request body is over --max_upload_mb=1"
    status, _, body = server.request("POST", "/colorize", b"", {"Content-Type": "image/png"})
    assert status == 400 and _one_json_line(body).startswith("empty body")


def test_multipart_upload_returns_the_png(server):
    photo = _jpeg_gray(120, 80, seed=4)
    boundary = "colorgan-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"old.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    status, headers, png = server.request("POST", "/colorize", body,
                                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200 and headers["content-type"] == "image/png"
    status, _, raw = server.request("POST", "/colorize", photo, {"Content-Type": "image/jpeg"})
    assert png == raw and Image.open(io.BytesIO(png)).size == (120, 80)


class PartialUpload:
    """A POST /colorize whose body is half sent: admitted and in progress until `finish`."""

    def __init__(self, port, body):
        import socket

        self.body = body
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=STARTUP_TIMEOUT)
        self.sock.sendall(f"POST /colorize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                          f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body[:len(body) // 2])

    def finish(self):
        with self.sock:
            self.sock.sendall(self.body[len(self.body) // 2:])
            response = http.client.HTTPResponse(self.sock)
            response.begin()
            return response.status, response.read()


def test_past_the_queue_bound_503_with_retry_after(exported):
    """--max_queue bounds the requests whose body is in: one photo waiting in the batcher for a partner (a long
    --batch_timeout_ms) holds the only place, and the next request gets 503 until it is done."""
    running = Server(exported[1], "--max_queue=1", "--max_batch=2", "--batch_timeout_ms=5000")
    try:
        photo = _jpeg_gray(64, 48)
        first = {}
        thread = threading.Thread(target=lambda: first.update(answer=running.request(
            "POST", "/colorize", photo, {"Content-Type": "image/jpeg"})))
        thread.start()
        running.wait_for("queued", 1)
        status, headers, body = running.request("POST", "/colorize", photo, {"Content-Type": "image/jpeg"})
        assert status == 503 and headers.get("retry-after") == "1"
        assert _one_json_line(body).startswith("busy: 1 requests in progress (--max_queue=1)")
        status, _, body = running.json("POST", "/v1/models/colorgan:predict",
                                       {"instances": [{"b64": base64.b64encode(photo).decode()}]})
        assert status == 503
        assert running.request("GET", "/v1/models/colorgan")[0] == 200  # status and metadata are not queued
        thread.join(STARTUP_TIMEOUT)
        status, _, png = first["answer"]
        assert status == 200 and Image.open(io.BytesIO(png)).size == (64, 48)
        running.wait_in_progress(0)
        assert running.request("POST", "/colorize", photo, {"Content-Type": "image/jpeg"})[0] == 200
    finally:
        running.stop()


def _response(sock):
    """(status, body, whether the server then closed the connection) of a response read from `sock`."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    try:
        closed = sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        closed = True
    return response.status, body, closed


def test_slow_uploads_do_not_hold_the_queue_and_get_408_at_the_body_deadline(exported):
    """Four sockets trickling a body held --max_queue=4 and every other client got 503 for as long as they liked.
    Uploads are now counted apart from the queue, and a body not received whole within --body_timeout_s gets 408
    and a closed connection."""
    running = Server(exported[1], "--max_queue=4", "--body_timeout_s=4")
    try:
        photo = _jpeg_gray(64, 48)
        slow = [PartialUpload(running.port, photo) for _ in range(4)]
        running.wait_for("uploading", 4)
        status, _, png = running.request("POST", "/colorize", photo, {"Content-Type": "image/jpeg"})
        assert status == 200 and Image.open(io.BytesIO(png)).size == (64, 48)
        for upload in slow:
            with upload.sock:
                status, body, closed = _response(upload.sock)
            assert status == 408 and closed
            assert _one_json_line(body) == "request body not received whole within --body_timeout_s=4"
        running.wait_for("uploading", 0)
    finally:
        running.stop()


def test_sigterm_lets_the_request_in_progress_finish(exported):
    running = Server(exported[1])
    try:
        upload = PartialUpload(running.port, _jpeg_gray(80, 60))
        running.wait_in_progress(1)
        running.process.send_signal(signal.SIGTERM)
        status, png = upload.finish()
        assert status == 200 and Image.open(io.BytesIO(png)).size == (80, 60)
        assert running.process.wait(STARTUP_TIMEOUT) == 128 + signal.SIGTERM
    finally:
        running.stop()


def test_serves_a_training_run_too(exported, tmp_path):
    """--model=RUN: exported in memory, nothing written to disk; the same answers as its export at that size."""
    model_dir, _ = exported
    before = sorted(os.listdir(model_dir))
    running = Server(model_dir)
    try:
        assert running.info()["model"]["render_size"] == 32
        status, _, body = running.request("POST", "/colorize", _jpeg_gray(70, 50), {"Content-Type": "image/jpeg"})
        assert status == 200 and Image.open(io.BytesIO(body)).size == (70, 50)
    finally:
        running.stop()
    assert sorted(os.listdir(model_dir)) == before


def test_serves_a_run_on_a_pretrained_encoder(tmp_path):
    """unet256_resnet.cfg's generator (ResNet50V2 encoder) at a test size, served from its run."""
    model_dir, _ = run_dirs.make_run(tmp_path / "resnet_run", "unet", encoder="resnet50v2", depth=0,
                                     norm="instance")
    running = Server(model_dir)
    try:
        assert running.info()["model"]["render_size"] == 32
        status, _, body = running.request("POST", "/colorize", _jpeg_gray(70, 50), {"Content-Type": "image/jpeg"})
        assert status == 200
        colour = np.asarray(Image.open(io.BytesIO(body)))
        assert colour.shape == (50, 70, 3) and np.hypot(*np.moveaxis(rgb2lab(colour)[..., 1:], -1, 0)).mean() > 5
    finally:
        running.stop()


def test_bad_flags_are_one_line_errors(tmp_path, exported):
    for flags, message in (
            ((), "serve: error: --model is required"),
            ((f"--model={tmp_path}", "--max_queue=0"), "serve: error: --max_queue=0: must be positive"),
            ((f"--model={tmp_path}", "--host=example.org"), "serve: error: --host=example.org: not an IP address"),
            ((f"--model={tmp_path}", "--port=70000"), "serve: error: --port=70000: not in 0..65535"),
            ((f"--model={tmp_path}", "--batch_timeout_ms=-1"), "serve: error: --batch_timeout_ms=-1.0: not in "
                                                               "0..10000"),
            ((f"--model={tmp_path}", "--port=0"), f"serve: error: --model={tmp_path}: neither a training run")):
        result = run_script("launch/serve.py", *flags)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(message), result.stderr


def test_the_page_has_no_external_assets():
    for name in os.listdir(STATIC):
        with open(os.path.join(STATIC, name), encoding="utf-8") as f:
            text = f.read()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), name
        assert "@import" not in text and "analytics" not in text.lower()


# Run inside the network namespace (only loopback): drives the page in headless Chromium, uploads a photo and a text
# file, downloads the result, compares it with a direct POST /colorize.
CHROMIUM = r'''
import json, os, sys, time, urllib.request
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def start_chromium(downloads):
    """Headless Chromium through Debian's chromedriver, downloading into `downloads` without asking."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-proxy-server",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1100"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": downloads,
                                              "download.prompt_for_download": False})
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
'''
BROWSER = CHROMIUM + r'''
url, photo, text_file, downloads, screenshot = sys.argv[1:6]
driver = start_chromium(downloads)
try:
    driver.get(url)
    upload = driver.find_element(By.ID, "files")
    upload.send_keys(photo)
    WebDriverWait(driver, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card.done, .card.error"))
    card = driver.find_element(By.CSS_SELECTOR, ".card")
    result = {"classes": card.get_attribute("class"), "message": card.find_element(By.CSS_SELECTOR, ".message").text}
    result["natural"] = driver.execute_script(
        "const i = document.querySelector('.card .result'); return [i.naturalWidth, i.naturalHeight];")
    card.find_element(By.CSS_SELECTOR, ".download").click()
    WebDriverWait(driver, 120).until(lambda d: [n for n in os.listdir(downloads) if n.endswith(".png")])
    result["downloaded"] = os.path.join(downloads, [n for n in os.listdir(downloads) if n.endswith(".png")][0])
    upload.send_keys(text_file)
    WebDriverWait(driver, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card.error"))
    result["error"] = driver.find_element(By.CSS_SELECTOR, ".card.error .message").text
    driver.save_screenshot(screenshot)
    with open(photo, "rb") as f:
        direct = urllib.request.urlopen(urllib.request.Request(url + "colorize", data=f.read(),
                                                               headers={"Content-Type": "image/jpeg"}))
    with open(result["downloaded"], "rb") as f:
        result["same_as_direct"] = f.read() == direct.read()
    print(json.dumps(result))
finally:
    driver.quit()
'''


def _browse(model, script, *args):
    """Serves `model` in a network namespace of its own (only loopback) and runs a browser `script` there against
    it (its first argument the page's URL); returns the JSON of the script's last line."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        skip_unless_ci("no chromium and chromium-driver (apt-get install chromium chromium-driver)")
    namespace, why = local_cluster.private_namespace(1)
    if namespace is None:
        skip_unless_ci(f"no private network namespace for the browser: {why}")
    running = None
    try:
        running = Server(model, prefix=namespace.enter, port=namespace.ports[0])
        result = subprocess.run([*namespace.enter, sys.executable, "-c", script, f"http://127.0.0.1:{running.port}/",
                                 *args], capture_output=True, text=True, timeout=900)
    finally:
        if running:
            running.stop()
        namespace.close()
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_page_in_headless_chromium(exported, tmp_path):
    photo = tmp_path / "family photo.jpg"
    photo.write_bytes(_jpeg_gray(301, 203, seed=5))
    (tmp_path / "notes.txt").write_text("not a photo\n")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    page = _browse(exported[1], BROWSER, str(photo), str(tmp_path / "notes.txt"), str(downloads),
                   str(tmp_path / "page.png"))
    assert "done" in page["classes"] and page["natural"] == [301, 203], page
    downloaded = np.asarray(Image.open(page["downloaded"]))
    assert downloaded.shape == (203, 301, 3) and page["same_as_direct"]
    assert np.abs(downloaded.astype(int) - downloaded.mean(-1, keepdims=True)).mean() > 3  # it has chroma
    assert page["error"] == "notes.txt: not an image"
    assert Image.open(tmp_path / "page.png").size[0] > 0
    print(f"screenshot: {tmp_path / 'page.png'}")


def _gif_bomb():
    """Two frames on a 7000x7000 canvas in 38 kB: under --max_pixels one frame at a time, 98 MP as decoded."""
    first = Image.new("P", (7000, 7000), 0)
    first.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    second = first.copy()
    second.putpixel((5, 5), 1)
    buffer = io.BytesIO()
    first.save(buffer, format="GIF", save_all=True, append_images=[second])
    return buffer.getvalue()


def test_hostile_images_are_refused_before_decoding_and_the_service_lives(exported):
    """An 858-byte animated WebP aborted the process (TF 2.21's decode_image corrupts the heap); a GIF's frames
    passed --max_pixels one at a time; JPEG XL was decoded; a phone's multi-picture JPEG (MPO) was refused."""
    running = Server(exported[1], "--max_upload_mb=1")
    try:
        cases = {
            "animated WebP": (image_corpus.encoded("WEBP", frames=3, duration=100, loop=0), 400, "animated WebP"),
            "GIF frames x pixels": (_gif_bomb(), 413, "too many pixels: 7000x7000 x 2 frames > --max_pixels=50000000"),
            "JPEG XL": (b"\xff\x0a" + bytes(200), 400, "unsupported image format JPEG XL"),
        }
        for name, (data, want_status, want_message) in cases.items():
            _answers_both_ways(running, name, data, want_status, want_message)
            assert running.process.poll() is None, f"{name} killed the service: {running.lines[-5:]}"
        mpo = image_corpus.encoded("MPO", frames=2, size=(64, 48))
        status, _, png = running.request("POST", "/colorize", mpo, {"Content-Type": "image/jpeg"})
        assert status == 200 and Image.open(io.BytesIO(png)).size == (64, 48)
        assert running.request("GET", "/v1/models/colorgan")[0] == 200
    finally:
        running.stop()


def test_malformed_requests_are_tf_serving_errors_not_500s(server):
    """JSON nested 100,000 deep gave 500 and a logged traceback; 2000 instances ran as one batch of 2000 past
    --max_batch=16; 404 and 405 answered Starlette's plain text instead of TF Serving's {"error": ...}."""
    status, _, body = server.request("POST", "/v1/models/colorgan:predict", b"[" * 100_000 + b"]" * 100_000,
                                     {"Content-Type": "application/json"})
    assert status == 400 and _one_json_line(body) == "JSON Parse error: nested too deep"
    photo = {"b64": base64.b64encode(_jpeg_gray(8, 8)).decode()}
    status, _, body = server.json("POST", "/v1/models/colorgan:predict", {"instances": [photo] * 17})
    assert status == 400 and _one_json_line(body) == "17 instances in one request: at most --max_batch=16"
    status, _, body = server.request("GET", "/v1/nothing/here")
    assert status == 404 and json.loads(body) == {"error": "Not Found: GET /v1/nothing/here"}
    status, _, body = server.request("DELETE", "/colorize")
    assert status == 405 and json.loads(body) == {"error": "Method Not Allowed: DELETE /colorize"}


@pytest.mark.parametrize("model", ["export", "run"])
def test_a_serve_start_prints_its_banner_first_and_leaves_nothing_in_tmpdir(exported, tmp_path, model):
    """Each start left about 43 __autograph_generated_file*.py in $TMPDIR (serving a run: one, tf.saved_model.save's
    signature wrapper, which TensorFlow removes at exit, but a server dying of SIGTERM ran no exit handler). And
    TensorFlow's C++ INFO lines, and tf.saved_model.save's absl INFO lines, came before the banner."""
    running = Server(exported[1] if model == "export" else exported[0], env=dict(os.environ, TMPDIR=str(tmp_path)))
    try:
        assert running.request("POST", "/colorize", _jpeg_gray(40, 30), {"Content-Type": "image/jpeg"})[0] == 200
    finally:
        running.stop()
    assert running.process.returncode == 128 + signal.SIGTERM
    before_banner = running.lines[:next(index for index, line in enumerate(running.lines) if BANNER.match(line))]
    assert [line for line in before_banner if not re.match(r"E\d{4} .* cuda", line)] == []  # CUDA stubs: errors
    assert sorted(path.name for path in tmp_path.rglob("*")) == []


def test_only_this_servers_own_names_and_page_are_answered(server):
    """Any page the user opened could POST to the service (text/plain needs no preflight) and, by DNS rebinding,
    read its answers: other Host headers and other origins get 403 in TF Serving's error shape."""
    port = server.port
    for host, want in ((f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200), (f"[::1]:{port}", 200),
                       ("LOCALHOST", 200), (f"evil.example:{port}", 403), ("127.0.0.1.evil.example", 403)):
        status, body = _raw_request(port, f"GET /v1/models/colorgan HTTP/1.1\r\nHost: {host}\r\n"
                                          "Connection: close\r\n\r\n", b"")
        assert status == want, (host, status, body)
        if want == 403:
            assert _one_json_line(body) == f"Host {host!r} is not served here (add it with --allowed_hosts)"
    photo = _jpeg_gray(40, 30)
    for headers, want in (({"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}, 200),
                          ({"Origin": "http://evil.example"}, 403), ({"Origin": "null"}, 403),
                          ({"Origin": f"http://localhost:{port}"}, 403),  # the Host here is 127.0.0.1
                          ({"Sec-Fetch-Site": "cross-site"}, 403), ({"Sec-Fetch-Site": "same-site"}, 403)):
        status, _, body = server.request("POST", "/colorize", photo, {"Content-Type": "text/plain", **headers})
        assert status == want, (headers, status, body)
        if want == 403:
            assert "refused: only this server's own page may call it" in _one_json_line(body)


def test_listening_beyond_loopback_needs_allowed_hosts(tmp_path):
    result = run_script("launch/serve.py", f"--model={tmp_path}", "--host=0.0.0.0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("serve: error: --host=0.0.0.0: listening beyond loopback needs --allowed_hosts" in
            result.stderr.strip().splitlines()[-1])


def test_decoded_pixels_in_flight_are_bounded(exported):
    """Memory follows decoded pixels, not requests: a 20 kB JPEG may declare 49 MP, and three at once took 3.2 GB.
    A photo waiting in the batcher holds its pixels of --max_pixels_in_flight; a request that would pass the budget
    gets 503 (413 if it alone is over it), and its pixels come back when it is done."""
    running = Server(exported[1], "--max_pixels=1000000", "--max_pixels_in_flight=1000000", "--max_batch=2",
                     "--batch_timeout_ms=5000")
    try:
        first = {}
        thread = threading.Thread(target=lambda: first.update(answer=running.request(
            "POST", "/colorize", _jpeg_gray(800, 600), {"Content-Type": "image/jpeg"})))
        thread.start()
        running.wait_for("pixels_in_flight", 480_000)
        status, headers, body = running.request("POST", "/colorize", _jpeg_gray(800, 700),
                                                {"Content-Type": "image/jpeg"})
        assert status == 503 and headers.get("retry-after") == "1"
        assert _one_json_line(body) == "busy: 480000 pixels being colorized (--max_pixels_in_flight=1000000); retry"
        thread.join(STARTUP_TIMEOUT)
        assert first["answer"][0] == 200
        running.wait_for("pixels_in_flight", 0)
        photo = {"b64": base64.b64encode(_jpeg_gray(800, 700)).decode()}
        status, _, body = running.json("POST", "/v1/models/colorgan:predict", {"instances": [photo] * 2})
        assert status == 413
        assert _one_json_line(body) == "1120000 pixels in one request: over --max_pixels_in_flight=1000000"
    finally:
        running.stop()


def _multipart(photo, **fields):
    boundary = "colorgan-test-boundary"
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
                    for name, value in fields.items())
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"old.jpg\"\r\n"
             f"Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.fixture(scope="module")
def exported_hints(tmp_path_factory):
    """The export of a tiny Lab U-Net trained with --hints, at 64 px."""
    root = tmp_path_factory.mktemp("serving_hints")
    model_dir, _ = run_dirs.make_run(root / "run", "unet", step=5, hints=True)
    export_dir = str(root / "models" / "colorgan" / "1")
    run_script("launch/export.py", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--render_size=64",
               check=True)
    return export_dir


def test_hints_through_colorize_and_predict_equal_the_exports_serving_hints(exported_hints, server):
    """A person's points in a POST /colorize form field, and in :predict to serving_hints (row and columnar, padded
    with a mask, as TF Serving's row format needs), give the PNG TF Serving running the export would give."""
    photo = _jpeg_gray(120, 80, seed=6)
    points = [(20, 10, "#2a5caa"), (100, 70, "#c83020")]
    xy, rgb, mask = [[20, 10], [100, 70], [0, 0]], [[42, 92, 170], [200, 48, 32], [0, 0, 0]], [1, 1, 0]
    served = tf.saved_model.load(exported_hints).signatures["serving_hints"]
    expected = np.asarray(Image.open(io.BytesIO(served(
        image_bytes=tf.constant([photo]), hint_xy=tf.constant([xy], tf.float32), hint_rgb=tf.constant([rgb], tf.uint8),
        hint_mask=tf.constant([mask], tf.float32))["image_bytes"][0].numpy())))
    running = Server(exported_hints)
    try:
        hints_json = json.dumps({"points": [{"x": x, "y": y, "color": colour} for x, y, colour in points]})
        status, _, png = running.request("POST", "/colorize", *_multipart(photo, hints=hints_json))
        assert status == 200
        from_form = np.asarray(Image.open(io.BytesIO(png)))
        assert np.abs(from_form.astype(int) - expected.astype(int)).max() <= 1
        alone = np.asarray(Image.open(io.BytesIO(running.request("POST", "/colorize", photo,
                                                                 {"Content-Type": "image/jpeg"})[2])))
        assert np.abs(alone.astype(int) - expected.astype(int)).max() > 20  # the points made the difference
        encoded = {"b64": base64.b64encode(photo).decode()}
        row = {"signature_name": "serving_hints",
               "instances": [{"image_bytes": encoded, "hint_xy": xy, "hint_rgb": rgb, "hint_mask": mask}]}
        columnar = {"signature_name": "serving_hints", "inputs": {"image_bytes": [encoded], "hint_xy": [xy],
                                                                  "hint_rgb": [rgb], "hint_mask": [mask]}}
        for request, key in ((row, "predictions"), (columnar, "outputs")):
            status, _, body = running.json("POST", "/v1/models/colorgan:predict", request)
            assert status == 200, body
            predicted = _decode(json.loads(body)[key][0]["b64"])
            assert np.abs(predicted.astype(int) - expected.astype(int)).max() <= 1
        metadata = json.loads(running.request("GET", "/v1/models/colorgan/metadata")[2])
        assert {"serving_hints", "chroma_hints"} <= set(metadata["metadata"]["signature_def"]["signature_def"])
        # Bad points are one line each, as TF Serving's errors are.
        for fields, message in (
                ({"hints": '{"points": ['}, "hints: not JSON"),
                ({"hints": json.dumps({"points": [{"x": 120, "y": 5, "color": "#fff"}]})},
                 "hints: point 0: (120, 5) is outside the 120x80 photo"),
                ({"hints": json.dumps({"points": [{"x": 1, "y": 5, "color": "red"}]})},
                 "hints: point 0: color 'red' is not #rrggbb or #rgb")):
            status, _, body = running.request("POST", "/colorize", *_multipart(photo, **fields))
            assert status == 400 and _one_json_line(body).startswith(message), body
        bad = dict(row, instances=[dict(row["instances"][0], hint_rgb=[[300, 0, 0]] * 3)])
        status, _, body = running.json("POST", "/v1/models/colorgan:predict", bad)
        assert status == 400 and _one_json_line(body) == (
            "serving_hints: hint_xy must be finite, hint_rgb in 0..255 and hint_mask 0 or 1")
    finally:
        running.stop()
    # A model trained without hints: no serving_hints signature, and a hints field is refused.
    status, _, body = server.json("POST", "/v1/models/colorgan:predict", row)
    assert status == 400 and _one_json_line(body) == (
        'Serving signature name: "serving_hints" not found in signature def')
    status, _, body = server.request("POST", "/colorize", *_multipart(photo, hints='{"points": []}'))
    assert status == 400 and "takes no colour hints" in _one_json_line(body)


# Places colour hints through the page: two clicks on the result, each point's colour set in its picker, a third
# point placed and removed, one point dragged; then downloads the result and prints what the page sent.
BROWSER_HINTS = CHROMIUM + r'''
url, photo, downloads, colours = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
driver = start_chromium(downloads)


def rendered(count):
    """Waits until the shown result was colorized with `count` points, none of them being moved; returns them."""
    def settled(d):
        text = d.execute_script("const c = document.querySelector('.card'); return c.classList.contains('rendering')"
                                " ? null : c.dataset.renderedHints || null;")
        return text and len(json.loads(text)["points"]) == count and json.loads(text)
    return WebDriverWait(driver, 300).until(settled)["points"]


def click_at(frame, x, y):
    width, height = driver.execute_script(
        "const i = document.querySelector('.card .result'); return [i.naturalWidth, i.naturalHeight];")
    box = frame.rect
    ActionChains(driver).move_to_element_with_offset(
        frame, round((x + 0.5) / width * box["width"] - box["width"] / 2),
        round((y + 0.5) / height * box["height"] - box["height"] / 2)).click().perform()


def pick(index, colour):
    driver.execute_script(
        "const p = document.querySelectorAll('.card .hint-color')[arguments[0]]; p.value = arguments[1];"
        "p.dispatchEvent(new Event('input')); p.dispatchEvent(new Event('change'));", index, colour)


try:
    driver.get(url)
    driver.find_element(By.ID, "files").send_keys(photo)
    WebDriverWait(driver, 300).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card.done, .card.error"))
    frame = driver.find_element(By.CSS_SELECTOR, ".card .frame")
    result = {"hints_shown": driver.find_element(By.CSS_SELECTOR, ".card .hints").is_displayed()}
    click_at(frame, 60, 50)
    result["first_picker"] = rendered(1)[0]["color"]  # the picker opened on the model's colour there
    pick(0, colours[0])
    rendered(1)
    click_at(frame, 150, 120)
    pick(1, colours[1])
    click_at(frame, 250, 30)
    rendered(3)
    driver.find_elements(By.CSS_SELECTOR, ".card .hint-remove")[2].click()
    rendered(2)
    marker = driver.find_elements(By.CSS_SELECTOR, ".card .marker")[1]
    ActionChains(driver).drag_and_drop_by_offset(marker, 90, 20).perform()
    result["points"] = WebDriverWait(driver, 300).until(
        lambda d: (lambda points: points[1]["x"] > 200 and points)(rendered(2)))
    result["markers"] = len(driver.find_elements(By.CSS_SELECTOR, ".card .marker"))
    driver.find_element(By.CSS_SELECTOR, ".card .download").click()
    WebDriverWait(driver, 120).until(lambda d: [n for n in os.listdir(downloads) if n.endswith(".png")])
    result["downloaded"] = os.path.join(downloads, [n for n in os.listdir(downloads) if n.endswith(".png")][0])
    print(json.dumps(result))
finally:
    driver.quit()
'''


def test_colour_hints_placed_on_the_page_colour_the_downloaded_photo(tmp_path):
    """With a model that carries hints through (hand-set weights: the test is of the plumbing), two points placed,
    coloured, one dragged and a third removed through the page give a download whose colour at each point is
    within 10 (CIE a*b* distance) of its hint."""
    model_dir = run_dirs.make_hint_carrying_run(tmp_path / "run")
    export_dir = tmp_path / "export" / "1"
    run_script("launch/export.py", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--render_size=256",
               check=True)
    photo = tmp_path / "street.png"
    Image.fromarray(np.full((203, 301), 119, np.uint8)).save(photo)  # L* 50: room for colour in the gamut
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    colours = ["#2a5caa", "#c87828"]
    page = _browse(export_dir, BROWSER_HINTS, str(photo), str(downloads), json.dumps(colours))
    assert page["hints_shown"] and page["markers"] == 2 and page["first_picker"] == "#777777"  # gray: no hints yet
    assert [point["color"] for point in page["points"]] == colours
    first, second = page["points"]
    assert abs(first["x"] - 60) <= 1.5 and abs(first["y"] - 50) <= 1.5 and second["x"] > 200  # dragged right
    downloaded = np.asarray(Image.open(page["downloaded"]).convert("RGB")).astype(np.float64) / 255
    lab = rgb2lab(downloaded)
    for point, colour in zip(page["points"], colours):
        hint = rgb2lab(np.array([[[int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]]]))[0, 0]
        got = lab[int(point["y"]), int(point["x"])]
        assert np.hypot(*(got[1:] - hint[1:])) < 10, (point, got, hint)
    assert np.hypot(*lab[200, 5, 1:]) < 1  # far from every point: the photo stays gray
