/* envdctl batch: a set of job IDs held as 64-bit hashes. A million IDs
 * take 16 MiB whatever their length; two different IDs colliding is a
 * one-in-10^10 event at that size, and would show as a spurious duplicate
 * or a skipped job, which is why the hash is a strong mix, not a sum. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_id(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a finaliser */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h ? h : 1; /* 0 marks an empty slot */
}

static size_t find_slot(const uint64_t *slots, size_t cap, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);
    while (slots[i] && slots[i] != h)
        i = (i + 1) & (cap - 1);
    return i;
}

static int grow(batch_idset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 1024;
    uint64_t *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -1;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i])
            slots[find_slot(slots, cap, s->slots[i])] = s->slots[i];
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

int batch_idset_add(batch_idset *s, const char *id)
{
    if ((s->count + 1) * 4 > s->cap * 3 && grow(s) != 0)
        return -1;
    uint64_t h = hash_id(id);
    size_t i = find_slot(s->slots, s->cap, h);
    if (s->slots[i])
        return 0;
    s->slots[i] = h;
    s->count++;
    return 1;
}

int batch_idset_has(const batch_idset *s, const char *id)
{
    if (!s || !s->cap)
        return 0;
    return s->slots[find_slot(s->slots, s->cap, hash_id(id))] != 0;
}

void batch_idset_free(batch_idset *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}
