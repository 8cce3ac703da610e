/* Every log line of every process is formatted and written here, in one write(2). */
#include "depsera/log.h"
#include "depsera/util.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096 /* <= PIPE_BUF: lines from several processes never interleave */

static const char *log_role = "cli";
static dps_log_level_t log_level = DPS_LOG_INFO;
static int log_json = -1; /* -1: decide from isatty(2) on first use */
static const char *log_req_id;
static int log_buffered;        /* workers batch lines per event-loop turn (one write for many) */
static char log_buf[LINE_MAX_BYTES];
static size_t log_buf_len;
static pid_t log_pid; /* cached: getpid() is a system call, and a forked child resets it via set_role */

static const char *level_names[] = {"trace", "debug", "info", "warn", "error", "fatal", "silent"};

void dps_log_set_role(const char *role)
{
    log_role = role;
    log_pid = getpid();
}

/* ISO timestamp of now; the part up to the seconds is formatted once per second. */
static void now_iso(char *buf, size_t cap)
{
    static int64_t cached_sec = -1;
    static char cached[32];
    int64_t ms = dps_now_ms();

    if (ms / 1000 != cached_sec) {
        cached_sec = ms / 1000;
        dps_time_iso8601(cached_sec * 1000, cached, sizeof(cached));
    }
    /* "YYYY-MM-DDTHH:MM:SS." is 20 characters; then milliseconds and Z */
    snprintf(buf, cap, "%.20s%03dZ", cached, (int)(ms % 1000));
}

void dps_log_set_level(dps_log_level_t level)
{
    log_level = level;
}

dps_log_level_t dps_log_get_level(void)
{
    return log_level;
}

void dps_log_set_json(int json)
{
    log_json = json;
}

void dps_log_set_request_id(const char *req_id)
{
    log_req_id = req_id;
}

int dps_log_enabled(dps_log_level_t level)
{
    return level >= log_level && log_level != DPS_LOG_SILENT;
}

int dps_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *dps_log_level_name(dps_log_level_t level)
{
    return level_names[level];
}

/* Appends to a bounded buffer; on overflow the line is truncated, never overrun. */
typedef struct {
    char *buf;
    size_t cap, len;
    int overflow; /* something did not fit: the line is cut */
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->len + n > o->cap) {
        n = o->cap - o->len;
        o->overflow = 1;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void putf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(out_t *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->len, o->cap - o->len + 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > o->cap - o->len) {
        o->overflow = 1;
        n = (int)(o->cap - o->len);
    }
    o->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if the bytes there are not one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
    uint32_t cp;

    if (s[0] < 0xc2 || s[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    cp = n == 2 ? (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f)
         : n == 3 ? (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f)
                  : (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 | (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
    /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Client-supplied text (paths, headers) may be any bytes: escape controls, and replace bytes that
 * are not UTF-8 with U+FFFD so that every line stays valid JSON. */
static void put_json_str(out_t *o, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    char tmp[8];

    put(o, "\"", 1);
    while (s != NULL && *s) {
        unsigned char c = *s;
        size_t n;
        if (c == '"' || c == '\\') {
            tmp[0] = '\\', tmp[1] = (char)c;
            put(o, tmp, 2);
        } else if (c == '\n') {
            put(o, "\\n", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\u%04x", c);
            put(o, tmp, 6);
        } else if (c < 0x80) {
            put(o, (const char *)s, 1);
        } else if ((n = utf8_len(s)) > 0) {
            put(o, (const char *)s, n);
            s += n;
            continue;
        } else {
            put(o, "\\ufffd", 6);
        }
        s++;
    }
    put(o, "\"", 1);
}

static void put_value(out_t *o, int json, const dps_log_field_t *f)
{
    switch (f->type) {
    case DPS_LF_STR:
        if (json)
            put_json_str(o, f->s);
        else
            puts_(o, f->s != NULL ? f->s : "");
        break;
    case DPS_LF_INT:
        putf(o, "%lld", f->i);
        break;
    case DPS_LF_DBL:
        putf(o, "%.3f", f->d);
        break;
    case DPS_LF_BOOL:
        puts_(o, f->i ? "true" : "false");
        break;
    case DPS_LF_END:
        break;
    }
}

/* Returns the line's length, or 0 if it did not fit. */
static size_t format_line(char *buf, size_t cap, int json, dps_log_level_t level, const char *msg, const dps_log_field_t *fields)
{
    out_t o = {buf, cap - 1, 0, 0};
    char ts[32];

    now_iso(ts, sizeof(ts));
    if (log_pid == 0)
        log_pid = getpid();
    if (json) {
        putf(&o, "{\"ts\":\"%s\",\"level\":\"%s\",\"role\":\"%s\",\"pid\":%d", ts, level_names[level], log_role, (int)log_pid);
        if (log_req_id != NULL) {
            puts_(&o, ",\"req_id\":");
            put_json_str(&o, log_req_id);
        }
        puts_(&o, ",\"msg\":");
        put_json_str(&o, msg);
        for (const dps_log_field_t *f = fields; f != NULL && f->type != DPS_LF_END; f++) {
            put(&o, ",", 1);
            put_json_str(&o, f->key);
            put(&o, ":", 1);
            put_value(&o, 1, f);
        }
        put(&o, "}", 1);
    } else {
        putf(&o, "%s %-5s %s[%d] ", ts, level_names[level], log_role, (int)log_pid);
        if (log_req_id != NULL)
            putf(&o, "[%s] ", log_req_id);
        puts_(&o, msg);
        for (const dps_log_field_t *f = fields; f != NULL && f->type != DPS_LF_END; f++) {
            putf(&o, " %s=", f->key);
            put_value(&o, 0, f);
        }
    }
    buf[o.len++] = '\n';
    return o.overflow ? 0 : o.len;
}

size_t dps_log_format(char *buf, size_t cap, int json, dps_log_level_t level, const char *msg, const dps_log_field_t *fields)
{
    size_t n = format_line(buf, cap, json, level, msg, fields);

    /* a line that did not fit would be cut mid-JSON: say so in a line that parses instead */
    if (n == 0) {
        const char *req_id = log_req_id; /* may be what was too long */
        log_req_id = NULL;
        n = format_line(buf, cap, json, level, "log line too long: dropped", NULL);
        log_req_id = req_id;
    }
    return n;
}

static void write_out(const char *buf, size_t n)
{
    /* one write of whole lines, at most PIPE_BUF bytes: atomic on pipes, so lines of several
     * processes never interleave; a failed log write has nowhere to be reported */
    if (write(STDERR_FILENO, buf, n) < 0)
        return;
}

void dps_log_flush(void)
{
    if (log_buf_len > 0)
        write_out(log_buf, log_buf_len);
    log_buf_len = 0;
}

void dps_log_set_buffered(int buffered)
{
    dps_log_flush();
    log_buffered = buffered;
}

void dps_log_fields(dps_log_level_t level, const char *msg, const dps_log_field_t *fields)
{
    char buf[LINE_MAX_BYTES];
    size_t n;

    if (!dps_log_enabled(level))
        return;
    if (log_json < 0)
        log_json = !isatty(STDERR_FILENO);
    n = dps_log_format(buf, sizeof(buf), log_json, level, msg, fields);
    if (!log_buffered || level >= DPS_LOG_WARN) {
        dps_log_flush();
        write_out(buf, n);
        return;
    }
    if (log_buf_len + n > sizeof(log_buf))
        dps_log_flush();
    memcpy(log_buf + log_buf_len, buf, n);
    log_buf_len += n;
}

void dps_logf(dps_log_level_t level, const char *fmt, ...)
{
    char msg[LINE_MAX_BYTES / 2];
    va_list ap;

    if (!dps_log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dps_log_fields(level, msg, NULL);
}
