/* Shared by the OTLP fuzz targets: checks on decoded requests, and stubs for the HTTP side of jsonbuf.c
 * (linked for the attribute writer, never called). */
#ifndef DEPSERA_TESTS_FUZZ_OTLP_FUZZ_H
#define DEPSERA_TESTS_FUZZ_OTLP_FUZZ_H

#include "depsera/http.h"
#include "depsera/otlp_decode.h"
#include "depsera/otlp_encode.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ARENA_LIMIT (256u * 1024 * 1024)

void dps_http_json_text(dps_req_t *r, int status, const char *text, size_t len)
{
    abort();
}

void dps_http_error(dps_req_t *r, int status, const char *msg)
{
    abort();
}

void dps_http_send_owned(dps_req_t *r, int status, const char *content_type, char *data, size_t len)
{
    abort();
}

int dps_pg_timestamp_iso(const char *pg, char *out, size_t cap)
{
    abort();
}

/* The packed bytes of m (malloc'd). */
static uint8_t *fuzz_pack(const ProtobufCMessage *m, size_t *len)
{
    uint8_t *buf = malloc(protobuf_c_message_get_packed_size(m) + 1);

    if (buf == NULL)
        abort();
    *len = protobuf_c_message_pack(m, buf);
    return buf;
}

/* m packed, decoded by the protobuf decoder and packed again gives the same bytes. */
static void fuzz_check_repack(const ProtobufCMessage *m, int metrics)
{
    size_t n1, n2;
    uint8_t *p1 = fuzz_pack(m, &n1), *p2;
    dps_otlp_body_t body = {DPS_OTLP_PROTOBUF, DPS_OTLP_IDENTITY, p1, n1, (size_t)-1 / 4};
    dps_arena_t a;
    ProtobufCMessage *again = NULL;
    const char *err;
    dps_otlp_status_t st;

    dps_arena_init(&a, FUZZ_ARENA_LIMIT);
    st = metrics ? dps_otlp_decode_metrics(&a, &body, (dps_otlp_metrics_t **)&again, &err)
                 : dps_otlp_decode_traces(&a, &body, (dps_otlp_traces_t **)&again, &err);
    if (st != DPS_OTLP_OK)
        __builtin_trap();
    p2 = fuzz_pack(again, &n2);
    if (n1 != n2 || memcmp(p1, p2, n1) != 0)
        __builtin_trap();
    free(p1), free(p2);
    dps_arena_free(&a);
}

/* An attribute list written as OTLP JSON is valid JSON (hence UTF-8), an array of n members, and,
 * with `reread`, decodes back to the same KeyValues. */
static void fuzz_check_attributes(Opentelemetry__Proto__Common__V1__KeyValue **kvs, size_t n, int reread)
{
    dps_jsonbuf_t b;
    json_t *j;
    char *body;
    dps_otlp_traces_t *req;
    dps_otlp_body_t in = {DPS_OTLP_JSON, DPS_OTLP_IDENTITY, NULL, 0, (size_t)-1 / 4};
    const char *err;
    dps_arena_t a;

    dps_jsonbuf_init(&b, 0);
    dps_otlp_attributes_json(&b, kvs, n);
    if (b.oom)
        abort();
    if ((j = json_loadb(b.data, b.len, 0, NULL)) == NULL || json_array_size(j) != n)
        __builtin_trap();
    json_decref(j);
    if (reread) {
        size_t len = b.len + 64;
        if ((body = malloc(len)) == NULL)
            abort();
        in.len = (size_t)snprintf(body, len, "{\"resourceSpans\":[{\"resource\":{\"attributes\":%.*s}}]}", (int)b.len, b.data);
        in.data = body;
        dps_arena_init(&a, FUZZ_ARENA_LIMIT);
        if (dps_otlp_decode_traces(&a, &in, &req, &err) != DPS_OTLP_OK || req->resource_spans[0]->resource->n_attributes != n)
            __builtin_trap();
        for (size_t i = 0; i < n; i++) {
            size_t n1, n2;
            uint8_t *p1 = fuzz_pack(&kvs[i]->base, &n1),
                    *p2 = fuzz_pack(&req->resource_spans[0]->resource->attributes[i]->base, &n2);
            if (n1 != n2 || memcmp(p1, p2, n1) != 0)
                __builtin_trap();
            free(p1), free(p2);
        }
        dps_arena_free(&a);
        free(body);
    }
    dps_jsonbuf_free(&b);
}

/* Every KeyValue list anywhere in m goes through fuzz_check_attributes (nested kvlists included). */
static void fuzz_walk_attributes(const ProtobufCMessage *m, int reread)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;

    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *member = (const char *)m + f->offset;
        size_t n = 1;
        ProtobufCMessage *const *items = (ProtobufCMessage *const *)member;

        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)((const char *)m + f->quantifier_offset);
            items = *(ProtobufCMessage *const **)member;
            if (f->descriptor == &opentelemetry__proto__common__v1__key_value__descriptor)
                fuzz_check_attributes((Opentelemetry__Proto__Common__V1__KeyValue **)items, n, reread);
        } else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                   *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id) {
            continue;
        }
        for (size_t j = 0; j < n; j++)
            if (items[j] != NULL)
                fuzz_walk_attributes(items[j], reread);
    }
}

/* One input decoded as a trace and as a metrics request in `format`: what decodes must repack to the
 * same protobuf and keep its attributes through OTLP JSON text (read back when `reread`); a refusal
 * must say why with a message starting with `refusal`. */
static int fuzz_decode_both(dps_otlp_format_t format, const uint8_t *data, size_t size, int reread, const char *refusal)
{
    dps_otlp_body_t body = {format, DPS_OTLP_IDENTITY, data, size, 20u * 1024 * 1024};
    dps_otlp_traces_t *traces;
    dps_otlp_metrics_t *metrics;
    const char *err;
    dps_arena_t a;

    dps_arena_init(&a, FUZZ_ARENA_LIMIT);
    if (dps_otlp_decode_traces(&a, &body, &traces, &err) == DPS_OTLP_OK) {
        fuzz_check_repack(&traces->base, 0);
        fuzz_walk_attributes(&traces->base, reread);
    } else if (err == NULL || strncmp(err, refusal, strlen(refusal)) != 0) {
        __builtin_trap();
    }
    dps_arena_free(&a);
    if (dps_otlp_decode_metrics(&a, &body, &metrics, &err) == DPS_OTLP_OK) {
        fuzz_check_repack(&metrics->base, 1);
        fuzz_walk_attributes(&metrics->base, reread);
    }
    dps_arena_free(&a);
    return 0;
}

#endif
