/* Owned strings and the name/value list: see kv.h. */
#include "core/kv.h"
#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int envd_str_set(char **slot, const char *v)
{
    char *c = NULL;
    if (v && !(c = envd_strdup(v)))
        return -1;
    free(*slot);
    *slot = c;
    return 0;
}

size_t envd_kvlist_find(const envd_kvlist *l, const char *name, envd_kv_match m)
{
    for (size_t i = 0; i < l->n; i++)
        if ((m == ENVD_KV_NOCASE ? strcasecmp(l->names[i], name) : strcmp(l->names[i], name)) == 0)
            return i;
    return l->n;
}

const char *envd_kvlist_get(const envd_kvlist *l, const char *name, envd_kv_match m)
{
    size_t i = envd_kvlist_find(l, name, m);
    return i < l->n ? l->values[i] : NULL;
}

static int grow(envd_kvlist *l)
{
    if (l->n < l->cap)
        return 0;
    size_t nc = l->cap ? l->cap * 2 : 4;
    if (nc > SIZE_MAX / sizeof(char *))
        return -1;
    char **nn = envd_realloc(l->names, nc * sizeof(char *));
    if (!nn)
        return -1;
    l->names = nn;
    char **nv = envd_realloc(l->values, nc * sizeof(char *));
    if (!nv)
        return -1; /* names grew; cap stays, so the next try reallocs both again */
    l->values = nv;
    l->cap = nc;
    return 0;
}

int envd_kvlist_set(envd_kvlist *l, const char *name, const char *value, envd_kv_match m)
{
    size_t i = envd_kvlist_find(l, name, m);
    if (i < l->n)
        return envd_str_set(&l->values[i], value);
    char *n = envd_strdup(name), *v = envd_strdup(value);
    if (!n || !v || grow(l) != 0) {
        free(n);
        free(v);
        return -1;
    }
    l->names[l->n] = n;
    l->values[l->n] = v;
    l->n++;
    return 0;
}

int envd_kvlist_copy(envd_kvlist *dst, const envd_kvlist *src)
{
    envd_kvlist_free(dst);
    for (size_t i = 0; i < src->n; i++) {
        if (envd_kvlist_set(dst, src->names[i], src->values[i], ENVD_KV_EXACT) != 0) {
            envd_kvlist_free(dst);
            return -1;
        }
    }
    return 0;
}

void envd_kvlist_free(envd_kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->names[i]);
        free(l->values[i]);
    }
    free(l->names);
    free(l->values);
    memset(l, 0, sizeof(*l));
}
