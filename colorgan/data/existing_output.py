"""What a conversion finds in its output folder before writing, judged against what it would write (its flags and
its inputs' fingerprint): a finished dataset that is up to date, an unfinished one to resume, something in the way
that --overwrite may clear (only this tool's own files), or a manifest.json this tool did not write, never touched."""

import dataclasses
import json
import os

from colorgan.core import storage
from colorgan.data import dataset_manifest
from colorgan.data import records
from colorgan.data import shards

STATE_DIRNAME = ".make_tfrecords_state"
PLAN_FILENAME = "plan.json"


def state_dir(output_dir):
    """The folder where an unfinished conversion keeps its plan and its finished shards' records."""
    return os.path.join(output_dir, STATE_DIRNAME)


class OutputExistsError(ValueError):
    """The output directory holds other data and --overwrite was not given (or cannot replace it)."""


@dataclasses.dataclass(frozen=True)
class Found:
    """One of: `up_to_date` (the manifest of a finished dataset with this identity), `saved_plan` (the plan of an
    unfinished conversion with this identity, to resume), `conflict` (why the folder holds something else; never
    cleared when `foreign`), or none of them (nothing there yet)."""

    up_to_date: dict | None = None
    saved_plan: dict | None = None
    conflict: str | None = None
    foreign: bool = False


def inspect(output_dir, identity):
    """What `output_dir` holds, as a Found, for a conversion of `identity` ({"flags", "source_fingerprint"})."""
    kind, existing, why = _inspect_manifest(output_dir)
    path = records.manifest_path(output_dir)
    if kind == "foreign":
        return Found(conflict=f"holds {path}, which this tool did not write ({why})", foreign=True)
    if kind == "damaged":
        return Found(conflict=f"holds a damaged dataset manifest {path} ({why})")
    if kind == "other version":
        return Found(conflict=f"holds a dataset of another format ({why})")
    if kind == "ours":
        if _identity(existing) == identity:
            return Found(up_to_date=existing)
        return Found(conflict=f"holds a dataset made with other flags or inputs "
                              f"({_diff(_identity(existing), identity)})")
    plan = _read_plan(output_dir)
    if plan is shards.DAMAGED:
        return Found(conflict=f"holds an unfinished conversion whose plan "
                              f"{os.path.join(state_dir(output_dir), PLAN_FILENAME)} is damaged")
    if plan is not None and plan["identity"] != identity:
        return Found(conflict=f"holds an unfinished conversion with other flags or inputs "
                              f"({_diff(plan['identity'], identity)})")
    if plan is None and shard_files_present(output_dir):
        return Found(conflict="holds shard files without a manifest")
    return Found(saved_plan=plan)


def save_plan(output_dir, identity, num_shards):
    """Records the shard counts planned for `identity`, so a rerun writes the same shards."""
    records.write_json_atomic(os.path.join(state_dir(output_dir), PLAN_FILENAME),
                              {"identity": identity, "num_shards": num_shards})


def refuse_or_clear(output_dir, overwrite, log, why):
    """Without --overwrite nothing is touched; with it, only this tool's own files are removed (callers have made
    sure a manifest.json there is ours)."""
    if not overwrite:
        raise OutputExistsError(f"--output_dir={output_dir} {why}; pass --overwrite to replace it")
    log(f"--overwrite: replacing this tool's files: {output_dir} {why}")
    storage.remove(records.manifest_path(output_dir))  # First, so an interrupted overwrite never looks finished.
    storage.rmtree(state_dir(output_dir))
    for name in shard_files_present(output_dir):
        storage.remove(os.path.join(output_dir, name))


def _inspect_manifest(output_dir):
    """(kind, manifest, why) for the output's manifest.json. kind: None (absent); "ours" (a well-formed dataset
    manifest); "other version" and "damaged" (ours: --overwrite may replace it); "foreign" (never touched).

    Ours is told by our marker, `format_version`. A file that cannot be identified by its content (not JSON, not an
    object) counts as ours only in a folder that also holds our state folder or shard files: a manifest of ours is
    written atomically, so only a damaged disk or copy truncates it, and then its shards are around."""
    path = records.manifest_path(output_dir)
    if not storage.exists(path):
        return None, None, None
    if storage.isdir(path):
        return "foreign", None, "a directory"
    try:
        raw = storage.read_bytes(path)
    except OSError as e:
        return "foreign", None, f"unreadable: {e.strerror or e}"
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return _ours_by_context(output_dir, "not valid JSON: not UTF-8 text")
    except json.JSONDecodeError as e:
        return _ours_by_context(output_dir, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")
    if not isinstance(manifest, dict):
        return _ours_by_context(output_dir, f"a JSON {_json_kind(manifest)}")
    if "format_version" not in manifest:
        return "foreign", None, "a JSON object without format_version"
    if manifest["format_version"] != records.FORMAT_VERSION:
        return "other version", None, (f"format_version {manifest['format_version']!r}, this colorgan writes "
                                       f"{records.FORMAT_VERSION}")
    problem = dataset_manifest.manifest_problem(manifest)
    return ("damaged", None, problem) if problem else ("ours", manifest, None)


def _ours_by_context(output_dir, why):
    ours = storage.isdir(state_dir(output_dir)) or shard_files_present(output_dir)
    return ("damaged" if ours else "foreign"), None, why


def _json_kind(value):
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def _read_plan(output_dir):
    """The saved plan of an unfinished conversion: None (none), shards.DAMAGED, or {"identity", "num_shards"}."""
    plan = shards.read_json(os.path.join(state_dir(output_dir), PLAN_FILENAME))
    if plan is None or plan is shards.DAMAGED:
        return plan
    if not (isinstance(plan, dict) and isinstance(plan.get("identity"), dict)
            and isinstance(plan.get("num_shards"), dict)
            and all(shards.is_count(plan["num_shards"].get(split)) for split in records.SPLITS)):
        return shards.DAMAGED
    return plan


def _identity(manifest):
    return {"flags": manifest.get("flags"), "source_fingerprint": manifest.get("source", {}).get("fingerprint")}


def _diff(old_identity, new_identity):
    old_flags, new_flags = old_identity.get("flags") or {}, new_identity["flags"]
    changed = sorted(k for k in set(old_flags) | set(new_flags) if old_flags.get(k) != new_flags.get(k))
    if old_identity.get("source_fingerprint") != new_identity["source_fingerprint"]:
        changed.append("input files")
    return "differs in: " + ", ".join(changed)


def shard_files_present(output_dir):
    """The names of shard files in the output folder (finished or not)."""
    return [name for name in storage.listdir(output_dir) if records.is_shard_filename(name)]
