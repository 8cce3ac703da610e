#!/bin/bash
# Benchmark of GET /api/services for a logged-in admin (the REST core's bar): 1,000 services in 50
# teams with 10,000 dependencies, wrk at concurrency 8, BENCH_RUNS runs of BENCH_DURATION seconds.
# Prints req/s, p50, p99 (medians over runs), the response size and SQL statements per request.
#   tests/bench/services.sh ./depsera
set -euo pipefail

BENCH_NAME=services
. "$(dirname "$0")/common.sh"
CONC=${BENCH_SERVICES_CONCURRENCY:-8}

log "seeding 50 teams, 1000 services, 10000 dependencies, 2000 associations"
psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" <<'SQL'
INSERT INTO teams (name, key) SELECT 'Team ' || t, 'team-' || t FROM generate_series(1, 50) t;
INSERT INTO services (name, team_id, health_endpoint, description)
SELECT 'service-' || s, (SELECT id FROM teams WHERE key = 'team-' || (1 + s % 50)),
       'https://svc' || s || '.example.com/health', 'Service number ' || s
FROM generate_series(1, 1000) s;
INSERT INTO dependencies (service_id, name, canonical_name, description, impact, type, healthy, health_state,
                          latency_ms, contact, last_checked, discovery_source)
SELECT s.id, 'dep-' || d, 'dep-' || d, 'Dependency ' || d, 'impact ' || d, 'database', d % 7 <> 0, (d % 7 = 0)::int * 2,
       5 + d % 40, jsonb_build_object('team', 'owners-' || d, 'slack', '#dep-' || d), now() - (d || ' seconds')::interval,
       'manual'
FROM services s, generate_series(1, 10) d;
INSERT INTO dependency_associations (dependency_id, linked_service_id, association_type)
SELECT d.id, (SELECT id FROM services ORDER BY id OFFSET (abs(hashtext(d.id::text)) % 1000) LIMIT 1), 'api_call'
FROM dependencies d WHERE d.name IN ('dep-1', 'dep-2')
ON CONFLICT DO NOTHING;
INSERT INTO dependency_canonical_overrides (canonical_name, contact_override, impact_override)
SELECT 'dep-' || d, jsonb_build_object('pager', 'p' || d), 'overridden' FROM generate_series(1, 5) d;
ANALYZE;
SQL

start_serve LOCAL_AUTH=true ADMIN_EMAIL=admin@example.com ADMIN_PASSWORD=bench-password

cookie=$(admin_cookie)
url="http://127.0.0.1:$port/api/services"

size=$(curl -sf -H "$cookie" "$url" -o "$WORK/services.json" -w '%{size_download}')
count=$(python3 -c "import json,sys; d=json.load(open('$WORK/services.json')); print(len(d), sum(len(s['dependencies']) for s in d))")
stmts=$(statements_per_request "$url" "$cookie")

results=()
for r in $(seq "$RUNS"); do
    wrk -t 2 -c "$CONC" -d 1 -H "$cookie" -s "$HERE/latency.lua" "$url" >/dev/null 2>&1 || true
    before=$(cpu_ticks)
    line=$(wrk -t 2 -c "$CONC" -d "$DURATION" --timeout 30s -H "$cookie" -s "$HERE/latency.lua" "$url" 2>&1 | grep '^RESULT')
    line="$line cpu_ticks=$(($(cpu_ticks) - before))"
    log "run $r/$RUNS: $line"
    results+=("$line")
done

printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics
rows = [dict(kv.split("=", 1) for kv in l.split()[1:]) for l in sys.stdin if l.strip()]
med = lambda k: statistics.median(float(r[k]) for r in rows)
rps, p50, p99 = med("rps"), med("p50_us") / 1000, med("p99_us") / 1000
errors = sum(int(r["errors"]) for r in rows)
hz = int(sys.argv[6])
cpu_ms = statistics.median(int(r["cpu_ticks"]) * 1000 / hz / max(1, int(r["requests"])) for r in rows)
print()
print("== GET /api/services, admin, %s services / %s dependencies, c=%s, median of %d runs ==" % (sys.argv[1], sys.argv[2], sys.argv[3], len(rows)))
print("req/s %.1f   p50 %.1f ms   p99 %.1f ms   errors %d" % (rps, p50, p99, errors))
print("response %s bytes   SQL statements per request (incl. the session lookup): %s" % (sys.argv[4], sys.argv[5]))
print("CPU per request (depsera workers + PostgreSQL backends): %.0f ms" % cpu_ms)
print("BAR req/s >= 16 (10x the original 1.6): %s" % ("PASS" if rps >= 16 else "FAIL"))
print("BAR p99 <= 3 x p50: %s (%.2f)" % ("PASS" if p99 <= 3 * p50 else "FAIL", p99 / p50 if p50 else 0))
sys.exit(1 if errors else 0)
' ${count} "$CONC" "$size" "$stmts" "$(getconf CLK_TCK)"
