/* GET /api/graph: the dependency graph, built from two or three statements whatever its size (and
 * the full graph's averages snapshot now and then, graph_avg.c) and written as text straight from
 * their results (graph-and-api.md §6, open-questions.md A, B, D24, D25). */
#include "depsera/api_graph.h"
#include "depsera/graph_avg.h"
#include "depsera/graph_cache.h"
#include "depsera/compress.h"
#include "depsera/http.h"
#include "depsera/jsonbuf.h"
#include "depsera/session.h"
#include "depsera/unicase.h"
#include "depsera/util.h"

#include <limits.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- SQL ---------------------------------------------------------------------------------------- */

/* Dismissed suggestions are not associations (open-questions.md A): they give no edge, and their
 * dependency counts as one without association (an external node). */
#define ASSOCIATIONS "dependency_associations a ON a.dependency_id = d.id AND NOT a.is_dismissed"

/* The canonical name is the alias of the reported name as it is now, not as it was at the last poll
 * (D24: alias edits take effect at once; the upsert takes canonical_name from the same table). The
 * canonical override is the owning team's row for it, else the global row (D25, data-model.md §8).
 * effectiveContact merges the objects among contact, that override's contact and the instance
 * override (later keys win); NULL when none is an object. */
#define IS_OBJECT(x) "jsonb_typeof(" x ") = 'object'"
#define AS_OBJECT(x) "CASE WHEN " IS_OBJECT(x) " THEN " x " ELSE '{}'::jsonb END"
#define EFFECTIVE_CONTACT                                                                                                          \
    "CASE WHEN " IS_OBJECT("co.contact") " OR " IS_OBJECT("d.contact_override") " THEN " AS_OBJECT("d.contact") " || " AS_OBJECT(  \
        "co.contact") " || " AS_OBJECT("d.contact_override") " WHEN " IS_OBJECT("d.contact") " THEN d.contact END"
#define CANONICAL_OVERRIDE                                                                                                         \
    "LEFT JOIN dependency_aliases al ON al.alias = d.name "                                                                        \
    "LEFT JOIN dependency_canonical_overrides ct ON ct.team_id = s.team_id AND ct.canonical_name = al.canonical_name "             \
    "LEFT JOIN dependency_canonical_overrides cg ON cg.team_id IS NULL AND cg.canonical_name = al.canonical_name "                 \
    "CROSS JOIN LATERAL (SELECT CASE WHEN ct.id IS NULL THEN cg.contact_override ELSE ct.contact_override END AS contact) co "

/* A dependency's 24 h average from its raw rows: only the (dependency_id, recorded_at, latency_ms)
 * index (migration 002), rounded half away from zero as the original's SQLite ROUND (numeric: round()
 * of a double rounds half to even). */
#define AVG_RAW                                                                                                                    \
    "(SELECT round(avg(h.latency_ms)::numeric) FROM dependency_latency_history h WHERE h.dependency_id = d.id "                    \
    "AND h.recorded_at >= now() - interval '24 hours')"

/* The dependency rows of §6.1 (one per association, one without), unordered: order_rows sorts them.
 * Aliased columns are the edge's data members, written under their alias. `avg` is the average
 * column, `snapshot` the three columns graph_avg.c reads with it, `joins` what they need. */
#define ROWS_SQL(with, avg, snapshot, joins, scope)                                                                                \
    with "SELECT d.type AS \"dependencyType\", d.name AS \"dependencyName\", al.canonical_name AS \"canonicalName\", "             \
         "d.id AS \"dependencyId\", d.healthy, d.latency_ms AS \"latencyMs\", " avg " AS \"avgLatencyMs24h\", "                    \
         "a.association_type AS \"associationType\", "                                                                             \
         "d.check_details, d.error, d.error_message AS \"errorMessage\", d.impact, " EFFECTIVE_CONTACT                             \
         " AS \"effectiveContact\", "                                                                                              \
         "d.skipped, d.discovery_source AS \"discoverySource\", COALESCE(a.is_auto_suggested, false) AS \"isAutoSuggested\", "     \
         "a.id, d.service_id, a.linked_service_id, " snapshot " "                                                                  \
         "FROM dependencies d JOIN services s ON s.id = d.service_id " CANONICAL_OVERRIDE "LEFT JOIN " ASSOCIATIONS " " joins      \
         " WHERE " scope
#define RAW_ROWS_SQL(with, scope) ROWS_SQL(with, AVG_RAW, "NULL::boolean, NULL::bigint, NULL::text", "", scope)

/* The full graph's averages (graph_avg.h): $1 is the snapshot's B, $2 its epoch. A row's average is
 * the snapshot's plus the rows from B on (dn, ds) less those of [B - 24 h, now() - 24 h), which left
 * the window: two range scans of the recorded_at index (migration 006) of some minutes each. The
 * first column after them says whether the epoch is still $2; when it is not, the rows are read
 * again with AVG_RAW (a CASE choosing between the two would have the planner cost AVG_RAW for every
 * row, and past jit_above_cost compile the statement for a second). */
#define DS_HEX DPS_GRAPH_AVG_HEX("sum(x.ms)")
#define CORRECTIONS                                                                                                                \
    "SELECT x.dependency_id, sum(x.k) AS dn, " DS_HEX " AS ds FROM (SELECT h.dependency_id, -1 AS k, -h.latency_ms AS ms "         \
    "FROM dependency_latency_history h WHERE h.recorded_at >= to_timestamp($1::bigint) - interval '24 hours' "                     \
    "AND h.recorded_at < now() - interval '24 hours' UNION ALL SELECT h.dependency_id, 1, h.latency_ms "                           \
    "FROM dependency_latency_history h WHERE h.recorded_at >= to_timestamp($1::bigint)) x GROUP BY 1"
#define SNAPSHOT_ROWS_SQL(scope)                                                                                                   \
    ROWS_SQL("", "NULL::numeric", "(SELECT epoch = $2::bigint FROM latency_history_epoch), c.dn, c.ds",                            \
             "LEFT JOIN (" CORRECTIONS ") c ON c.dependency_id = d.id", scope)

/* Columns of ROWS_SQL, in the order of an edge's data. */
enum {
    R_TYPE, /* R_TYPE..R_ASSOC_TYPE: always written (R_AVG through graph_avg.c) */
    R_NAME,
    R_CANONICAL,
    R_DEP_ID,
    R_HEALTHY,
    R_LATENCY,
    R_AVG,
    R_ASSOC_TYPE,
    R_CHECK_DETAILS, /* written when not NULL */
    R_ERROR,         /* written when not NULL */
    R_ERROR_MESSAGE, /* R_ERROR_MESSAGE..R_CONTACT: always written */
    R_IMPACT,
    R_CONTACT,
    R_SKIPPED, /* written when true */
    R_SOURCE,  /* R_SOURCE..R_AUTO: always written */
    R_AUTO,
    R_ASSOC_ID, /* written when not NULL */
    R_SERVICE,  /* the consumer: the edge's target */
    R_TARGET,   /* the associated service: the edge's source */
    R_SNAP_OK,  /* R_SNAP_OK..R_SNAP_DS: for graph_avg.c */
    R_SNAP_DN,
    R_SNAP_DS,
};

/* The service subgraph walks upstream from a service over associations, whatever the state of the
 * services it reaches (§6.1); UNION drops services already reached, so cycles end. */
#define WALK(start)                                                                                                                \
    "WITH RECURSIVE walk(id) AS (" start " UNION SELECT a.linked_service_id FROM walk w JOIN dependencies d "                      \
    "ON d.service_id = w.id JOIN " ASSOCIATIONS ") "
#define IN_WALK "s.id IN (SELECT id FROM walk)"

/* The service nodes: those of the mode (`base`) and the services that rows target (TARGETS: a uuid[]
 * parameter), any state. Aliased columns are written under their alias. */
#define SERVICES_SQL(base, where)                                                                                                  \
    "SELECT s.id, s.name AS \"name\", s.team_id AS \"teamId\", t.name AS \"teamName\", s.health_endpoint AS \"healthEndpoint\", "  \
    "s.is_active AS \"isActive\", s.last_poll_success AS \"lastPollSuccess\", s.last_poll_error AS \"lastPollError\", "            \
    "s.is_external, " base " AS base FROM services s JOIN teams t ON t.id = s.team_id WHERE " where                                \
    " ORDER BY s.name COLLATE \"C\", s.id"
#define TARGETS(n) "s.id = ANY ($" #n "::uuid[])"
#define TEAM_BASE "(s.is_active AND s.team_id = $1::uuid)"
#define FULL_BASE "(s.is_active AND NOT s.is_external)"

/* Columns of SERVICES_SQL. */
enum {
    S_ID,
    S_NAME, /* S_NAME..S_ACTIVE: written */
    S_TEAM,
    S_TEAM_NAME,
    S_ENDPOINT,
    S_ACTIVE,
    S_POLL_OK, /* S_POLL_OK..S_POLL_ERROR: written */
    S_POLL_ERROR,
    S_EXTERNAL,
    S_BASE,
};

/* Enrichment of external nodes (§6.2): a table of a few rows, matched in C (JavaScript lower-casing).
 * In name order, so that of two rows with one key the last wins, as in the original's map. */
#define ENRICHMENT_SQL                                                                                                             \
    "SELECT canonical_name, display_name, service_type, description, impact, contact FROM external_node_enrichment "               \
    "ORDER BY canonical_name COLLATE \"C\", id"
enum { E_NAME, E_DISPLAY, E_TYPE, E_DESCRIPTION, E_IMPACT, E_CONTACT };

/* The query variants of §6, in the order the first present parameter is looked for. */
enum walk { NO_WALK, WALK_FROM_DEPENDENCY, WALK_FROM_SERVICE };

typedef struct {
    const char *param;        /* the query parameter naming the id; NULL for the full graph */
    const char *rows, *nodes; /* rows: $1 = the id, or the full graph's graph_avg.c parameters; nodes: see SERVICES_SQL */
    enum walk walk;           /* a service subgraph: $1 of `nodes` is the start and the targets */
} graph_mode_t;

static const graph_mode_t modes[] = {
    {"dependency", RAW_ROWS_SQL(WALK("SELECT d0.service_id FROM dependencies d0 WHERE d0.id = $1::uuid"), IN_WALK),
     SERVICES_SQL("true", TARGETS(1)), WALK_FROM_DEPENDENCY},
    {"service", RAW_ROWS_SQL(WALK("SELECT $1::uuid"), IN_WALK), SERVICES_SQL("true", TARGETS(1)), WALK_FROM_SERVICE},
    {"team", RAW_ROWS_SQL("", "s.is_active AND s.team_id = $1::uuid"), SERVICES_SQL(TEAM_BASE, TEAM_BASE " OR " TARGETS(2)),
     NO_WALK},
    {NULL, SNAPSHOT_ROWS_SQL("s.is_active"), SERVICES_SQL(FULL_BASE, FULL_BASE " OR " TARGETS(1)), NO_WALK},
};

/* The full graph's rows when its snapshot cannot serve. */
static const char full_raw_rows[] = RAW_ROWS_SQL("", "s.is_active");

/* ---- a string map of fixed capacity (keys are not copied) --------------------------------------- */

typedef struct {
    const char **key;
    int *val;
    size_t mask;
} strmap_t;

static void *pool_alloc(dps_req_t *r, size_t n)
{
    return h2o_mem_alloc_pool(&r->h2o->pool, n > 0 ? n : 1);
}

static void strmap_init(dps_req_t *r, strmap_t *m, size_t most)
{
    size_t cap = 16;

    while (cap < most * 2)
        cap *= 2;
    m->key = pool_alloc(r, cap * sizeof(*m->key));
    m->val = pool_alloc(r, cap * sizeof(*m->val));
    memset(m->key, 0, cap * sizeof(*m->key));
    m->mask = cap - 1;
}

/* The slot holding key, or the empty one where it goes (linear probing). The hash takes eight bytes
 * at a time: keys are uuids and edge ids of some 80 bytes, hashed some 40,000 times a graph. */
static size_t strmap_slot(const strmap_t *m, const char *key)
{
    size_t n = strlen(key), i = 0;
    uint64_t h = n * 0x9e3779b97f4a7c15u, w;

    for (; i + 8 <= n; i += 8) {
        memcpy(&w, key + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, key + i, n - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
    h ^= h >> 29;
    for (i = (size_t)h & m->mask;; i = (i + 1) & m->mask)
        if (m->key[i] == NULL || strcmp(m->key[i], key) == 0)
            return i;
}

static int strmap_get(const strmap_t *m, const char *key)
{
    size_t i = strmap_slot(m, key);

    return m->key[i] != NULL ? m->val[i] : -1;
}

/* Adds key -> val unless key is there; returns the value it had (-1: it was added). */
static int strmap_add(strmap_t *m, const char *key, int val)
{
    size_t i = strmap_slot(m, key);

    if (m->key[i] != NULL)
        return m->val[i];
    m->key[i] = key, m->val[i] = val;
    return -1;
}

/* ---- the graph ------------------------------------------------------------------------------------ */

/* A node: a service (a row of the services result) or an external node (a group of rows without
 * association). */
typedef struct {
    int svc; /* row of the services result, -1 for an external node */
    int own; /* a service of the mode: counts over its own dependencies, not those targeting it */
    int pos; /* place among the nodes written; -1 until placed */
    int deps, healthy, unhealthy, skipped, discovered;
    int first, last; /* the positions of the rows targeting it (or of its group), linked by next[] */
    int type_pos;    /* the position of the row whose type is serviceType, -1 for none */
    const char *id;  /* external: "external-" and 12 hex digits */
    const char *key; /* external: the group key; name_pos: the group's first row */
    int name_pos, enrich;
} node_t;

typedef struct {
    dps_req_t *r;
    const graph_mode_t *mode;
    const char *id;    /* the query's id in lower case, NULL for the full graph */
    const char *start; /* a walk's first service */
    const PGresult *rows, *svcs, *enrich;
    int nrows, nservices, nnodes, nplaced;
    int *order;    /* position -> row, in output order */
    int *consumer; /* row -> node of its service, or -1 */
    int *target;   /* row -> node of its associated service, or -1 (none, or not a node) */
    int *source;   /* row -> node its edge comes from, or -1 */
    int *next;     /* position -> next position of the same node's list, or -1 */
    node_t *node;  /* services (nservices), then external nodes */
    int *placed;   /* place -> node */
    strmap_t ids;  /* node id -> node */
} graph_t;

static const char *val(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

static int is_true(const PGresult *res, int row, int col)
{
    return !PQgetisnull(res, row, col) && PQgetvalue(res, row, col)[0] == 't';
}

/* Counts a dependency row into a node (§6.2: skipped first, then healthy, then unhealthy). */
static void count_row(node_t *n, const PGresult *res, int row)
{
    const char *healthy = val(res, row, R_HEALTHY);

    n->deps++;
    if (is_true(res, row, R_SKIPPED))
        n->skipped++;
    else if (healthy != NULL && healthy[0] == 't')
        n->healthy++;
    else if (healthy != NULL)
        n->unhealthy++;
    n->discovered += strcmp(PQgetvalue(res, row, R_SOURCE), "otlp_trace") == 0;
}

/* Appends a position to a node's list. */
static void list_add(graph_t *g, node_t *n, int pos)
{
    g->next[pos] = -1;
    if (n->first < 0)
        n->first = pos;
    else
        g->next[n->last] = pos;
    n->last = pos;
}

/* A row's type (NULL first) and position. */
typedef struct {
    const char *type;
    int pos;
} typed_t;

static int same_type(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static int typed_cmp(const void *x, const void *y)
{
    const typed_t *p = x, *q = y;
    int c = p->type == NULL || q->type == NULL ? (q->type == NULL) - (p->type == NULL) : strcmp(p->type, q->type);

    return c != 0 ? c : (p->pos > q->pos) - (p->pos < q->pos);
}

/* serviceType of §6.2: the most frequent type among a node's list of rows; of equally frequent types,
 * the one met first (the original's insertion-ordered map). The position of a row of that type, or -1
 * for an empty list. */
static int dominant_type(graph_t *g, const node_t *n)
{
    int k = 0, best = -1, best_count = 0;
    typed_t *t;

    for (int p = n->first; p >= 0; p = g->next[p])
        k++;
    if (k == 0)
        return -1;
    t = pool_alloc(g->r, sizeof(*t) * (size_t)k);
    k = 0;
    for (int p = n->first; p >= 0; p = g->next[p])
        t[k++] = (typed_t){val(g->rows, g->order[p], R_TYPE), p};
    qsort(t, (size_t)k, sizeof(*t), typed_cmp);
    for (int i = 0, j; i < k; i = j) { /* runs of one type, each starting at its first position */
        for (j = i + 1; j < k && same_type(t[i].type, t[j].type); j++)
            ;
        if (j - i > best_count || (j - i == best_count && t[i].pos < best))
            best = t[i].pos, best_count = j - i;
    }
    return best;
}

/* ---- nodes and the order of rows ------------------------------------------------------------------ */

static void place(graph_t *g, int n)
{
    if (g->node[n].pos < 0) {
        g->node[n].pos = g->nplaced;
        g->placed[g->nplaced++] = n;
    }
}

/* The service nodes, from the services result (in name order), and each row's consumer and target. */
static void add_services(graph_t *g)
{
    g->nservices = PQntuples(g->svcs);
    g->node = pool_alloc(g->r, sizeof(*g->node) * (size_t)(g->nservices + g->nrows));
    g->placed = pool_alloc(g->r, sizeof(*g->placed) * (size_t)(g->nservices + g->nrows));
    strmap_init(g->r, &g->ids, (size_t)(g->nservices + g->nrows));
    for (int i = 0; i < g->nservices; i++) {
        g->node[i] = (node_t){.svc = i, .own = is_true(g->svcs, i, S_BASE), .pos = -1, .first = -1, .last = -1, .enrich = -1};
        strmap_add(&g->ids, PQgetvalue(g->svcs, i, S_ID), i);
    }
    g->nnodes = g->nservices;
    g->consumer = pool_alloc(g->r, sizeof(int) * (size_t)g->nrows);
    g->target = pool_alloc(g->r, sizeof(int) * (size_t)g->nrows);
    g->source = pool_alloc(g->r, sizeof(int) * (size_t)g->nrows);
    for (int row = 0; row < g->nrows; row++) {
        g->consumer[row] = strmap_get(&g->ids, PQgetvalue(g->rows, row, R_SERVICE));
        g->target[row] = PQgetisnull(g->rows, row, R_TARGET) ? -1 : strmap_get(&g->ids, PQgetvalue(g->rows, row, R_TARGET));
        g->source[row] = g->target[row];
    }
}

typedef struct {
    int depth, node;
} ranked_t;

static int ranked_cmp(const void *x, const void *y)
{
    const ranked_t *p = x, *q = y;

    return p->depth != q->depth ? (p->depth > q->depth) - (p->depth < q->depth) : (p->node > q->node) - (p->node < q->node);
}

/* Places the services of a walk breadth-first from the start, as the original's frontiers: each level
 * in name order. */
static void place_walk(graph_t *g)
{
    int n = g->nservices, start = g->start != NULL ? strmap_get(&g->ids, g->start) : -1, head = 0, tail = 0;
    int *off = pool_alloc(g->r, sizeof(int) * (size_t)(n + 1)), *fill = pool_alloc(g->r, sizeof(int) * (size_t)(n + 1));
    int *adj = pool_alloc(g->r, sizeof(int) * (size_t)g->nrows), *depth = pool_alloc(g->r, sizeof(int) * (size_t)n);
    ranked_t *queue = pool_alloc(g->r, sizeof(*queue) * (size_t)n);

    memset(off, 0, sizeof(int) * (size_t)(n + 1));
    for (int row = 0; row < g->nrows; row++)
        if (g->consumer[row] >= 0 && g->target[row] >= 0)
            off[g->consumer[row] + 1]++;
    for (int i = 0; i < n; i++)
        off[i + 1] += off[i];
    memcpy(fill, off, sizeof(int) * (size_t)(n + 1));
    for (int row = 0; row < g->nrows; row++)
        if (g->consumer[row] >= 0 && g->target[row] >= 0)
            adj[fill[g->consumer[row]]++] = g->target[row];
    for (int i = 0; i < n; i++)
        depth[i] = -1;
    if (start >= 0)
        depth[start] = 0, queue[tail++] = (ranked_t){0, start};
    while (head < tail) {
        int v = queue[head++].node;
        for (int e = off[v]; e < off[v + 1]; e++)
            if (depth[adj[e]] < 0)
                depth[adj[e]] = depth[v] + 1, queue[tail++] = (ranked_t){depth[v] + 1, adj[e]};
    }
    qsort(queue, (size_t)tail, sizeof(*queue), ranked_cmp);
    for (int i = 0; i < tail; i++)
        place(g, queue[i].node);
}

/* The sort key of a row: its service's place (INT_MAX when that is not a node of the mode), then its
 * service, dependency name (bytes, as the original's BINARY collation), dependency and target. */
typedef struct {
    int place, row;
    const char *service, *name, *dep, *target;
} row_key_t;

static int row_cmp(const void *x, const void *y)
{
    const row_key_t *p = x, *q = y;
    int c;

    if (p->place != q->place)
        return p->place < q->place ? -1 : 1;
    /* one place is one service, but for the rows of services that are not nodes of the mode */
    if ((p->place == INT_MAX && (c = strcmp(p->service, q->service)) != 0) || (c = strcmp(p->name, q->name)) != 0 ||
        (c = strcmp(p->dep, q->dep)) != 0)
        return c;
    if (p->target == NULL || q->target == NULL)
        return (q->target == NULL) - (p->target == NULL);
    return strcmp(p->target, q->target);
}

/* The output order of the rows: by the place of their service, so that edges follow the nodes; the
 * rows of one dependency are adjacent. */
static void order_rows(graph_t *g)
{
    row_key_t *keys = pool_alloc(g->r, sizeof(*keys) * (size_t)g->nrows);

    for (int row = 0; row < g->nrows; row++) {
        int c = g->consumer[row];
        keys[row] = (row_key_t){c >= 0 && g->node[c].own && g->node[c].pos >= 0 ? g->node[c].pos : INT_MAX,
                                row,
                                PQgetvalue(g->rows, row, R_SERVICE),
                                PQgetvalue(g->rows, row, R_NAME),
                                PQgetvalue(g->rows, row, R_DEP_ID),
                                val(g->rows, row, R_TARGET)};
    }
    qsort(keys, (size_t)g->nrows, sizeof(*keys), row_cmp);
    g->order = pool_alloc(g->r, sizeof(int) * (size_t)g->nrows);
    g->next = pool_alloc(g->r, sizeof(int) * (size_t)g->nrows);
    for (int p = 0; p < g->nrows; p++)
        g->order[p] = keys[p].row;
}

/* Counts of §6.2. A service of the mode counts its distinct dependencies (adjacent rows of one
 * dependency count once); a service added as a target counts the rows targeting it (one per
 * dependency: an association pair is unique). Targets are placed as rows first name them. */
static void count_services(graph_t *g)
{
    const char *prev = NULL;

    for (int p = 0; p < g->nrows; p++) {
        int row = g->order[p], c = g->consumer[row], t = g->target[row];
        const char *dep = PQgetvalue(g->rows, row, R_DEP_ID);

        if (c >= 0 && g->node[c].own && (prev == NULL || strcmp(prev, dep) != 0))
            count_row(&g->node[c], g->rows, row);
        prev = dep;
        if (t < 0)
            continue;
        list_add(g, &g->node[t], p);
        if (!g->node[t].own) {
            count_row(&g->node[t], g->rows, row);
            place(g, t);
        }
    }
    for (int i = 0; i < g->nservices; i++) /* a target that no row names (deleted meanwhile) */
        place(g, i);
}

/* ---- external nodes ------------------------------------------------------------------------------- */

/* The group key of §6.2: the name lower-cased and trimmed as JavaScript does (in the pool). */
static const char *external_key(dps_req_t *r, const char *name)
{
    size_t len = strlen(name), cap = len * 3 / 2 + 2, n, from, to;
    char *low = pool_alloc(r, cap);

    n = dps_unicase_lower(name, len, low, cap);
    dps_js_trim(low, n, &from, &to);
    low[to] = '\0';
    return low + from;
}

/* "external-" and the first 12 hex digits of the key's SHA-256 (in the pool). */
static const char *external_id(dps_req_t *r, const char *key)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    char *id = pool_alloc(r, sizeof("external-") + 12);

    SHA256((const unsigned char *)key, strlen(key), md);
    memcpy(id, "external-", 9);
    dps_hex_encode(md, 6, id + 9);
    return id;
}

/* The external node of a name (canonical name or name): a new one unless its key's id is there. */
static int external_node(graph_t *g, strmap_t *keys, const char *name, int p)
{
    const char *key = external_key(g->r, name), *id;
    int n;

    if ((n = strmap_get(keys, key)) >= 0)
        return n;
    id = external_id(g->r, key);
    if ((n = strmap_get(&g->ids, id)) < 0) {
        n = g->nnodes++;
        g->node[n] = (node_t){.svc = -1, .pos = -1, .first = -1, .last = -1, .id = id, .key = key, .name_pos = p, .enrich = -1};
        strmap_add(&g->ids, id, n);
        place(g, n);
    }
    strmap_add(keys, key, n);
    return n;
}

/* Groups the rows without association into external nodes, placed after the services in the order
 * their groups first appear. Groups meet by id (a key's hash), so that an id is never added twice;
 * each distinct name is keyed and hashed once. */
static void add_external(graph_t *g)
{
    strmap_t names, keys;

    strmap_init(g->r, &names, (size_t)g->nrows);
    strmap_init(g->r, &keys, (size_t)g->nrows);
    for (int p = 0; p < g->nrows; p++) {
        int row = g->order[p], n;
        const char *name;

        if (!PQgetisnull(g->rows, row, R_TARGET))
            continue;
        name = PQgetvalue(g->rows, row, PQgetisnull(g->rows, row, R_CANONICAL) ? R_NAME : R_CANONICAL);
        if ((n = strmap_get(&names, name)) < 0)
            strmap_add(&names, name, n = external_node(g, &keys, name, p));
        count_row(&g->node[n], g->rows, row);
        list_add(g, &g->node[n], p);
        g->source[row] = n;
    }
}

/* Matches enrichment rows to external nodes by key; of two rows with one key, the later. 0, or -1
 * after answering 503/500. */
static int enrich_external(graph_t *g)
{
    strmap_t keys;
    int n;

    if (g->nnodes == g->nservices)
        return 0;
    if ((g->enrich = dps_req_sql(g->r, NULL, ENRICHMENT_SQL, 0, NULL)) == NULL)
        return -1;
    n = PQntuples(g->enrich);
    strmap_init(g->r, &keys, (size_t)n);
    for (int i = 0; i < n; i++) {
        const char *key = external_key(g->r, PQgetvalue(g->enrich, i, E_NAME));
        size_t slot = strmap_slot(&keys, key);
        keys.key[slot] = key, keys.val[slot] = i;
    }
    for (int i = g->nservices; i < g->nnodes; i++)
        g->node[i].enrich = strmap_get(&keys, g->node[i].key);
    return 0;
}

/* ---- JSON ----------------------------------------------------------------------------------------- */

/* The prepared column ranges written as they are. */
typedef struct {
    dps_jsonbuf_cols_t svc_head, svc_poll, edge_head, edge_assoc, edge_mid, edge_tail;
} columns_t;

static void write_counts(dps_jsonbuf_t *b, const node_t *n)
{
    char text[128];

    snprintf(text, sizeof(text), ",\"dependencyCount\":%d,\"healthyCount\":%d,\"unhealthyCount\":%d,", n->deps, n->healthy,
             n->unhealthy);
    dps_jsonbuf_raw(b, text, strlen(text));
}

static void write_service(dps_jsonbuf_t *b, const graph_t *g, const columns_t *c, const node_t *n)
{
    char text[64];

    dps_jsonbuf_lit(b, "{\"id\":");
    dps_jsonbuf_value(b, g->svcs, n->svc, S_ID);
    dps_jsonbuf_lit(b, ",\"type\":\"service\",\"data\":{");
    dps_jsonbuf_row(b, &c->svc_head, g->svcs, n->svc);
    write_counts(b, n);
    dps_jsonbuf_row(b, &c->svc_poll, g->svcs, n->svc);
    snprintf(text, sizeof(text), ",\"skippedCount\":%d", n->skipped);
    dps_jsonbuf_raw(b, text, strlen(text));
    if (n->type_pos >= 0) {
        dps_jsonbuf_lit(b, ",\"serviceType\":");
        dps_jsonbuf_value(b, g->rows, g->order[n->type_pos], R_TYPE);
    }
    if (is_true(g->svcs, n->svc, S_EXTERNAL))
        dps_jsonbuf_lit(b, ",\"isExternal\":true");
    if (n->discovered > 0) {
        snprintf(text, sizeof(text), ",\"discoveredDependencyCount\":%d", n->discovered);
        dps_jsonbuf_raw(b, text, strlen(text));
    }
    dps_jsonbuf_lit(b, "}}");
}

/* An enrichment value that applies (non-empty), or -1. */
static int enriched(const graph_t *g, const node_t *n, int col)
{
    return n->enrich >= 0 && !PQgetisnull(g->enrich, n->enrich, col) && PQgetlength(g->enrich, n->enrich, col) > 0 ? n->enrich : -1;
}

static void write_enriched(dps_jsonbuf_t *b, const graph_t *g, const node_t *n, int col, const char *key, size_t key_len)
{
    int e = enriched(g, n, col);

    if (e >= 0) {
        dps_jsonbuf_raw(b, key, key_len);
        dps_jsonbuf_value(b, g->enrich, e, col);
    }
}

#define WRITE_ENRICHED(b, g, n, col, key) write_enriched((b), (g), (n), (col), "" key, sizeof(key) - 1)

static void write_external(dps_jsonbuf_t *b, const graph_t *g, const node_t *n)
{
    int row = g->order[n->name_pos], e;
    char text[64];

    dps_jsonbuf_lit(b, "{\"id\":\"");
    dps_jsonbuf_raw(b, n->id, strlen(n->id));
    dps_jsonbuf_lit(b, "\",\"type\":\"service\",\"data\":{\"name\":");
    if ((e = enriched(g, n, E_DISPLAY)) >= 0)
        dps_jsonbuf_value(b, g->enrich, e, E_DISPLAY);
    else
        dps_jsonbuf_value(b, g->rows, row, PQgetisnull(g->rows, row, R_CANONICAL) ? R_NAME : R_CANONICAL);
    dps_jsonbuf_lit(b, ",\"teamId\":\"external\",\"teamName\":\"External\",\"healthEndpoint\":\"\",\"isActive\":true");
    write_counts(b, n);
    snprintf(text, sizeof(text), "\"lastPollSuccess\":null,\"lastPollError\":null,\"skippedCount\":%d", n->skipped);
    dps_jsonbuf_raw(b, text, strlen(text));
    dps_jsonbuf_lit(b, ",\"serviceType\":");
    if ((e = enriched(g, n, E_TYPE)) >= 0)
        dps_jsonbuf_value(b, g->enrich, e, E_TYPE);
    else
        dps_jsonbuf_value(b, g->rows, g->order[n->type_pos], R_TYPE);
    dps_jsonbuf_lit(b, ",\"isExternal\":true");
    WRITE_ENRICHED(b, g, n, E_DESCRIPTION, ",\"enrichedDescription\":");
    WRITE_ENRICHED(b, g, n, E_IMPACT, ",\"enrichedImpact\":");
    WRITE_ENRICHED(b, g, n, E_CONTACT, ",\"enrichedContact\":");
    dps_jsonbuf_lit(b, "}}");
}

/* The id of a row's edge (§6.3: source, consumer and type; a NULL type reads "null"), in the pool. */
static const char *edge_id(const graph_t *g, int row, const char *source)
{
    const char *service = PQgetvalue(g->rows, row, R_SERVICE), *type = val(g->rows, row, R_TYPE);
    size_t ns = strlen(source), nv = (size_t)PQgetlength(g->rows, row, R_SERVICE), nt = type != NULL ? strlen(type) : 4;
    char *id = pool_alloc(g->r, ns + nv + nt + 3), *o = id;

    memcpy(o, source, ns), o += ns, *o++ = '-';
    memcpy(o, service, nv), o += nv, *o++ = '-';
    memcpy(o, type != NULL ? type : "null", nt), o[nt] = '\0';
    return id;
}

static void write_edge(dps_jsonbuf_t *b, const graph_t *g, const columns_t *c, int row, const char *id, const char *source)
{
    dps_jsonbuf_lit(b, "{\"id\":");
    dps_jsonbuf_string(b, id, strlen(id));
    dps_jsonbuf_lit(b, ",\"source\":\"");
    dps_jsonbuf_raw(b, source, strlen(source));
    dps_jsonbuf_lit(b, "\",\"target\":");
    dps_jsonbuf_value(b, g->rows, row, R_SERVICE);
    dps_jsonbuf_lit(b, ",\"data\":{\"relationship\":\"depends_on\",");
    dps_jsonbuf_row(b, &c->edge_head, g->rows, row);
    dps_jsonbuf_lit(b, ",\"avgLatencyMs24h\":");
    dps_graph_avg_write(b, g->rows, row, R_DEP_ID, R_AVG, R_SNAP_OK, R_SNAP_DN, R_SNAP_DS);
    dps_jsonbuf_lit(b, ",");
    dps_jsonbuf_row(b, &c->edge_assoc, g->rows, row);
    if (!PQgetisnull(g->rows, row, R_CHECK_DETAILS)) {
        dps_jsonbuf_lit(b, ",\"checkDetails\":");
        dps_jsonbuf_value(b, g->rows, row, R_CHECK_DETAILS);
    }
    if (!PQgetisnull(g->rows, row, R_ERROR)) {
        dps_jsonbuf_lit(b, ",\"error\":");
        dps_jsonbuf_value(b, g->rows, row, R_ERROR);
    }
    dps_jsonbuf_lit(b, ",");
    dps_jsonbuf_row(b, &c->edge_mid, g->rows, row);
    if (is_true(g->rows, row, R_SKIPPED))
        dps_jsonbuf_lit(b, ",\"skipped\":true");
    dps_jsonbuf_lit(b, ",");
    dps_jsonbuf_row(b, &c->edge_tail, g->rows, row);
    if (!PQgetisnull(g->rows, row, R_ASSOC_ID)) {
        dps_jsonbuf_lit(b, ",\"associationId\":");
        dps_jsonbuf_value(b, g->rows, row, R_ASSOC_ID);
    }
    dps_jsonbuf_lit(b, "}}");
}

/* The edges of §6.3 in row order: from the associated service or the external node, to the row's
 * service; the first row of an id wins. */
static void write_edges(dps_jsonbuf_t *b, graph_t *g, const columns_t *c)
{
    strmap_t seen;
    int written = 0;

    strmap_init(g->r, &seen, (size_t)g->nrows);
    for (int p = 0; p < g->nrows; p++) {
        int row = g->order[p], s = g->source[row];
        const char *source, *id;

        if (s < 0)
            continue;
        source = g->node[s].svc >= 0 ? PQgetvalue(g->svcs, g->node[s].svc, S_ID) : g->node[s].id;
        id = edge_id(g, row, source);
        if (strmap_add(&seen, id, p) >= 0)
            continue;
        if (written++ > 0)
            dps_jsonbuf_lit(b, ",");
        write_edge(b, g, c, row, id, source);
    }
}

static int columns_init(columns_t *c, const graph_t *g)
{
    memset(c, 0, sizeof(*c));
    return dps_jsonbuf_cols_init(&c->svc_head, g->svcs, S_NAME, S_ACTIVE + 1) == 0 &&
                   dps_jsonbuf_cols_init(&c->svc_poll, g->svcs, S_POLL_OK, S_POLL_ERROR + 1) == 0 &&
                   dps_jsonbuf_cols_init(&c->edge_head, g->rows, R_TYPE, R_LATENCY + 1) == 0 &&
                   dps_jsonbuf_cols_init(&c->edge_assoc, g->rows, R_ASSOC_TYPE, R_ASSOC_TYPE + 1) == 0 &&
                   dps_jsonbuf_cols_init(&c->edge_mid, g->rows, R_ERROR_MESSAGE, R_CONTACT + 1) == 0 &&
                   dps_jsonbuf_cols_init(&c->edge_tail, g->rows, R_SOURCE, R_AUTO + 1) == 0
               ? 0
               : -1;
}

static void columns_free(columns_t *c)
{
    dps_jsonbuf_cols_free(&c->svc_head), dps_jsonbuf_cols_free(&c->svc_poll);
    dps_jsonbuf_cols_free(&c->edge_head), dps_jsonbuf_cols_free(&c->edge_assoc);
    dps_jsonbuf_cols_free(&c->edge_mid), dps_jsonbuf_cols_free(&c->edge_tail);
}

/* The document, nodes in their places; 0, or -1 when memory runs out. */
static int write_graph(dps_jsonbuf_t *b, graph_t *g)
{
    columns_t c;

    if (columns_init(&c, g) != 0) {
        columns_free(&c);
        return -1;
    }
    dps_jsonbuf_init(b, 64 + (size_t)g->nnodes * 400 + (size_t)g->nrows * 800);
    dps_jsonbuf_lit(b, "{\"nodes\":[");
    for (int i = 0; i < g->nplaced; i++) {
        const node_t *n = &g->node[g->placed[i]];
        if (i > 0)
            dps_jsonbuf_lit(b, ",");
        if (n->svc >= 0)
            write_service(b, g, &c, n);
        else
            write_external(b, g, n);
    }
    dps_jsonbuf_lit(b, "],\"edges\":[");
    write_edges(b, g, &c);
    dps_jsonbuf_lit(b, "]}");
    columns_free(&c);
    return 0;
}

/* ---- the handler ---------------------------------------------------------------------------------- */

/* The variant of the query (§6: the first non-empty parameter of dependency, service, team) and its id
 * in lower case, as PostgreSQL prints uuids. */
static void choose_mode(graph_t *g)
{
    for (size_t i = 0; i < DPS_ARRAY_SIZE(modes); i++) {
        const char *v = modes[i].param != NULL ? dps_req_query_param(g->r, modes[i].param) : NULL;
        if (modes[i].param == NULL || (v != NULL && v[0] != '\0')) {
            g->mode = &modes[i];
            if (v != NULL) {
                char *id = h2o_strdup(&g->r->h2o->pool, v, SIZE_MAX).base;
                for (char *p = id; *p != '\0'; p++)
                    *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
                g->id = id;
            }
            return;
        }
    }
}

/* The uuid[] literal of the walk's start (if any) and every row's target, in the pool. */
static const char *targets_array(graph_t *g)
{
    char *text = pool_alloc(g->r, 3 + (size_t)(g->nrows + 1) * 37), *o = text;

    *o++ = '{';
    if (g->start != NULL)
        o += sprintf(o, "%s,", g->start);
    for (int row = 0; row < g->nrows; row++)
        if (!PQgetisnull(g->rows, row, R_TARGET))
            o += sprintf(o, "%s,", PQgetvalue(g->rows, row, R_TARGET));
    if (o[-1] == ',')
        o--;
    strcpy(o, "}");
    return text;
}

static void send_empty(dps_req_t *r)
{
    dps_jsonbuf_t b;

    dps_jsonbuf_init(&b, 32);
    dps_jsonbuf_lit(&b, "{\"nodes\":[],\"edges\":[]}");
    dps_http_json_buf_negotiated(r, 200, &b);
}

/* The walk's start: the query's service, or the service of the query's dependency (from its row; NULL
 * when the dependency is unknown). */
static const char *walk_start(const graph_t *g)
{
    if (g->mode->walk == WALK_FROM_SERVICE)
        return g->id;
    for (int row = 0; row < g->nrows; row++)
        if (strcmp(PQgetvalue(g->rows, row, R_DEP_ID), g->id) == 0)
            return PQgetvalue(g->rows, row, R_SERVICE);
    return NULL;
}

/* The rows: of the mode's id, or of the full graph with its averages' snapshot, or, when that does
 * not hold, with the averages of the raw rows. */
static const PGresult *load_rows(graph_t *g)
{
    dps_graph_avg_params_t avg;
    const char *params[2] = {g->id, NULL};
    const PGresult *res;

    if (g->id != NULL)
        return dps_req_sql(g->r, NULL, g->mode->rows, 1, params);
    if (dps_graph_avg_prepare(g->r, &avg) != 0)
        return NULL;
    if (avg.usable) {
        params[0] = avg.bound, params[1] = avg.epoch;
        if ((res = dps_req_sql(g->r, NULL, g->mode->rows, 2, params)) == NULL || dps_graph_avg_held(res, R_SNAP_OK))
            return res;
    }
    return dps_req_sql(g->r, NULL, full_raw_rows, 0, NULL);
}

/* The rows, then the service nodes of the mode and of the rows' targets. 0, or -1 after answering. */
static int load(graph_t *g)
{
    const char *params[2] = {g->id, NULL};
    int n = g->id != NULL ? 1 : 0;

    if ((g->rows = load_rows(g)) == NULL)
        return -1;
    g->nrows = PQntuples(g->rows);
    if (g->mode->walk != NO_WALK && (g->start = walk_start(g)) == NULL)
        return 0; /* an unknown dependency */
    if (g->mode->walk != NO_WALK)
        n = 0;
    params[n++] = targets_array(g);
    return (g->svcs = dps_req_sql(g->r, NULL, g->mode->nodes, n, params)) == NULL ? -1 : 0;
}

/* Everything between the results and the text: nodes, their places and counts, the rows' order. */
static int build(graph_t *g)
{
    add_services(g);
    if (g->mode->walk != NO_WALK)
        place_walk(g);
    else
        for (int i = 0; i < g->nservices; i++)
            if (g->node[i].own)
                place(g, i);
    order_rows(g);
    count_services(g);
    add_external(g);
    for (int i = 0; i < g->nnodes; i++)
        g->node[i].type_pos = dominant_type(g, &g->node[i]);
    return enrich_external(g);
}

void dps_api_graph(dps_req_t *r)
{
    graph_t g;
    dps_jsonbuf_t b;
    char key[80];

    if (dps_require_user(r) != 0)
        return;
    memset(&g, 0, sizeof(g));
    g.r = r;
    choose_mode(&g);
    if (g.id != NULL && !dps_is_uuid(g.id)) { /* an id that cannot exist */
        send_empty(r);
        return;
    }
    snprintf(key, sizeof(key), "%s:%s", g.mode->param != NULL ? g.mode->param : "full", g.id != NULL ? g.id : "");
    if (dps_graph_cache_answer(r, key))
        return;
    if (load(&g) != 0)
        return;
    if (g.svcs == NULL) { /* a walk from an unknown dependency */
        send_empty(r);
        return;
    }
    if (build(&g) != 0)
        return;
    if (write_graph(&b, &g) != 0) {
        dps_http_error(r, 500, "Internal server error");
        return;
    }
    dps_graph_cache_send(r, key, &b);
}
