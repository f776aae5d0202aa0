/* Decoding a protobuf reply that is read and freed within one function:
 * protobuf-c's unpack makes one allocation per message, string and
 * repeated field, and a Stat reply takes seven. An arena hands out those
 * allocations from a buffer on the caller's stack (nothing to free);
 * what does not fit goes to envd_malloc and back to free(). Saves ~1.3 k
 * instructions per Stat (issue 11).
 *
 *     envd_pb_arena a;
 *     envd_pb_arena_init(&a);
 *     Foo *r = foo__unpack(&a.alloc, len, data);
 *     ...
 *     foo__free_unpacked(r, &a.alloc);   (when r != NULL)
 *
 * A NULL from unpack with a.nomem set ran out of memory; otherwise the
 * bytes were malformed. */
#ifndef ENVD_CORE_PB_ARENA_H
#define ENVD_CORE_PB_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#define ENVD_PB_ARENA_BYTES 1024

typedef struct envd_pb_arena {
    ProtobufCAllocator alloc;
    size_t used;
    int nomem;
    _Alignas(max_align_t) unsigned char buf[ENVD_PB_ARENA_BYTES];
} envd_pb_arena;

void envd_pb_arena_init(envd_pb_arena *a);

#endif
