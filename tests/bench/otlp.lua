-- wrk script for tests/bench/otlp.sh: POSTs protobuf+gzip OTLP bodies, rotating over the files
-- named in BENCH_BODIES (space-separated), with the API key in BENCH_KEY and the path in BENCH_PATH.
-- Prints one line: RESULT rps=<float> p50_us=<int> p99_us=<int> errors=<int> requests=<int> max_us=<int>
local bodies, n = {}, 0
for f in string.gmatch(os.getenv("BENCH_BODIES") or "", "%S+") do
  local h = assert(io.open(f, "rb"))
  table.insert(bodies, h:read("*a"))
  h:close()
end
local path = os.getenv("BENCH_PATH") or "/v1/traces"
local headers = {
  ["Content-Type"] = "application/x-protobuf",
  ["Content-Encoding"] = "gzip",
  ["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or ""),
}
-- BENCH_DELAY_MS > 0: each connection waits that long between requests (a rate below saturation)
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end
local threads = {}
non2xx = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  n = math.random(#bodies)
end

function request()
  n = n % #bodies + 1
  return wrk.format("POST", path, headers, bodies[n])
end

function response(status, headers, body)
  if status ~= 200 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local e, n2 = summary.errors, 0
  for _, t in ipairs(threads) do
    n2 = n2 + (tonumber(t:get("non2xx")) or 0)
  end
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT rps=%.1f p50_us=%d p99_us=%d errors=%d requests=%d max_us=%d\n",
    summary.requests / secs, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + math.max(e.status, n2), summary.requests, latency.max))
end
