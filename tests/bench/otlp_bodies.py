#!/usr/bin/env python3
"""Writes OTLP export requests for tests/bench/otlp.sh as protobuf+gzip files, one per service:
  otlp_bodies.py traces DIR SERVICES SPANS    ->  DIR/traces-<i>.pb.gz (SPANS spans each)
  otlp_bodies.py metrics DIR SERVICES DEPS    ->  DIR/metrics-<i>.pb.gz (a status gauge and a latency
                                                  histogram point per dependency: 2*DEPS data points)
Spans look like an instrumented web service's: one SERVER span per request and CLIENT spans to a
database, a cache and two HTTP services, each with the attributes SDKs set."""

import os
import random
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import otlp_pb  # noqa: E402

NOW = 1_764_000_000_000_000_000
CLIENTS = [
    [("db.system", "postgresql"), ("db.namespace", "orders"), ("db.operation.name", "SELECT"),
     ("db.collection.name", "items"), ("server.address", "pg.internal"), ("server.port", 5432)],
    [("db.system", "redis"), ("db.operation.name", "GET"), ("server.address", "cache.internal")],
    [("http.request.method", "GET"), ("server.address", "inventory"), ("url.path", "/v1/stock"),
     ("url.full", "http://inventory/v1/stock"), ("http.response.status_code", 200)],
    [("http.request.method", "POST"), ("server.address", "payments"), ("url.path", "/charge"),
     ("url.full", "http://payments/charge"), ("http.response.status_code", 201)],
]


def traces(service, n):
    tr = otlp_pb.module("opentelemetry.proto.trace.v1.trace_pb2")
    req = otlp_pb.trace_service().ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in (("service.name", service), ("service.version", "1.4.2"), ("host.name", "node-7"),
                 ("telemetry.sdk.language", "nodejs"), ("telemetry.sdk.name", "opentelemetry")):
        rs.resource.attributes.append(otlp_pb.attr(k, v))
    ss = rs.scope_spans.add()
    ss.scope.name = "@opentelemetry/instrumentation-http"
    for i in range(n):
        trace = uuid.uuid4().bytes
        client = i % 5 != 0
        attrs = CLIENTS[i % len(CLIENTS)] if client else [("http.request.method", "GET"), ("http.route", "/orders/:id"),
                                                         ("http.response.status_code", 200)]
        start = NOW + i * 1_000_000
        s = tr.Span(trace_id=trace, span_id=uuid.uuid4().bytes[:8], parent_span_id=uuid.uuid4().bytes[:8] if client else b"",
                    name="GET /orders/:id" if not client else "client call", kind=3 if client else 2,
                    start_time_unix_nano=start, end_time_unix_nano=start + random.randint(1, 40) * 1_000_000)
        for k, v in attrs:
            s.attributes.append(otlp_pb.attr(k, v))
        s.attributes.append(otlp_pb.attr("thread.id", i))
        ss.spans.append(s)
    return req


def metrics(service, deps):
    req = otlp_pb.metrics_service().ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(otlp_pb.attr("service.name", service))
    sm = rm.scope_metrics.add()
    g = sm.metrics.add(name="dependency.health.status")
    h = sm.metrics.add(name="dependency.latency", unit="ms")
    h.histogram.aggregation_temporality = 2
    for d in range(deps):
        p = g.gauge.data_points.add(as_int=d % 3 and 0 or 1, time_unix_nano=NOW)
        p.attributes.append(otlp_pb.attr("dependency.name", f"dep-{d}"))
        p.attributes.append(otlp_pb.attr("dependency.type", "rest"))
        q = h.histogram.data_points.add(time_unix_nano=NOW, count=100, sum=1234.5)
        q.explicit_bounds.extend([5, 10, 25, 50, 100, 250])
        q.bucket_counts.extend([10, 20, 30, 20, 10, 5, 5])
        q.attributes.append(otlp_pb.attr("dependency.name", f"dep-{d}"))
    return req


def main():
    kind, out, services, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    for i in range(services):
        req = traces(f"bench-service-{i}", n) if kind == "traces" else metrics(f"bench-service-{i}", n)
        with open(os.path.join(out, f"{kind}-{i}.pb.gz"), "wb") as f:
            f.write(otlp_pb.gz(req.SerializeToString()))


if __name__ == "__main__":
    main()
