/* Owned strings: one slot (envd_str_set) and an ordered list of name/value
 * pairs with upsert (custom headers, a command's environment, /files
 * metadata). Names match exactly or ignoring ASCII case, chosen per call,
 * because header names are case-insensitive and environment names are not.
 * A zeroed envd_kvlist is an empty list. */
#ifndef ENVD_CORE_KV_H
#define ENVD_CORE_KV_H

#include <stddef.h>

/* Replaces *slot with a copy of v (NULL stores NULL) and frees the old
 * string. 0, or -1 on out of memory (*slot unchanged). */
int envd_str_set(char **slot, const char *v);

typedef enum envd_kv_match {
    ENVD_KV_EXACT = 0,
    ENVD_KV_NOCASE = 1 /* ASCII case-insensitive, as HTTP header names */
} envd_kv_match;

/* Parallel arrays so that the names or values can be handed on as they are
 * (protobuf maps, header arrays). Insertion order is kept. */
typedef struct envd_kvlist {
    char **names;
    char **values;
    size_t n;
    size_t cap;
    /* Past a few entries, a hash of the case-folded names (slot = index + 1,
     * 0 empty) keeps lookups and upserts constant-time: a user's file may
     * hold tens of thousands of headers. */
    size_t *slots;
    size_t nslots; /* a power of two, or 0 */
} envd_kvlist;

/* The index of name, or l->n when absent. */
size_t envd_kvlist_find(const envd_kvlist *l, const char *name, envd_kv_match m);
/* The value of name, or NULL. */
const char *envd_kvlist_get(const envd_kvlist *l, const char *name, envd_kv_match m);

/* Replaces the value of the entry matching name (the name keeps the
 * spelling it was first added with), or appends (name, value). 0, or -1 on
 * out of memory (l unchanged). */
int envd_kvlist_set(envd_kvlist *l, const char *name, const char *value, envd_kv_match m);

/* dst (empty or not) becomes a copy of src. 0, or -1 on out of memory (dst
 * then empty). */
int envd_kvlist_copy(envd_kvlist *dst, const envd_kvlist *src);

/* Frees every entry; l is then empty. */
void envd_kvlist_free(envd_kvlist *l);

#endif
