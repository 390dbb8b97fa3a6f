"""The colorize service: a page, TensorFlow Serving's REST API and `POST /colorize` over one model loaded once.

The API takes the same JSON as TF Serving running the export (`serving_default`: image bytes in, PNG out), so one
client works against both. Photos from requests that arrive together are fitted to the render size, batched onto
the export's `chroma` signature in one call, and recombined one by one at full size by `rendering.colorize`, as the
export's bytes signature does. Limits answer before any work: a body over --max_upload_mb or a photo over
--max_pixels (read from its header, before decoding) gets 413, anything that is not an image 400, and a request past
--max_queue 503 with Retry-After: nothing waits in an unbounded backlog. Errors are TF Serving's shape, one line:
{"error": "..."}.
"""

import asyncio
import base64
import binascii
import concurrent.futures
import contextlib
import dataclasses
import io
import json
import logging
import os
import queue
import re
import threading
import time
import warnings

import tensorflow as tf
from google.protobuf import json_format
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartParser
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from tensorflow.core.protobuf import saved_model_pb2

from colorgan import export
from colorgan import inference
from colorgan import orientation
from colorgan import rendering
from colorgan import storage
from colorgan import train_config

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
BYTES_SIGNATURE = "serving_default"
BYTES_KEY = "image_bytes"  # the bytes signature's input and output name (its `_bytes` suffix means base64 in JSON)
# What tf.io.decode_image reads (PIL's names); other formats PIL recognises are refused before decoding.
DECODABLE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
RETRY_AFTER_SECONDS = 1


@dataclasses.dataclass(frozen=True)
class Limits:
    """launch/serve.py's flags of the same names."""

    max_upload_mb: float
    max_pixels: int
    max_queue: int  # requests admitted at once (reading, waiting or being colorized)
    max_batch: int  # photos per call of the chroma signature; 1 turns batching off
    batch_timeout_ms: float  # how long the first photo of a batch waits for others

    @property
    def max_upload_bytes(self):
        return int(self.max_upload_mb * 2**20)


class ServingError(Exception):
    """A request answered with `status` and {"error": message}."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.headers = status, headers

    def response(self):
        return JSONResponse({"error": " ".join(str(self).split())}, self.status, headers=self.headers)


class Model:
    """An export (or a run, exported to memory first) loaded once: its signatures, metadata and the per-photo stages
    around the batched chroma call."""

    def __init__(self, path):
        if storage.exists(os.path.join(path, inference.SAVED_MODEL_FILENAME)):
            export_dir, self.version = path, _version_of(path)
        elif storage.exists(os.path.join(path, train_config.FLAGFILE_NAME)):
            # A run is exported to TensorFlow's in-memory filesystem: one code path, nothing written to disk.
            export_dir, self.version = f"ram://colorgan-serve-{os.getpid()}/1", "1"
            export.export(path, export_dir, overwrite=True)
        else:
            raise inference.InferenceError(f"--model={path}: neither a training run ({train_config.FLAGFILE_NAME}) "
                                           f"nor an export ({inference.SAVED_MODEL_FILENAME})")
        try:
            self.description, self._loaded, self.predict_chroma = inference.load_export(export_dir)
            saved_model = saved_model_pb2.SavedModel.FromString(
                storage.read_bytes(os.path.join(export_dir, inference.SAVED_MODEL_FILENAME)))
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise inference.InferenceError(f"--model={path}: cannot load the export: "
                                           f"{' '.join(str(e).split())[:300]}") from None
        finally:
            if export_dir.startswith("ram://"):
                storage.rmtree(storage.parent(export_dir))
        self.signature_defs = saved_model.meta_graphs[0].signature_def
        self.render_size = size = self.description["render_size"]
        self._prepare = tf.function(lambda data: _prepare(data, size), input_signature=[tf.TensorSpec([], tf.string)])
        self._finish = tf.function(
            lambda gray, ab: tf.io.encode_png(rendering.colorize(gray, lambda canvas: ab, size, tf.uint8)[0]),
            input_signature=[tf.TensorSpec([1, None, None, 1], tf.float32),
                             tf.TensorSpec([1, size, size, 2], tf.float32)])

    def prepare(self, data):
        """Encoded photo -> (gray [1, h, w, 1], canvas [1, R, R, 1]): decoded upright as the bytes signature does."""
        try:
            return self._prepare(tf.constant(data))
        except tf.errors.InvalidArgumentError as e:  # TensorFlow's decoders name what is wrong; drop its graph noise
            reason = re.sub(r"\{\{[^}]*\}\}|\[\[[^\]]*\]\]", "", e.message).strip()
            raise ServingError(400, f"corrupt image: {reason.splitlines()[0][:200] if reason else 'undecodable'}") \
                from None

    def finish(self, gray, ab):
        """gray [1, h, w, 1] + its chroma at the render size -> PNG bytes of the photo colorized at full size."""
        return self._finish(gray, ab).numpy()

    def metadata(self, name):
        """GetModelMetadataResponse as TF Serving's REST API writes it."""
        signature_defs = {key: json_format.MessageToDict(value, preserving_proto_field_name=True,
                                                         always_print_fields_with_no_presence=True)
                          for key, value in self.signature_defs.items()}
        return {"model_spec": {"name": name, "signature_name": "", "version": self.version},
                "metadata": {"signature_def": {"signature_def": signature_defs}}}


def _prepare(data, render_size):
    """The bytes signature's first steps (decode upright, the records' luma), then the canvas the model sees."""
    gray = rendering.gray_from_u8(orientation.decode_upright(data)[tf.newaxis])
    canvas, _ = rendering.fit_canvas(gray, render_size)
    return gray, canvas


def _version_of(export_dir):
    """TF Serving's version of an export: its folder's number (BASE/VERSION), else 1."""
    name = os.path.basename(os.path.normpath(export_dir))
    return str(int(name)) if name.isdigit() else "1"


_STOP = object()


class Batcher:
    """Runs the chroma signature once for the photos of requests that arrive together.

    A thread takes the first waiting group of canvases, then whatever else arrives within --batch_timeout_ms (and
    whatever is already waiting after it), up to --max_batch photos; a request's photos are never split."""

    def __init__(self, predict_chroma, max_batch, timeout_ms):
        self._predict, self._max_batch, self._timeout = predict_chroma, max_batch, timeout_ms / 1000
        self._queue = queue.Queue()
        self.batches = self.photos = self.largest = 0
        self._thread = threading.Thread(target=self._run, name="colorgan-batcher", daemon=True)
        self._thread.start()

    def submit(self, canvases):
        """canvases [k, R, R, 1] -> a Future of their chroma [k, R, R, 2]."""
        future = concurrent.futures.Future()
        self._queue.put((canvases, future))
        return future

    def close(self):
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self):
        waiting = None
        while True:
            group, waiting = waiting if waiting is not None else self._queue.get(), None
            if group is _STOP:
                return
            batch, count = [group], int(group[0].shape[0])
            deadline = time.monotonic() + self._timeout
            while count < self._max_batch:
                try:  # a timeout of 0 still takes what is already waiting
                    group = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                if group is _STOP or count + int(group[0].shape[0]) > self._max_batch:
                    waiting = group
                    break
                batch.append(group)
                count += int(group[0].shape[0])
            self._run_batch(batch, count)

    def _run_batch(self, batch, count):
        try:
            chroma = self._predict(tf.concat([canvases for canvases, _ in batch], axis=0))
        except Exception as e:  # noqa: BLE001 - every waiting request learns what went wrong.
            for _, future in batch:
                future.set_exception(e)
            return
        self.batches, self.photos, self.largest = self.batches + 1, self.photos + count, max(self.largest, count)
        start = 0
        for canvases, future in batch:
            future.set_result(chroma[start:start + canvases.shape[0]])
            start += canvases.shape[0]


def check_image(data, limits):
    """Refuses, from the header alone, what is not an image, what TensorFlow cannot decode, and bombs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height, image_format = *image.size, image.format
        except UnidentifiedImageError:
            raise ServingError(400, "not an image") from None
        except Image.DecompressionBombError as e:
            raise ServingError(413, f"too many pixels: {e}") from None
        except Exception as e:  # noqa: BLE001 - a bad header may raise anything from SyntaxError to struct.error.
            raise ServingError(400, f"corrupt image: {e}") from None
    if width * height > limits.max_pixels:
        raise ServingError(413, f"too many pixels: {width}x{height} > --max_pixels={limits.max_pixels}")
    if image_format not in DECODABLE_FORMATS:
        raise ServingError(400, f"unsupported image format {image_format} (send {', '.join(DECODABLE_FORMATS)})")


class Service:
    """The request handlers over one Model and Batcher."""

    def __init__(self, model, limits, model_name="colorgan"):
        self.model, self.limits, self.model_name = model, limits, model_name
        self.batcher = Batcher(model.predict_chroma, limits.max_batch, limits.batch_timeout_ms)
        self.admitted = 0

    async def colorize(self, photos):
        """Encoded photos -> PNGs: checked, prepared, their chroma predicted in one batch, recombined at full size."""
        for data in photos:
            check_image(data, self.limits)
        prepared = [await run_in_threadpool(self.model.prepare, data) for data in photos]
        chroma = await asyncio.wrap_future(self.batcher.submit(tf.concat([canvas for _, canvas in prepared], 0)))
        return [await run_in_threadpool(self.model.finish, gray, chroma[index:index + 1])
                for index, (gray, _) in enumerate(prepared)]

    def _admit(self):
        if self.admitted >= self.limits.max_queue:
            raise ServingError(503, f"busy: {self.admitted} requests in progress (--max_queue="
                                    f"{self.limits.max_queue}); retry", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        self.admitted += 1

    async def _read_body(self, request):
        """The body, refused with 413 as soon as it is known to be over --max_upload_mb (chunked bodies too)."""
        limit = self.limits.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            raise ServingError(400, f"bad Content-Length {declared!r}")
        if declared is not None and int(declared) > limit:  # refused before the body is read
            raise ServingError(413, f"request body of {declared} bytes is over "
                                    f"--max_upload_mb={self.limits.max_upload_mb:g}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ServingError(413, f"request body is over --max_upload_mb={self.limits.max_upload_mb:g}")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_model(self, request):
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if name != self.model_name:
            raise ServingError(404, f"Servable not found for request: Latest({name})")
        if version is not None and version != self.model.version:
            raise ServingError(404, f"Servable not found for request: Specific({name}, {version})")

    async def handle(self, request, handler, admit=False):
        """Runs a handler; ServingError becomes its JSON answer; admitted requests count against --max_queue."""
        try:
            if admit:
                self._admit()
            try:
                return await handler(request)
            finally:
                if admit:
                    self.admitted -= 1
        except ServingError as e:
            return e.response()
        except ClientDisconnect:  # the client left before sending its whole body: nobody to answer
            return Response(status_code=400)
        except Exception as e:  # noqa: BLE001 - a client gets one JSON line, the log gets the traceback.
            logging.exception("colorgan serving: %s %s", request.method, request.url.path)
            return JSONResponse({"error": f"internal error: {' '.join(str(e).split())[:200]}"}, 500)

    async def predict(self, request):
        self._check_model(request)
        body = await self._read_body(request)
        try:
            payload = json.loads(body)
        except ValueError as e:
            raise ServingError(400, f"JSON Parse error: {e}") from None
        photos, key = _photos_from_predict(payload)
        encoded = [{"b64": base64.b64encode(png).decode("ascii")} for png in await self.colorize(photos)]
        return JSONResponse({key: encoded})

    async def colorize_file(self, request):
        body = await self._read_body(request)
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            photos = await _files_from_multipart(request.headers, body)
            if len(photos) != 1:
                raise ServingError(400, f"send one file per request (got {len(photos)})")
            body = photos[0]
        if not body:
            raise ServingError(400, "empty body: send one image file")
        (png,) = await self.colorize([body])
        return Response(png, media_type="image/png")

    async def status(self, request):
        self._check_model(request)
        return JSONResponse({"model_version_status": [{"version": self.model.version, "state": "AVAILABLE",
                                                       "status": {"error_code": "OK", "error_message": ""}}]})

    async def metadata(self, request):
        self._check_model(request)
        return JSONResponse(self.model.metadata(self.model_name))

    async def server_info(self, request):
        """What the page needs to know (limits, the model) and the batcher's counters."""
        del request
        description = {key: self.model.description.get(key) for key in ("generator", "render_size", "step")}
        return JSONResponse({"model_name": self.model_name, "model": description,
                             "limits": dataclasses.asdict(self.limits), "in_progress": self.admitted,
                             "batches": self.batcher.batches, "photos": self.batcher.photos,
                             "largest_batch": self.batcher.largest})


def _photos_from_predict(payload):
    """TF Serving's predict request (row or columnar, the input named or not) -> (encoded photos, response key)."""
    if not isinstance(payload, dict):
        raise ServingError(400, "JSON Value is not an object")
    signature = payload.get("signature_name", BYTES_SIGNATURE) or BYTES_SIGNATURE
    if signature != BYTES_SIGNATURE:
        raise ServingError(400, f'Serving signature name: "{signature}" not found in signature def')
    if ("instances" in payload) == ("inputs" in payload):
        raise ServingError(400, "Missing 'inputs' or 'instances' key" if "instances" not in payload else
                           "Both 'inputs' and 'instances' keys are present")
    key = "instances" if "instances" in payload else "inputs"
    values = payload[key]
    if key == "inputs" and isinstance(values, dict) and set(values) == {BYTES_KEY}:
        values = values[BYTES_KEY]
    if not isinstance(values, list) or not values:
        raise ServingError(400, f"'{key}' must be a non-empty list of {{\"b64\": ...}} images")
    photos = []
    for value in values:
        if isinstance(value, dict) and set(value) == {BYTES_KEY}:
            value = value[BYTES_KEY]
        if not (isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str)):
            raise ServingError(400, f'each of \'{key}\' must be {{"b64": "<base64 image>"}} or '
                                    f'{{"{BYTES_KEY}": {{"b64": ...}}}}')
        try:
            photos.append(base64.b64decode(value["b64"], validate=True))
        except binascii.Error as e:
            raise ServingError(400, f"Unable to base64 decode: {e}") from None
    return photos, "predictions" if key == "instances" else "outputs"


async def _files_from_multipart(headers, body):
    async def stream():
        yield body

    try:
        form = await MultiPartParser(headers, stream(), max_files=8, max_fields=8).parse()
    except Exception as e:  # noqa: BLE001 - starlette signals malformed forms with several exception types.
        raise ServingError(400, f"malformed multipart form: {e}") from None
    try:
        return [await item.read() for _, item in form.multi_items() if not isinstance(item, str)]
    finally:
        await form.close()  # removes any spooled temporary file


def make_app(model, limits, model_name="colorgan"):
    """The Starlette app: the page at /, the TF Serving REST API under /v1/models, POST /colorize, GET /server."""
    service = Service(model, limits, model_name)

    def route(path, handler, methods, admit=False):
        async def endpoint(request):
            return await service.handle(request, handler, admit)

        return Route(path, endpoint, methods=methods)

    routes = []
    for prefix in ("/v1/models/{name}", "/v1/models/{name}/versions/{version}"):
        routes += [route(prefix + ":predict", service.predict, ["POST"], admit=True),
                   route(prefix + "/metadata", service.metadata, ["GET"]),
                   route(prefix, service.status, ["GET"])]
    routes += [route("/colorize", service.colorize_file, ["POST"], admit=True),
               route("/server", service.server_info, ["GET"]),
               Mount("/", StaticFiles(directory=STATIC_DIR, html=True))]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        del app
        yield
        service.batcher.close()  # after uvicorn has let in-flight requests finish

    return Starlette(routes=routes, lifespan=lifespan)
