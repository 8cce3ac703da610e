// A real OpenTelemetry JS SDK client for tests/integration/test_otel_sdk.py.
//
// Sends, through the official OTLP/HTTP protobuf exporters with gzip compression (what collectors
// default to) and `Authorization: Bearer <key>`:
//   traces:  one trace of service DEPSERA_SERVICE_NAME: a SERVER root span and under it a CLIENT span
//            for an HTTP call, a CLIENT span for a PostgreSQL query and a PRODUCER span for a Kafka
//            publish, with fixed durations;
//   metrics: a histogram `http.client.request.duration` (unit s) and a counter, both for the
//            dependency DEPSERA_METRIC_DEPENDENCY (attribute dependency.name).
//
// Environment: DEPSERA_OTLP_ENDPOINT (e.g. http://127.0.0.1:8080, required), DEPSERA_API_KEY
// (required), DEPSERA_SERVICE_NAME, DEPSERA_METRIC_DEPENDENCY.
//
// stdout: one JSON object: the spans as the SDK exported them (ids in lowercase hex), the histogram
// point as the SDK exported it, every export result, every HTTP exchange with the server, and every
// diag message of level WARN or above.
// Exit status: 0 only if every export succeeded, every HTTP answer was 2xx, and the SDK logged no
// warning or error (a partial success, an undecodable response...); 1 otherwise, 2 on bad usage.

import { createRequire, syncBuiltinESMExports } from 'node:module';
import { diag, DiagLogLevel, SpanKind, SpanStatusCode, trace, ROOT_CONTEXT } from '@opentelemetry/api';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';

const endpoint = (process.env.DEPSERA_OTLP_ENDPOINT || '').replace(/\/+$/, '');
const apiKey = process.env.DEPSERA_API_KEY || '';
const serviceName = process.env.DEPSERA_SERVICE_NAME || 'otel-js-checkout';
const metricDependency = process.env.DEPSERA_METRIC_DEPENDENCY || 'payments-api';
if (!endpoint || !apiKey) {
  process.stderr.write('usage: DEPSERA_OTLP_ENDPOINT=http://host:port DEPSERA_API_KEY=dps_... node client.mjs\n');
  process.exit(2);
}

const problems = [];
process.on('unhandledRejection', (e) => {
  problems.push(`unhandled rejection: ${e && e.stack ? e.stack : e}`);
});

// ---------------------------------------------------------------------------------------------
// Everything the SDK says at WARN or above (e.g. "Received Partial Success response", "could not
// deserialize response", export errors reported by the span processor) is recorded.
const diagMessages = [];
diag.setLogger({
  error: (...a) => diagMessages.push({ level: 'error', message: a.map(String).join(' ') }),
  warn: (...a) => diagMessages.push({ level: 'warn', message: a.map(String).join(' ') }),
  info: () => {},
  debug: () => {},
  verbose: () => {},
}, DiagLogLevel.WARN);

// ---------------------------------------------------------------------------------------------
// Observe (never alter) the HTTP exchanges of the exporters: the transport takes `request` from
// the `http` builtin, so wrap it there and sync the ESM view of the builtin.
const exchanges = [];
{
  const require = createRequire(import.meta.url);
  const http = require('node:http');
  const original = http.request;
  http.request = function observedRequest(...args) {
    const req = original.apply(this, args);
    const url = args[0] instanceof URL ? args[0] : null;
    const ex = { path: url ? url.pathname : String(args[0]), sent_bytes: 0 };
    exchanges.push(ex);
    const write = req.write;
    req.write = function (chunk, ...rest) {
      if (chunk) ex.sent_bytes += Buffer.byteLength(chunk);
      return write.call(this, chunk, ...rest);
    };
    const end = req.end;
    req.end = function (chunk, ...rest) {
      if (chunk && typeof chunk !== 'function') ex.sent_bytes += Buffer.byteLength(chunk);
      return end.call(this, chunk, ...rest);
    };
    req.on('response', (res) => {
      ex.status = res.statusCode;
      ex.response_content_type = res.headers['content-type'] || null;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        ex.response_bytes = body.length;
        ex.response_body_hex = body.subarray(0, 512).toString('hex');
      });
    });
    req.on('error', (e) => { ex.error = String(e); });
    queueMicrotask(() => {
      ex.method = req.method;
      ex.request_headers = {
        'content-type': req.getHeader('content-type') || null,
        'content-encoding': req.getHeader('content-encoding') || null,
        authorization: String(req.getHeader('authorization') || '').replace(/ .*/, ' <key>'),
        'user-agent': req.getHeader('user-agent') || null,
      };
    });
    return req;
  };
  syncBuiltinESMExports();
}

// ---------------------------------------------------------------------------------------------
// Exporter wrappers: pass everything through, remember what was exported and the result.
class RecordingSpanExporter {
  constructor(inner) { this.inner = inner; this.results = []; this.spans = []; }
  export(spans, resultCallback) {
    this.inner.export(spans, (result) => {
      this.results.push({ code: result.code, items: spans.length,
        error: result.error ? String(result.error.stack || result.error) : null });
      if (result.code === 0) {
        for (const s of spans) {
          const ctx = s.spanContext();
          this.spans.push({
            name: s.name, kind: s.kind, trace_id: ctx.traceId, span_id: ctx.spanId, // lowercase hex
            parent_span_id: s.parentSpanContext ? s.parentSpanContext.spanId : null,
          });
        }
      }
      resultCallback(result);
    });
  }
  forceFlush() { return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve(); }
  shutdown() { return this.inner.shutdown(); }
}

class RecordingMetricExporter {
  constructor(inner) { this.inner = inner; this.results = []; this.exported = []; }
  export(resourceMetrics, resultCallback) {
    this.inner.export(resourceMetrics, (result) => {
      this.results.push({ code: result.code,
        error: result.error ? String(result.error.stack || result.error) : null });
      if (result.code === 0) this.exported.push(resourceMetrics);
      resultCallback(result);
    });
  }
  selectAggregationTemporality(t) { return this.inner.selectAggregationTemporality(t); }
  selectAggregation(t) { return this.inner.selectAggregation(t); }
  forceFlush() { return this.inner.forceFlush(); }
  shutdown() { return this.inner.shutdown(); }
}

const exporterOptions = (path) => ({
  url: `${endpoint}${path}`,
  headers: { Authorization: `Bearer ${apiKey}` },
  compression: 'gzip',
  timeoutMillis: 15000,
});

// as the NodeSDK builds it: the SDK's default resource (telemetry.sdk.*) merged with the service's
const resource = defaultResource().merge(resourceFromAttributes({
  'service.name': serviceName,
  'service.version': '1.4.2',
  'deployment.environment.name': 'test',
}));

// ---------------------------------------------------------------------------------------------
// Traces
const spanExporter = new RecordingSpanExporter(new OTLPTraceExporter(exporterOptions('/v1/traces')));
const tracerProvider = new BasicTracerProvider({
  resource,
  spanProcessors: [new BatchSpanProcessor(spanExporter, { scheduledDelayMillis: 60000 })],
});
const tracer = tracerProvider.getTracer('depsera-otel-sdk-test', '1.0.0');

const t0 = Date.now() - 1000; // ms; fixed offsets below make the durations exact
const root = tracer.startSpan('POST /checkout', {
  kind: SpanKind.SERVER, startTime: t0,
  attributes: { 'http.request.method': 'POST', 'url.path': '/checkout', 'http.route': '/checkout' },
});
const parent = trace.setSpan(ROOT_CONTEXT, root);

const httpSpan = tracer.startSpan('GET', {
  kind: SpanKind.CLIENT, startTime: t0 + 10,
  attributes: {
    'http.request.method': 'GET',
    'server.address': 'inventory.internal',
    'server.port': 8080,
    'url.full': 'http://inventory.internal:8080/items/42?verbose=1',
    'url.path': '/items/42',
    'http.response.status_code': 200,
    'network.protocol.version': '1.1',
  },
}, parent);
httpSpan.setStatus({ code: SpanStatusCode.UNSET });
httpSpan.end(t0 + 10 + 40);

const dbSpan = tracer.startSpan('SELECT orders.items', {
  kind: SpanKind.CLIENT, startTime: t0 + 60,
  attributes: {
    'db.system.name': 'postgresql',
    'db.namespace': 'orders',
    'db.collection.name': 'items',
    'db.operation.name': 'SELECT',
    'db.query.text': 'SELECT id, qty FROM items WHERE order_id = $1',
    'server.address': 'pg.internal',
    'server.port': 5432,
  },
}, parent);
dbSpan.end(t0 + 60 + 12);

const kafkaSpan = tracer.startSpan('send orders', {
  kind: SpanKind.PRODUCER, startTime: t0 + 80,
  attributes: {
    'messaging.system': 'kafka',
    'messaging.operation.type': 'send',
    'messaging.operation.name': 'send',
    'messaging.destination.name': 'orders',
    'messaging.kafka.message.key': 'order-42',
    'server.address': 'kafka.internal',
  },
}, parent);
kafkaSpan.end(t0 + 80 + 5);

root.end(t0 + 100);

// ---------------------------------------------------------------------------------------------
// Metrics
const metricExporter = new RecordingMetricExporter(new OTLPMetricExporter(exporterOptions('/v1/metrics')));
const meterProvider = new MeterProvider({
  resource,
  readers: [new PeriodicExportingMetricReader({
    exporter: metricExporter, exportIntervalMillis: 60000, exportTimeoutMillis: 30000 })],
});
const meter = meterProvider.getMeter('depsera-otel-sdk-test', '1.0.0');
const duration = meter.createHistogram('http.client.request.duration', {
  unit: 's',
  description: 'Duration of HTTP client requests.',
  advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] },
});
const requests = meter.createCounter('dependency.requests', { description: 'Requests sent.' });
const attrs = { 'dependency.name': metricDependency, 'dependency.type': 'rest', 'http.request.method': 'POST' };
const samples = [[10, 0.003], [60, 0.008], [25, 0.02], [5, 0.3]]; // [how many, seconds]
for (const [n, v] of samples) {
  for (let i = 0; i < n; i++) duration.record(v, attrs);
}
requests.add(100, attrs);

// ---------------------------------------------------------------------------------------------
// Export everything, then report.
const steps = [
  ['tracer provider forceFlush', () => tracerProvider.forceFlush()],
  ['tracer provider shutdown', () => tracerProvider.shutdown()],
  // collects and exports once, then shuts the exporter down
  ['meter provider shutdown', () => meterProvider.shutdown()],
];
for (const [what, step] of steps) {
  try {
    await step();
  } catch (e) {
    problems.push(`${what} failed: ${e && e.message ? e.message : e}`);
  }
}

let histogram = null;
for (const rm of metricExporter.exported) {
  for (const sm of rm.scopeMetrics) {
    for (const m of sm.metrics) {
      if (m.descriptor.name === 'http.client.request.duration' && m.dataPoints.length) {
        const v = m.dataPoints[0].value;
        histogram = { unit: m.descriptor.unit, bounds: v.buckets.boundaries, counts: v.buckets.counts,
          count: v.count, sum: v.sum, min: v.min, max: v.max, points: m.dataPoints.length };
      }
    }
  }
}

const created = [root, httpSpan, dbSpan, kafkaSpan].map((s) => s.spanContext().spanId);
const exportedIds = spanExporter.spans.map((s) => s.span_id);
for (const r of [...spanExporter.results, ...metricExporter.results]) {
  if (r.code !== 0) problems.push(`export failed: ${r.error}`);
}
if (spanExporter.results.length === 0) problems.push('no span export happened');
if (metricExporter.results.length === 0) problems.push('no metric export happened');
if (created.some((id) => !exportedIds.includes(id))) problems.push('not every span was exported');
if (!histogram) problems.push('the histogram was not exported');
for (const ex of exchanges) {
  if (!(ex.status >= 200 && ex.status <= 299)) problems.push(`HTTP ${ex.method} ${ex.path}: ${ex.status ?? ex.error}`);
}
for (const d of diagMessages) problems.push(`SDK ${d.level}: ${d.message}`);

process.stdout.write(JSON.stringify({
  node: process.version,
  service: serviceName,
  trace_id: root.spanContext().traceId,
  spans: spanExporter.spans,
  span_exports: spanExporter.results,
  metric_exports: metricExporter.results,
  histogram,
  exchanges,
  diag: diagMessages,
  problems,
}) + '\n');
if (problems.length) {
  process.stderr.write(`otel-js client: ${problems.length} problem(s):\n${problems.join('\n')}\n`);
  process.exitCode = 1;
}
