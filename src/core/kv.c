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

#define INDEX_FROM 16 /* entries before the hash is built */

static int same(const char *a, const char *b, envd_kv_match m)
{
    return (m == ENVD_KV_NOCASE ? strcasecmp(a, b) : strcmp(a, b)) == 0;
}

/* FNV-1a over the ASCII-lowered name: equal under either match mode means
 * equal hashes. */
static size_t fold_hash(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32u : c)) * 1099511628211u;
    }
    return (size_t)h;
}

static void index_put(envd_kvlist *l, size_t i)
{
    size_t mask = l->nslots - 1, at = fold_hash(l->names[i]) & mask;
    while (l->slots[at])
        at = (at + 1) & mask;
    l->slots[at] = i + 1;
}

/* Keeps the hash at most half full; without memory it is dropped and
 * lookups scan (still correct). */
static void index_fit(envd_kvlist *l, size_t n)
{
    if (n < INDEX_FROM || (l->nslots && n * 2 <= l->nslots))
        return;
    size_t ns = l->nslots ? l->nslots : 64;
    while (ns < n * 2)
        ns *= 2;
    free(l->slots);
    l->slots = envd_calloc(ns, sizeof *l->slots);
    l->nslots = l->slots ? ns : 0;
    for (size_t i = 0; l->slots && i < l->n; i++)
        index_put(l, i);
}

size_t envd_kvlist_find(const envd_kvlist *l, const char *name, envd_kv_match m)
{
    if (!l->nslots) {
        for (size_t i = 0; i < l->n; i++)
            if (same(l->names[i], name, m))
                return i;
        return l->n;
    }
    /* Names that differ only in case share a chain: the lowest index wins,
     * as the scan above would have it. */
    size_t mask = l->nslots - 1, best = l->n;
    for (size_t at = fold_hash(name) & mask; l->slots[at]; at = (at + 1) & mask) {
        size_t i = l->slots[at] - 1;
        if (i < best && same(l->names[i], name, m))
            best = i;
    }
    return best;
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
    size_t had = l->nslots;
    index_fit(l, l->n);
    if (l->nslots && l->nslots == had)
        index_put(l, l->n - 1);
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
    free(l->slots);
    memset(l, 0, sizeof(*l));
}
