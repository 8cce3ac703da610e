-- wrk script for depsera's benchmark harness (tests/bench/run.sh).
--
-- Prints exactly one machine-readable line from done():
--   RESULT rps=<float> p50_us=<int> p99_us=<int> errors=<int> requests=<int>
--          connect=<n> read=<n> write=<n> timeout=<n> status=<n> non2xx=<n>
--          duration_us=<int>
-- so that run.sh never parses wrk's human-readable output.
--
-- Request shape comes from the environment (set by run.sh's bench_target):
--   BENCH_METHOD    HTTP method (default GET)
--   BENCH_BODYFILE  file whose contents are sent as the request body
--   BENCH_STRICT    default on: every non-2xx response counts as an error
--                   (a Lua response() callback per request; its cost was
--                   lost in the noise when measured). "0" falls back to
--                   wrk's own count, which only sees status > 399.
-- Extra headers are passed to wrk with -H by run.sh.

local method = os.getenv("BENCH_METHOD")
if method and method ~= "" then
  wrk.method = method
end

local bodyfile = os.getenv("BENCH_BODYFILE")
if bodyfile and bodyfile ~= "" then
  local f = assert(io.open(bodyfile, "rb"))
  wrk.body = f:read("*a")
  f:close()
end

local strict = os.getenv("BENCH_STRICT") ~= "0"

-- Per-thread counter of responses whose status is not 2xx (strict mode only).
non2xx = 0

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  -- Pre-build the request once per thread (what wrk's default init does).
  req = wrk.format()
  if not strict then
    -- A nil response global tells wrk not to hand headers/bodies to Lua.
    response = nil
  end
end

function request()
  return req
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local n2 = 0
  for _, t in ipairs(threads) do
    n2 = n2 + (tonumber(t:get("non2xx")) or 0)
  end
  local status_err = e.status
  if strict then
    -- non2xx already includes every status > 399 that wrk counted.
    status_err = math.max(e.status, n2)
  end
  local errors = e.connect + e.read + e.write + e.timeout + status_err
  local secs = summary.duration / 1e6
  local rps = 0
  if secs > 0 then rps = summary.requests / secs end
  io.write(string.format(
    "RESULT rps=%.1f p50_us=%d p99_us=%d errors=%d requests=%d " ..
    "connect=%d read=%d write=%d timeout=%d status=%d non2xx=%d duration_us=%d\n",
    rps, latency:percentile(50), latency:percentile(99), errors,
    summary.requests, e.connect, e.read, e.write, e.timeout, e.status, n2,
    summary.duration))
end
