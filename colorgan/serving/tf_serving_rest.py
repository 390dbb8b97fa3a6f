"""TensorFlow Serving's REST API as our service speaks it: predict requests (row or columnar, the input named or
not) in, its response and error shapes out, so one client works against TF Serving running the export and against
launch/serve.py alike. Pure mapping: no model, no HTTP server."""

import base64
import binascii
import os

from google.protobuf import json_format
from starlette.responses import JSONResponse

from colorgan.inference import export
from colorgan.inference import hint_points

BYTES_SIGNATURE = "serving_default"
BYTES_KEY = "image_bytes"  # the bytes signature's input and output name (its `_bytes` suffix means base64 in JSON)
HINTS_SIGNATURE = export.SERVING_HINTS_SIGNATURE  # the bytes signature with a person's points (--hints models)
HINT_KEYS = ("hint_xy", "hint_rgb", "hint_mask")


class ServingError(Exception):
    """A request answered with `status` and TF Serving's error shape, {"error": message} on one line."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.headers = status, headers

    def response(self):
        return JSONResponse({"error": " ".join(str(self).split())}, self.status, headers=self.headers)


def version_of(export_dir):
    """TF Serving's version of an export: its folder's number (BASE/VERSION), else 1."""
    name = os.path.basename(os.path.normpath(export_dir))
    return str(int(name)) if name.isdigit() else "1"


def check_model(name, version, served_name, served_version):
    """The 404 TF Serving answers for a model name or version it does not serve."""
    if name != served_name:
        raise ServingError(404, f"Servable not found for request: Latest({name})")
    if version is not None and version != served_version:
        raise ServingError(404, f"Servable not found for request: Specific({name}, {version})")


def photos_from_predict(payload, hints_served=False):
    """TF Serving's predict request (row or columnar, the input named or not) -> (encoded photos, response key, a
    hint_points.Hints per photo or None). signature_name "serving_hints" (served when `hints_served`) takes, beside
    each photo, hint_xy [k, 2], hint_rgb [k, 3] (0-255) and hint_mask [k] (0 for padding)."""
    if not isinstance(payload, dict):
        raise ServingError(400, "JSON Value is not an object")
    signature = payload.get("signature_name", BYTES_SIGNATURE) or BYTES_SIGNATURE
    if signature not in (BYTES_SIGNATURE, *((HINTS_SIGNATURE,) if hints_served else ())):
        raise ServingError(400, f'Serving signature name: "{signature}" not found in signature def')
    if ("instances" in payload) == ("inputs" in payload):
        raise ServingError(400, "Missing 'inputs' or 'instances' key" if "instances" not in payload else
                           "Both 'inputs' and 'instances' keys are present")
    key = "instances" if "instances" in payload else "inputs"
    if signature == HINTS_SIGNATURE:
        rows = _hint_rows(payload[key], key)
        return [_photo(row[BYTES_KEY], key) for row in rows], _response_key(key), [_hints(row) for row in rows]
    values = payload[key]
    if key == "inputs" and isinstance(values, dict) and set(values) == {BYTES_KEY}:
        values = values[BYTES_KEY]
    if not isinstance(values, list) or not values:
        raise ServingError(400, f"'{key}' must be a non-empty list of {{\"b64\": ...}} images")
    photos = [_photo(value[BYTES_KEY] if isinstance(value, dict) and set(value) == {BYTES_KEY} else value, key)
              for value in values]
    return photos, _response_key(key), None


def _response_key(key):
    return "predictions" if key == "instances" else "outputs"


def _photo(value, key):
    if not (isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str)):
        raise ServingError(400, f'each of \'{key}\' must be {{"b64": "<base64 image>"}} or '
                                f'{{"{BYTES_KEY}": {{"b64": ...}}}}')
    try:
        return base64.b64decode(value["b64"], validate=True)
    except binascii.Error as e:
        raise ServingError(400, f"Unable to base64 decode: {e}") from None


def _hint_rows(values, key):
    """serving_hints' inputs as rows {image_bytes, hint_xy, hint_rgb, hint_mask}, from either format."""
    expected = {BYTES_KEY, *HINT_KEYS}
    if key == "inputs":  # columnar: each input a list over the photos
        if not (isinstance(values, dict) and set(values) == expected and all(
                isinstance(values[name], list) for name in expected)
                and len({len(values[name]) for name in expected}) == 1):
            raise ServingError(400, f"'inputs' of {HINTS_SIGNATURE} must be an object of {sorted(expected)}, each "
                                    "a list with one entry per photo")
        values = [dict(zip(expected, entries)) for entries in zip(*(values[name] for name in expected))]
    if not isinstance(values, list) or not values or not all(
            isinstance(row, dict) and set(row) == expected for row in values):
        raise ServingError(400, f"'{key}' of {HINTS_SIGNATURE} must be a non-empty list of objects with "
                                f"{sorted(expected)}")
    return values


def _hints(row):
    try:
        return hint_points.from_arrays(row["hint_xy"], row["hint_rgb"], row["hint_mask"])
    except ValueError as e:
        raise ServingError(400, f"{HINTS_SIGNATURE}: {e}") from None


def predict_response(pngs, key):
    """The predict response: each PNG base64-encoded under the request's key ("predictions" or "outputs")."""
    return {key: [{"b64": base64.b64encode(png).decode("ascii")} for png in pngs]}


def status_response(version):
    """GetModelStatusResponse as TF Serving's REST API writes it."""
    return {"model_version_status": [{"version": version, "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}


def metadata_response(name, version, signature_defs):
    """GetModelMetadataResponse as TF Serving's REST API writes it, from the export's SignatureDef protos."""
    signature_defs = {key: json_format.MessageToDict(value, preserving_proto_field_name=True,
                                                     always_print_fields_with_no_presence=True)
                      for key, value in signature_defs.items()}
    return {"model_spec": {"name": name, "signature_name": "", "version": version},
            "metadata": {"signature_def": {"signature_def": signature_defs}}}
