/* Filesystem RPCs: Stat (get_info, exists), ListDir, MakeDir, Move, Remove,
 * with the Go client's result mapping (exists: not_found -> false; make_dir:
 * already_exists -> false; list: entries of unknown type dropped). */
#include "api/fs_internal.h"
#include "core/alloc.h"
#include "core/pb_arena.h"
#include "api/sync.h"

#include <stdlib.h>
#include <string.h>

/* ---- entries ------------------------------------------------------------- */

void envd_entry_clear(envd_entry_info *e)
{
    if (!e)
        return;
    free((char *)e->name);
    free((char *)e->path);
    free((char *)e->permissions);
    free((char *)e->owner);
    free((char *)e->group);
    free((char *)e->symlink_target);
    for (size_t i = 0; i < e->n_metadata; i++) {
        free((char *)e->metadata[i].name);
        free((char *)e->metadata[i].value);
    }
    free((envd_kv *)e->metadata);
    memset(e, 0, sizeof(*e));
}

void envd_entry_info_free(envd_entry_info *e)
{
    envd_entry_clear(e);
    free(e);
}

static void entry_free_fn(void *p)
{
    envd_entry_info_free(p);
}

static envd_file_type map_type(Filesystem__FileType t)
{
    switch (t) {
    case FILESYSTEM__FILE_TYPE__FILE_TYPE_FILE: return ENVD_FILE_TYPE_FILE;
    case FILESYSTEM__FILE_TYPE__FILE_TYPE_DIRECTORY: return ENVD_FILE_TYPE_DIRECTORY;
    case FILESYSTEM__FILE_TYPE__FILE_TYPE_SYMLINK: return ENVD_FILE_TYPE_SYMLINK;
    default: return ENVD_FILE_TYPE_UNKNOWN;
    }
}

/* The metadata map, sorted by name: protobuf maps have no order, and a
 * sorted array lets the caller compare or bisect. */
static int copy_metadata(envd_entry_info *e, const Filesystem__EntryInfo *p)
{
    if (p->n_metadata == 0)
        return 0;
    envd_kv *kv = envd_calloc(p->n_metadata, sizeof(*kv));
    if (!kv)
        return -1;
    e->metadata = kv;
    for (size_t i = 0; i < p->n_metadata; i++) {
        const Filesystem__EntryInfo__MetadataEntry *m = p->metadata[i];
        char *k = envd_strdup0(m->key), *v = envd_strdup0(m->value);
        if (!k || !v) {
            free(k);
            free(v);
            return -1;
        }
        size_t j = e->n_metadata;
        while (j > 0 && strcmp(kv[j - 1].name, k) > 0) {
            kv[j] = kv[j - 1];
            j--;
        }
        kv[j].name = k;
        kv[j].value = v;
        e->n_metadata++;
    }
    return 0;
}

envd_status envd_entry_fill(envd_entry_info *e, const Filesystem__EntryInfo *p)
{
    memset(e, 0, sizeof(*e));
    e->name = envd_strdup0(p->name);
    e->path = envd_strdup0(p->path);
    e->permissions = envd_strdup0(p->permissions);
    e->owner = envd_strdup0(p->owner);
    e->group = envd_strdup0(p->group);
    e->type = map_type(p->type);
    e->size = p->size;
    e->mode = p->mode;
    if (p->modified_time) {
        e->modified_sec = p->modified_time->seconds;
        e->modified_nsec = p->modified_time->nanos;
    }
    int has_target =
        p->_symlink_target_case == FILESYSTEM__ENTRY_INFO___SYMLINK_TARGET_SYMLINK_TARGET;
    if (has_target)
        e->symlink_target = envd_strdup0(p->symlink_target);
    if (!e->name || !e->path || !e->permissions || !e->owner || !e->group ||
        (has_target && !e->symlink_target) || copy_metadata(e, p) != 0) {
        envd_entry_clear(e);
        return ENVD_E_NOMEM;
    }
    return ENVD_OK;
}

envd_entry_info *envd_entry_from_proto(const Filesystem__EntryInfo *p)
{
    envd_entry_info *e = envd_malloc(sizeof(*e));
    if (e && envd_entry_fill(e, p) != ENVD_OK) {
        free(e);
        e = NULL;
    }
    return e;
}

/* ---- events (the WatchDir stream and the polling watchers) --------------- */

static envd_fs_event_type map_event(Filesystem__EventType t)
{
    switch (t) {
    case FILESYSTEM__EVENT_TYPE__EVENT_TYPE_CREATE: return ENVD_FS_EVENT_CREATE;
    case FILESYSTEM__EVENT_TYPE__EVENT_TYPE_WRITE: return ENVD_FS_EVENT_WRITE;
    case FILESYSTEM__EVENT_TYPE__EVENT_TYPE_REMOVE: return ENVD_FS_EVENT_REMOVE;
    case FILESYSTEM__EVENT_TYPE__EVENT_TYPE_RENAME: return ENVD_FS_EVENT_RENAME;
    case FILESYSTEM__EVENT_TYPE__EVENT_TYPE_CHMOD: return ENVD_FS_EVENT_CHMOD;
    default: return ENVD_FS_EVENT_UNKNOWN;
    }
}

envd_status envd_fs_event_from_proto(const Filesystem__FilesystemEvent *p, envd_fs_event *ev)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = map_event(p->type);
    char *name = envd_strdup0(p->name);
    if (!name)
        return ENVD_E_NOMEM;
    ev->name = name;
    if (p->_entry_case == FILESYSTEM__FILESYSTEM_EVENT___ENTRY_ENTRY && p->entry) {
        ev->entry = envd_entry_from_proto(p->entry);
        if (!ev->entry) {
            free(name);
            ev->name = NULL;
            return ENVD_E_NOMEM;
        }
    }
    return ENVD_OK;
}

void envd_fs_event_clear(envd_fs_event *ev)
{
    free((char *)ev->name);
    envd_entry_info_free((envd_entry_info *)ev->entry);
    memset(ev, 0, sizeof(*ev));
}

envd_status envd_fs_check_str(const char *what, const char *s)
{
    if (!s)
        return envd_start_error(ENVD_E_USAGE, "%s is NULL", what);
    if (!*s)
        return envd_start_error(ENVD_E_USAGE, "%s is empty", what);
    return ENVD_OK;
}

envd_status envd_fs_check(const envd_client *c, envd_future **out, const char *what,
                          const char *s)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!c)
        return envd_start_error(ENVD_E_USAGE, "client is NULL");
    return envd_fs_check_str(what, s);
}

envd_error *envd_fs_decode_error(const char *what)
{
    return envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_NONE, 0, "malformed %s response", what);
}

envd_error *envd_fs_nomem(void)
{
    return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
}

/* ---- RPCs whose request is one string ------------------------------------ */

/* Stat, MakeDir, Remove, GetWatcherEvents and RemoveWatcher all send a
 * message whose only field (number 1) is a string: one starter serves them,
 * each operation is a row (method, request type, argument name, result
 * kind, finish function and its context). */
envd_status envd_fs_one_string_start(envd_client *c, const envd_fs_one_string *row,
                                     const char *value, envd_future **out)
{
    envd_status st = envd_fs_check(c, out, row->arg, value);
    if (st != ENVD_OK)
        return st;
    union {
        ProtobufCMessage base;
        max_align_t align;
        char bytes[64];
    } m;
    const ProtobufCMessageDescriptor *d = row->request;
    if (d->sizeof_message > sizeof(m) || d->n_fields != 1 ||
        d->fields[0].type != PROTOBUF_C_TYPE_STRING)
        return envd_start_error(ENVD_E_USAGE, "%s is not a one-string request", d->name);
    protobuf_c_message_init(d, &m);
    *(const char **)(void *)(m.bytes + d->fields[0].offset) = value;
    envd_unary_spec spec = {.method = row->method,
                            .kind = row->kind,
                            .finish = row->finish,
                            .ctx = (void *)row->ctx,
                            .list_field = row->list_field};
    return envd_unary_start(c, &spec, &m.base, out);
}

/* ---- Stat / MakeDir / Move: one entry back -------------------------------- */

/* StatResponse, MakeDirResponse and MoveResponse share one layout: entry = 1.
 * ctx is the Go client's error prefix. */
static void entry_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err, void **result,
                         envd_free_fn *free_fn, envd_error **out_err)
{
    if (err) {
        *out_err = envd_error_wrap(err, ctx);
        return;
    }
    envd_pb_arena a;
    envd_pb_arena_init(&a);
    Filesystem__StatResponse *r = filesystem__stat_response__unpack(&a.alloc, len, resp);
    if (!r && a.nomem) {
        *out_err = envd_fs_nomem();
    } else if (!r || !r->entry) {
        *out_err = envd_fs_decode_error("entry");
    } else {
        *result = envd_entry_from_proto(r->entry);
        *free_fn = entry_free_fn;
        if (!*result)
            *out_err = envd_fs_nomem();
    }
    if (r)
        filesystem__stat_response__free_unpacked(r, &a.alloc);
}

envd_status envd_fs_get_info_async(envd_client *c, const char *path, envd_future **out)
{
    static const envd_fs_one_string row = {
        "/filesystem.Filesystem/Stat", &filesystem__stat_request__descriptor,
        "path", ENVD_FK_ENTRY, entry_finish, "failed to get file info", 0};
    return envd_fs_one_string_start(c, &row, path, out);
}

const envd_entry_info *envd_future_entry(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_ENTRY);
}

static void exists_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                          void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx, (void)resp, (void)len;
    envd_finish_bool(err, ENVD_NOT_FOUND, "failed to check existence", result, free_fn, out_err);
}

envd_status envd_fs_exists_async(envd_client *c, const char *path, envd_future **out)
{
    static const envd_fs_one_string row = {
        "/filesystem.Filesystem/Stat", &filesystem__stat_request__descriptor,
        "path", ENVD_FK_BOOL, exists_finish, NULL, 0};
    return envd_fs_one_string_start(c, &row, path, out);
}

static void make_dir_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                            void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx;
    if (!err) {
        /* The entry is not part of the Go client's answer; only check that
         * the reply is a MakeDirResponse. */
        envd_pb_arena a;
        envd_pb_arena_init(&a);
        Filesystem__MakeDirResponse *r = filesystem__make_dir_response__unpack(&a.alloc, len, resp);
        if (!r) {
            *out_err = a.nomem ? envd_fs_nomem() : envd_fs_decode_error("MakeDir");
            return;
        }
        filesystem__make_dir_response__free_unpacked(r, &a.alloc);
    }
    envd_finish_bool(err, ENVD_ALREADY_EXISTS, "failed to make directory", result, free_fn,
                     out_err);
}

envd_status envd_fs_make_dir_async(envd_client *c, const char *path, envd_future **out)
{
    static const envd_fs_one_string row = {
        "/filesystem.Filesystem/MakeDir", &filesystem__make_dir_request__descriptor,
        "path", ENVD_FK_BOOL, make_dir_finish, NULL, 0};
    return envd_fs_one_string_start(c, &row, path, out);
}

envd_status envd_fs_rename_async(envd_client *c, const char *old_path, const char *new_path,
                                 envd_future **out)
{
    envd_status st = envd_fs_check(c, out, "old_path", old_path);
    if (st == ENVD_OK)
        st = envd_fs_check_str("new_path", new_path);
    if (st != ENVD_OK)
        return st;
    Filesystem__MoveRequest req = FILESYSTEM__MOVE_REQUEST__INIT;
    req.source = (char *)old_path;
    req.destination = (char *)new_path;
    envd_unary_spec spec = {.method = "/filesystem.Filesystem/Move",
                            .kind = ENVD_FK_ENTRY,
                            .finish = entry_finish,
                            .ctx = "failed to rename"};
    return envd_unary_start(c, &spec, &req.base, out);
}

/* ---- Remove ---------------------------------------------------------------- */

void envd_fs_outcome_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                            void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)resp, (void)len, (void)result, (void)free_fn;
    if (err)
        *out_err = envd_error_wrap(err, ctx);
}

envd_status envd_fs_remove_async(envd_client *c, const char *path, envd_future **out)
{
    static const envd_fs_one_string row = {
        "/filesystem.Filesystem/Remove", &filesystem__remove_request__descriptor,
        "path", ENVD_FK_NONE, envd_fs_outcome_finish, "failed to remove", 0};
    return envd_fs_one_string_start(c, &row, path, out);
}

/* ---- ListDir --------------------------------------------------------------- */

void envd_entry_list_free(envd_entry_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        envd_entry_clear((envd_entry_info *)&l->items[i]);
    free((envd_entry_info *)l->items);
    free(l);
}

static void entry_list_free_fn(void *p)
{
    envd_entry_list_free(p);
}

static void list_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err, void **result,
                        envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx;
    if (err) {
        *out_err = envd_error_wrap(err, "failed to list directory");
        return;
    }
    envd_pb_arena a;
    envd_pb_arena_init(&a);
    Filesystem__ListDirResponse *r = filesystem__list_dir_response__unpack(&a.alloc, len, resp);
    if (!r) {
        *out_err = a.nomem ? envd_fs_nomem() : envd_fs_decode_error("ListDir");
        return;
    }
    envd_entry_list *l = envd_calloc(1, sizeof(*l));
    envd_entry_info *items = l && r->n_entries ? envd_calloc(r->n_entries, sizeof(*items)) : NULL;
    if (!l || (r->n_entries && !items)) {
        free(l);
        l = NULL;
    } else {
        l->items = items;
    }
    for (size_t i = 0; l && i < r->n_entries; i++) {
        const Filesystem__EntryInfo *pe = r->entries[i];
        if (!pe || map_type(pe->type) == ENVD_FILE_TYPE_UNKNOWN)
            continue; /* the Go client drops what it cannot name */
        if (envd_entry_fill(&items[l->count], pe) != ENVD_OK) {
            envd_entry_list_free(l);
            l = NULL;
            break;
        }
        l->count++;
    }
    filesystem__list_dir_response__free_unpacked(r, &a.alloc);
    if (!l) {
        *out_err = envd_fs_nomem();
        return;
    }
    *result = l;
    *free_fn = entry_list_free_fn;
}

envd_status envd_fs_list_async(envd_client *c, const char *path, uint32_t depth, envd_future **out)
{
    envd_status st = envd_fs_check(c, out, "path", path);
    if (st != ENVD_OK)
        return st;
    Filesystem__ListDirRequest req = FILESYSTEM__LIST_DIR_REQUEST__INIT;
    req.path = (char *)path;
    req.depth = depth >= 1 ? depth : 1;
    envd_unary_spec spec = {.method = "/filesystem.Filesystem/ListDir",
                            .kind = ENVD_FK_ENTRY_LIST,
                            .finish = list_finish,
                            .list_field = 1 /* entries */};
    return envd_unary_start(c, &spec, &req.base, out);
}

const envd_entry_list *envd_future_entry_list(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_ENTRY_LIST);
}

