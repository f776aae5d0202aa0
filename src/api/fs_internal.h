/* What the filesystem files share (fs.c, watch.c): entries and events built
 * from their protobuf messages. */
#ifndef ENVD_API_FS_INTERNAL_H
#define ENVD_API_FS_INTERNAL_H

#include "api/internal.h"
#include "filesystem.pb-c.h"

/* Every envd_entry_info the library hands out is the first member of this,
 * so metadata can hang off it without growing the public struct. */
typedef struct envd_entry_priv {
    envd_entry_info pub;
    size_t n_meta;
    char **meta_keys; /* sorted by key */
    char **meta_values;
} envd_entry_priv;

/* Copies a decoded EntryInfo into the public shape. NULL on OOM. */
envd_entry_info *envd_entry_from_proto(const Filesystem__EntryInfo *p);

struct envd_fs_event_list {
    size_t n;
    envd_fs_event *events; /* names and entries owned here */
};

/* Fills ev from a decoded event (name copied, entry converted when present).
 * Returns ENVD_OK or ENVD_E_NOMEM (ev then holds nothing to free). */
envd_status envd_fs_event_from_proto(const Filesystem__FilesystemEvent *p, envd_fs_event *ev);
/* Frees what envd_fs_event_from_proto put into ev. */
void envd_fs_event_clear(envd_fs_event *ev);

/* "malformed <what> response" protocol error. */
envd_error *envd_fs_decode_error(const char *what);

#endif
