#include "core/pb_arena.h"

#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>

static void *arena_alloc(void *ud, size_t size)
{
    envd_pb_arena *a = ud;
    size_t align = _Alignof(max_align_t);
    size_t need = (size + align - 1) & ~(align - 1);
    if (need >= size && need <= sizeof a->buf - a->used) {
        void *p = a->buf + a->used;
        a->used += need;
        return p;
    }
    void *p = envd_malloc(size);
    if (!p)
        a->nomem = 1;
    return p;
}

static void arena_free(void *ud, void *p)
{
    envd_pb_arena *a = ud;
    uintptr_t u = (uintptr_t)p, lo = (uintptr_t)a->buf;
    if (u >= lo && u < lo + sizeof a->buf)
        return; /* goes with the arena */
    free(p);
}

void envd_pb_arena_init(envd_pb_arena *a)
{
    a->alloc.alloc = arena_alloc;
    a->alloc.free = arena_free;
    a->alloc.allocator_data = a;
    a->used = 0;
    a->nomem = 0;
}
