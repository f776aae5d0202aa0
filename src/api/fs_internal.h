/* What the filesystem files share (fs.c, fs_watcher.c, watch.c): entries and
 * events built from their protobuf messages. */
#ifndef ENVD_API_FS_INTERNAL_H
#define ENVD_API_FS_INTERNAL_H

#include "api/internal.h"
#include "filesystem.pb-c.h"

/* Fills *e (a plain struct the caller placed: on the heap, in a list's
 * array) from a decoded EntryInfo. ENVD_OK, or ENVD_E_NOMEM with *e holding
 * nothing to free. */
envd_status envd_entry_fill(envd_entry_info *e, const Filesystem__EntryInfo *p);
/* Frees what envd_entry_fill put into *e, not e itself. */
void envd_entry_clear(envd_entry_info *e);
/* A heap copy of a decoded EntryInfo (free with envd_entry_info_free). NULL
 * on OOM. */
envd_entry_info *envd_entry_from_proto(const Filesystem__EntryInfo *p);

/* Fills ev from a decoded event (name copied, entry converted when present).
 * Returns ENVD_OK or ENVD_E_NOMEM (ev then holds nothing to free). */
envd_status envd_fs_event_from_proto(const Filesystem__FilesystemEvent *p, envd_fs_event *ev);
/* Frees what envd_fs_event_from_proto put into ev. */
void envd_fs_event_clear(envd_fs_event *ev);

/* A unary finish for calls whose only answer is the outcome: the error, if
 * any, prefixed with ctx (a string literal, the Go client's words). */
void envd_fs_outcome_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                            void **result, envd_free_fn *free_fn, envd_error **out_err);

/* "malformed <what> response" protocol error. */
envd_error *envd_fs_decode_error(const char *what);
envd_error *envd_fs_nomem(void);

/* The starters' argument check: clears *out, then ENVD_OK, or ENVD_E_USAGE
 * with a message naming the argument (envd_start_error) for a NULL client
 * or out, or a NULL or empty string `what`. */
envd_status envd_fs_check(const envd_client *c, envd_future **out, const char *what,
                          const char *s);
/* The same for a further string argument. */
envd_status envd_fs_check_str(const char *what, const char *s);

/* One row of a filesystem RPC whose request is a single string field. */
typedef struct envd_fs_one_string {
    const char *method;
    const ProtobufCMessageDescriptor *request;
    const char *arg;            /* the argument's name, for usage errors */
    int kind;                   /* ENVD_FK_* */
    envd_unary_finish finish;
    const char *ctx;            /* passed to finish (an error prefix), may be NULL */
    uint32_t list_field;        /* a list reply's repeated field (unary spec), or 0 */
} envd_fs_one_string;

envd_status envd_fs_one_string_start(envd_client *c, const envd_fs_one_string *row,
                                     const char *value, envd_future **out);

#endif
