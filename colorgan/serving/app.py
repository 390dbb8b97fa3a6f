"""The colorize service: a page, TensorFlow Serving's REST API and `POST /colorize` over one model loaded once.

The API takes the same JSON as TF Serving running the export (`serving_default`: image bytes in, PNG out), so one client
works against both. Photos from requests that arrive together are fitted to the render size, batched onto the export's
`chroma` signature in one call, and recombined one by one at full size by `rendering.recombine`, as the
export's bytes signature does. Limits answer before any work: a body over --max_upload_mb or a photo over --max_pixels
(read from its header, before decoding) gets 413, anything that is not an image 400, and a request past --max_queue 503
with Retry-After: nothing waits in an unbounded backlog. Errors are TF Serving's shape, one line: {"error": "..."}.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import os

import tensorflow as tf
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.formparsers import MultiPartParser
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Mount
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from colorgan.inference import hint_points
from colorgan.serving import limits as request_limits
from colorgan.serving import request_guard
from colorgan.serving import tf_serving_rest
from colorgan.serving.batcher import Batcher
from colorgan.serving.tf_serving_rest import ServingError

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
RETRY_AFTER_SECONDS = 1


class Service:
    """The request handlers over one ServedModel and Batcher."""

    def __init__(self, model, limits, model_name="colorgan"):
        self.model, self.limits, self.model_name = model, limits, model_name
        self.batcher = Batcher(model.predict_chroma, limits.max_batch, limits.batch_timeout_ms)
        self.admitted = 0  # requests whose body is in, queued for the model or being colorized (--max_queue)
        self.uploading = 0  # requests still sending their body (bounded by --body_timeout_s, not --max_queue)
        self.pixels = 0  # decoded pixels of the photos being colorized (--max_pixels_in_flight)

    async def colorize_photos(self, photos, hints=None):
        """Encoded photos (and a hint_points.Hints or None for each) -> PNGs: checked from their bytes, then, within
        the pixel budget, prepared, their chroma predicted in one batch and recombined at full size."""
        pixels = sum(request_limits.check_image(data, self.limits).pixels for data in photos)
        with self._pixels_in_flight(pixels):
            prepared = [await run_in_threadpool(self.model.prepare, data, points)
                        for data, points in zip(photos, hints or [None] * len(photos))]
            canvases = tf.concat([canvas for _, canvas, _ in prepared], 0)
            canvas_hints = tf.concat([points for _, _, points in prepared], 0) if self.model.takes_hints else None
            chroma = await asyncio.wrap_future(self.batcher.submit(canvases, canvas_hints))
            return [await run_in_threadpool(self.model.finish, gray, chroma[index:index + 1])
                    for index, (gray, _, _) in enumerate(prepared)]

    @contextlib.contextmanager
    def _pixels_in_flight(self, pixels):
        """Holds `pixels` of the --max_pixels_in_flight budget while a request's photos are decoded and colorized:
        memory follows decoded pixels, not requests (a 20 kB JPEG may declare 49 MP), so this is what bounds it."""
        budget = self.limits.max_pixels_in_flight
        if pixels > budget:
            raise ServingError(413, f"{pixels} pixels in one request: over --max_pixels_in_flight={budget}")
        if self.pixels + pixels > budget:
            raise ServingError(503, f"busy: {self.pixels} pixels being colorized (--max_pixels_in_flight={budget}); "
                                    "retry", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        self.pixels += pixels
        try:
            yield
        finally:
            self.pixels -= pixels

    def _admit(self):
        if self.admitted >= self.limits.max_queue:
            raise ServingError(503, f"busy: {self.admitted} requests in progress (--max_queue="
                                    f"{self.limits.max_queue}); retry", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        self.admitted += 1

    async def _read_body(self, request):
        """The body, refused with 413 as soon as it is known to be over --max_upload_mb (chunked bodies too), and
        with 408 and a closed connection when it has not arrived whole within --body_timeout_s: a deadline for the
        whole body, since a timeout between reads is beaten by one byte every few seconds."""
        limit = self.limits.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            raise ServingError(400, f"bad Content-Length {declared!r}")
        if declared is not None and int(declared) > limit:  # refused before the body is read
            raise ServingError(413, f"request body of {declared} bytes is over "
                                    f"--max_upload_mb={self.limits.max_upload_mb:g}")

        async def receive():
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ServingError(413, f"request body is over --max_upload_mb={self.limits.max_upload_mb:g}")
                chunks.append(chunk)
            return b"".join(chunks)

        self.uploading += 1
        try:
            return await asyncio.wait_for(receive(), self.limits.body_timeout_s)
        except asyncio.TimeoutError:
            raise ServingError(408, f"request body not received whole within --body_timeout_s="
                                    f"{self.limits.body_timeout_s:g}", {"Connection": "close"}) from None
        finally:
            self.uploading -= 1

    def _check_model(self, request):
        tf_serving_rest.check_model(request.path_params["name"], request.path_params.get("version"), self.model_name,
                                    self.model.version)

    async def handle(self, request, handler, admit=False):
        """Runs a handler; ServingError becomes its JSON answer. A handler of work for the model (`admit`) gets the
        request's body, read first; only then does the request count against --max_queue, so clients still uploading
        never hold the queue."""
        try:
            if not admit:
                return await handler(request)
            body = await self._read_body(request)
            self._admit()
            try:
                return await handler(request, body)
            finally:
                self.admitted -= 1
        except ServingError as e:
            return e.response()
        except ClientDisconnect:  # the client left before sending its whole body: nobody to answer
            return Response(status_code=400)
        except Exception as e:
            logging.exception("colorgan serving: %s %s", request.method, request.url.path)
            return JSONResponse({"error": f"internal error: {' '.join(str(e).split())[:200]}"}, 500)

    async def predict(self, request, body):
        self._check_model(request)
        try:
            payload = json.loads(body)
        except ValueError as e:
            raise ServingError(400, f"JSON Parse error: {e}") from None
        except RecursionError:
            raise ServingError(400, "JSON Parse error: nested too deep") from None
        photos, key, hints = tf_serving_rest.photos_from_predict(payload, self.model.takes_hints)
        if len(photos) > self.limits.max_batch:  # a request's photos are one batch: its size is the batch bound
            raise ServingError(400, f"{len(photos)} instances in one request: at most --max_batch="
                                    f"{self.limits.max_batch}")
        return JSONResponse(tf_serving_rest.predict_response(await self.colorize_photos(photos, hints), key))

    async def colorize_file(self, request, body):
        """One photo: the body itself, or a multipart form with the file and, optionally, a "hints" field holding a
        hints file's JSON ({"points": [{"x", "y", "color"}]}, in the photo's pixels as displayed)."""
        content_type = request.headers.get("content-type", "")
        hints = None
        if content_type.startswith("multipart/form-data"):
            photos, fields = await _files_from_multipart(request.headers, body)
            if len(photos) != 1:
                raise ServingError(400, f"send one file per request (got {len(photos)})")
            body = photos[0]
            if "hints" in fields:
                try:
                    hints = hint_points.parse(fields["hints"])
                except ValueError as e:
                    raise ServingError(400, f"hints: {e}") from None
        if not body:
            raise ServingError(400, "empty body: send one image file")
        (png,) = await self.colorize_photos([body], [hints])
        return Response(png, media_type="image/png")

    async def status(self, request):
        self._check_model(request)
        return JSONResponse(tf_serving_rest.status_response(self.model.version))

    async def metadata(self, request):
        self._check_model(request)
        return JSONResponse(tf_serving_rest.metadata_response(self.model_name, self.model.version,
                                                              self.model.signature_defs))

    async def server_info(self, request):
        """What the page needs to know (limits, the model) and the batcher's counters."""
        del request
        description = {key: self.model.description.get(key) for key in ("generator", "render_size", "step", "hints")}
        return JSONResponse({"model_name": self.model_name, "model": description,
                             "limits": dataclasses.asdict(self.limits),
                             "in_progress": self.uploading + self.admitted, "uploading": self.uploading,
                             "queued": self.admitted, "pixels_in_flight": self.pixels,
                             "batches": self.batcher.batches, "photos": self.batcher.photos,
                             "largest_batch": self.batcher.largest})


async def _files_from_multipart(headers, body):
    """(the files' bytes, {field name: text}) of a multipart form."""
    async def stream():
        yield body

    try:
        form = await MultiPartParser(headers, stream(), max_files=8, max_fields=8).parse()
    except Exception as e:  # noqa: BLE001 - starlette signals malformed forms with several exception types.
        raise ServingError(400, f"malformed multipart form: {e}") from None
    try:
        return ([await item.read() for _, item in form.multi_items() if not isinstance(item, str)],
                {name: item for name, item in form.multi_items() if isinstance(item, str)})
    finally:
        await form.close()  # removes any spooled temporary file


def make_app(model, limits, model_name="colorgan", allowed_hosts=request_guard.LOOPBACK_NAMES):
    """The Starlette app: the page at /, the TF Serving REST API under /v1/models, POST /colorize, GET /server;
    behind the RequestGuard, which lets in only requests for `allowed_hosts` and none a browser sends for another
    site's page."""
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

    async def not_routed(request, error):
        """404 and 405 as TF Serving answers them: {"error": ...}, not Starlette's plain text."""
        return JSONResponse({"error": f"{error.detail}: {request.method} {request.url.path}"}, error.status_code)

    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_routed, 405: not_routed},
                     middleware=[Middleware(request_guard.RequestGuard, allowed_hosts=allowed_hosts)])
