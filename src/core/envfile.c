/* Env files (KEY=VALUE per line) read at start and again on SIGHUP. */
#include "depsera/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct dps_envfile {
    size_t count, cap;
    char **keys, **values;
};

static char *trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int add(dps_envfile_t *ef, const char *k, const char *v)
{
    /* a later line overrides an earlier one, as in a shell */
    for (size_t i = 0; i < ef->count; i++) {
        if (strcmp(ef->keys[i], k) == 0) {
            char *nv = strdup(v);
            if (nv == NULL)
                return -1;
            free(ef->values[i]);
            ef->values[i] = nv;
            return 0;
        }
    }
    if (ef->count == ef->cap) {
        size_t ncap = ef->cap ? ef->cap * 2 : 16;
        char **nk = realloc(ef->keys, ncap * sizeof(*nk)), **nv;
        if (nk == NULL)
            return -1;
        ef->keys = nk;
        if ((nv = realloc(ef->values, ncap * sizeof(*nv))) == NULL)
            return -1;
        ef->values = nv;
        ef->cap = ncap;
    }
    ef->keys[ef->count] = strdup(k);
    ef->values[ef->count] = strdup(v);
    if (ef->keys[ef->count] == NULL || ef->values[ef->count] == NULL) {
        free(ef->keys[ef->count]);
        free(ef->values[ef->count]);
        return -1;
    }
    ef->count++;
    return 0;
}

/* Splits one non-comment line into key and (unquoted) value in place; -1 if malformed. */
static int split_line(char *line, char **key, char **value)
{
    char *eq, *v;
    size_t n;

    if (strncmp(line, "export ", 7) == 0)
        line = trim(line + 7);
    if ((eq = strchr(line, '=')) == NULL)
        return -1;
    *eq = '\0';
    *key = trim(line);
    if (**key == '\0')
        return -1;
    for (const char *p = *key; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return -1;
    v = trim(eq + 1);
    n = strlen(v);
    if (n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]) {
        v[n - 1] = '\0';
        v++;
    }
    *value = v;
    return 0;
}

dps_envfile_t *dps_envfile_load(const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    dps_envfile_t *ef = NULL;
    char line[8192], *key, *value, *s;
    int lineno = 0;

    if (f == NULL) {
        snprintf(err, cap, "env file %s: %s", path, strerror(errno));
        return NULL;
    }
    if ((ef = calloc(1, sizeof(*ef))) == NULL)
        goto nomem;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        if (split_line(s, &key, &value) != 0) {
            snprintf(err, cap, "env file %s:%d: expected NAME=value", path, lineno);
            goto fail;
        }
        if (add(ef, key, value) != 0)
            goto nomem;
    }
    fclose(f);
    return ef;
nomem:
    snprintf(err, cap, "env file %s: out of memory", path);
fail:
    fclose(f);
    dps_envfile_free(ef);
    return NULL;
}

const char *dps_envfile_get(const dps_envfile_t *ef, const char *name)
{
    for (size_t i = 0; ef != NULL && i < ef->count; i++)
        if (strcmp(ef->keys[i], name) == 0)
            return ef->values[i];
    return NULL;
}

void dps_envfile_free(dps_envfile_t *ef)
{
    if (ef == NULL)
        return;
    for (size_t i = 0; i < ef->count; i++) {
        free(ef->keys[i]);
        free(ef->values[i]);
    }
    free(ef->keys);
    free(ef->values);
    free(ef);
}
