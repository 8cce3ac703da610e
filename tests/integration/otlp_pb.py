"""The official OTLP messages for tests, compiled from the vendored proto/ files with protoc (Debian
protobuf-compiler) and the Python protobuf runtime (python3-protobuf): an encoder independent of ours."""

import gzip
import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import uuid

from google.protobuf import json_format

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_OUT = None


def _compile():
    global _OUT
    if _OUT is None:
        _OUT = tempfile.mkdtemp(prefix="depsera-otlp-pb-")
        proto = os.path.join(REPO, "proto")
        files = [os.path.relpath(os.path.join(d, f), proto)
                 for d, _, fs in os.walk(proto) for f in fs if f.endswith(".proto")]
        subprocess.run(["protoc", f"-I{proto}", f"--python_out={_OUT}"] + files, check=True)
        sys.path.insert(0, _OUT)
    return _OUT


def module(name):
    _compile()
    return importlib.import_module(name)


def trace_service():
    return module("opentelemetry.proto.collector.trace.v1.trace_service_pb2")


def metrics_service():
    return module("opentelemetry.proto.collector.metrics.v1.metrics_service_pb2")


def to_json(msg):
    """The OTLP JSON mapping of a message: lowerCamelCase, ids as hex (not base64), enums as ints."""
    d = json_format.MessageToDict(msg, use_integers_for_enums=True)

    def fix(o):
        if isinstance(o, dict):
            for k, v in list(o.items()):
                if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                    import base64
                    o[k] = base64.b64decode(v).hex()
                else:
                    fix(v)
        elif isinstance(o, list):
            for v in o:
                fix(v)
    fix(d)
    return d


def attr(key, value):
    kv = module("opentelemetry.proto.common.v1.common_pb2").KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = value
    return kv


def new_key():
    raw = "dps_" + uuid.uuid4().hex
    return raw, hashlib.sha256(raw.encode()).hexdigest()


def gz(data):
    return gzip.compress(data)
