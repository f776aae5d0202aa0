/* Filesystem RPCs: Stat (get_info, exists), ListDir, MakeDir, Move, Remove,
 * with the Go client's result mapping (exists: not_found -> false; make_dir:
 * already_exists -> false; list: entries of unknown type dropped). */
#include "api/fs_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- entries ------------------------------------------------------------- */

void envd_entry_info_free(envd_entry_info *e)
{
    if (!e)
        return;
    envd_entry_priv *p = (envd_entry_priv *)e;
    free((char *)e->name);
    free((char *)e->path);
    free((char *)e->permissions);
    free((char *)e->owner);
    free((char *)e->group);
    free((char *)e->symlink_target);
    for (size_t i = 0; i < p->n_meta; i++) {
        free(p->meta_keys[i]);
        free(p->meta_values[i]);
    }
    free(p->meta_keys);
    free(p->meta_values);
    free(p);
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

static int copy_metadata(envd_entry_priv *e, const Filesystem__EntryInfo *p)
{
    if (p->n_metadata == 0)
        return 0;
    e->meta_keys = calloc(p->n_metadata, sizeof(char *));
    e->meta_values = calloc(p->n_metadata, sizeof(char *));
    if (!e->meta_keys || !e->meta_values)
        return -1;
    /* Insertion sort by key: a handful of entries, and lookups then stop
     * early and the order is stable for the caller. */
    for (size_t i = 0; i < p->n_metadata; i++) {
        const Filesystem__EntryInfo__MetadataEntry *m = p->metadata[i];
        char *k = envd_strdup0(m->key), *v = envd_strdup0(m->value);
        if (!k || !v) {
            free(k);
            free(v);
            return -1;
        }
        size_t j = e->n_meta;
        while (j > 0 && strcmp(e->meta_keys[j - 1], k) > 0) {
            e->meta_keys[j] = e->meta_keys[j - 1];
            e->meta_values[j] = e->meta_values[j - 1];
            j--;
        }
        e->meta_keys[j] = k;
        e->meta_values[j] = v;
        e->n_meta++;
    }
    return 0;
}

envd_entry_info *envd_entry_from_proto(const Filesystem__EntryInfo *p)
{
    envd_entry_priv *pe = calloc(1, sizeof(*pe));
    if (!pe)
        return NULL;
    envd_entry_info *e = &pe->pub;
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
        (has_target && !e->symlink_target) || copy_metadata(pe, p) != 0) {
        envd_entry_info_free(e);
        return NULL;
    }
    return e;
}

size_t envd_entry_info_metadata_count(const envd_entry_info *e)
{
    return e ? ((const envd_entry_priv *)e)->n_meta : 0;
}

envd_status envd_entry_info_metadata_at(const envd_entry_info *e, size_t i, const char **key,
                                        const char **value)
{
    const envd_entry_priv *p = (const envd_entry_priv *)e;
    if (!e || i >= p->n_meta)
        return ENVD_E_USAGE;
    if (key)
        *key = p->meta_keys[i];
    if (value)
        *value = p->meta_values[i];
    return ENVD_OK;
}

const char *envd_entry_info_metadata_get(const envd_entry_info *e, const char *key)
{
    if (!e || !key)
        return NULL;
    const envd_entry_priv *p = (const envd_entry_priv *)e;
    for (size_t i = 0; i < p->n_meta; i++)
        if (strcmp(p->meta_keys[i], key) == 0)
            return p->meta_values[i];
    return NULL;
}

envd_error *envd_fs_decode_error(const char *what)
{
    return envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_NONE, 0, "malformed %s response", what);
}

static envd_error *nomem(void)
{
    return envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
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
    Filesystem__StatResponse *r = filesystem__stat_response__unpack(NULL, len, resp);
    if (!r || !r->entry) {
        *out_err = envd_fs_decode_error("entry");
    } else {
        *result = envd_entry_from_proto(r->entry);
        *free_fn = entry_free_fn;
        if (!*result)
            *out_err = nomem();
    }
    if (r)
        filesystem__stat_response__free_unpacked(r, NULL);
}

envd_status envd_fs_get_info_async(envd_client *c, const char *path, envd_future **out)
{
    if (!c || !path || !out)
        return ENVD_E_USAGE;
    Filesystem__StatRequest req = FILESYSTEM__STAT_REQUEST__INIT;
    req.path = (char *)path;
    envd_unary_spec spec = {.method = "/filesystem.Filesystem/Stat",
                            .kind = ENVD_FK_ENTRY,
                            .finish = entry_finish,
                            .ctx = "failed to get file info"};
    return envd_unary_start(c, &spec, &req.base, out);
}

const envd_entry_info *envd_future_entry(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_ENTRY);
}

envd_status envd_fs_get_info(envd_client *c, const char *path, envd_entry_info **out,
                             envd_error **err)
{
    if (err)
        *err = NULL;
    if (out)
        *out = NULL;
    if (!out)
        return ENVD_E_USAGE;
    envd_future *f;
    envd_status s = envd_fs_get_info_async(c, path, &f);
    if (s != ENVD_OK)
        return s;
    return envd_sync_finish(f, (void **)out, err);
}

static int *new_bool(int v)
{
    int *b = malloc(sizeof(int));
    if (b)
        *b = v;
    return b;
}

int envd_future_bool(const envd_future *f)
{
    const int *b = envd_future_result(f, ENVD_FK_BOOL);
    return b ? *b : 0;
}

/* Takes the boolean out of a finished sync call. */
static envd_status bool_finish_sync(envd_future *f, int *value, envd_error **err)
{
    int *b = NULL;
    envd_status s = envd_sync_finish(f, (void **)&b, err);
    if (value)
        *value = b ? *b : 0;
    free(b);
    return s;
}

static void exists_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                          void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx, (void)resp, (void)len;
    if (err && err->code != ENVD_NOT_FOUND) {
        *out_err = envd_error_wrap(err, "failed to check existence");
        return;
    }
    *result = new_bool(err == NULL);
    *free_fn = free;
    if (!*result)
        *out_err = nomem();
    envd_error_free(err);
}

envd_status envd_fs_exists_async(envd_client *c, const char *path, envd_future **out)
{
    if (!c || !path || !out)
        return ENVD_E_USAGE;
    Filesystem__StatRequest req = FILESYSTEM__STAT_REQUEST__INIT;
    req.path = (char *)path;
    envd_unary_spec spec = {
        .method = "/filesystem.Filesystem/Stat", .kind = ENVD_FK_BOOL, .finish = exists_finish};
    return envd_unary_start(c, &spec, &req.base, out);
}

envd_status envd_fs_exists(envd_client *c, const char *path, int *exists, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!exists)
        return ENVD_E_USAGE;
    *exists = 0;
    envd_future *f;
    envd_status s = envd_fs_exists_async(c, path, &f);
    if (s != ENVD_OK)
        return s;
    return bool_finish_sync(f, exists, err);
}

static void make_dir_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                            void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx;
    if (err && err->code != ENVD_ALREADY_EXISTS) {
        *out_err = envd_error_wrap(err, "failed to make directory");
        return;
    }
    if (!err) {
        /* The entry is not part of the Go client's answer; only check that
         * the reply is a MakeDirResponse. */
        Filesystem__MakeDirResponse *r = filesystem__make_dir_response__unpack(NULL, len, resp);
        if (!r) {
            *out_err = envd_fs_decode_error("MakeDir");
            return;
        }
        filesystem__make_dir_response__free_unpacked(r, NULL);
    }
    *result = new_bool(err == NULL);
    *free_fn = free;
    if (!*result)
        *out_err = nomem();
    envd_error_free(err);
}

envd_status envd_fs_make_dir_async(envd_client *c, const char *path, envd_future **out)
{
    if (!c || !path || !out)
        return ENVD_E_USAGE;
    Filesystem__MakeDirRequest req = FILESYSTEM__MAKE_DIR_REQUEST__INIT;
    req.path = (char *)path;
    envd_unary_spec spec = {.method = "/filesystem.Filesystem/MakeDir",
                            .kind = ENVD_FK_BOOL,
                            .finish = make_dir_finish};
    return envd_unary_start(c, &spec, &req.base, out);
}

envd_status envd_fs_make_dir(envd_client *c, const char *path, int *created, envd_error **err)
{
    if (err)
        *err = NULL;
    if (created)
        *created = 0;
    envd_future *f;
    envd_status s = envd_fs_make_dir_async(c, path, &f);
    if (s != ENVD_OK)
        return s;
    return bool_finish_sync(f, created, err);
}

envd_status envd_fs_rename_async(envd_client *c, const char *old_path, const char *new_path,
                                 envd_future **out)
{
    if (!c || !old_path || !new_path || !out)
        return ENVD_E_USAGE;
    Filesystem__MoveRequest req = FILESYSTEM__MOVE_REQUEST__INIT;
    req.source = (char *)old_path;
    req.destination = (char *)new_path;
    envd_unary_spec spec = {.method = "/filesystem.Filesystem/Move",
                            .kind = ENVD_FK_ENTRY,
                            .finish = entry_finish,
                            .ctx = "failed to rename"};
    return envd_unary_start(c, &spec, &req.base, out);
}

envd_status envd_fs_rename(envd_client *c, const char *old_path, const char *new_path,
                           envd_entry_info **out, envd_error **err)
{
    if (err)
        *err = NULL;
    if (out)
        *out = NULL;
    envd_future *f;
    envd_status s = envd_fs_rename_async(c, old_path, new_path, &f);
    if (s != ENVD_OK)
        return s;
    envd_entry_info *e = NULL;
    s = envd_sync_finish(f, (void **)&e, err);
    if (out)
        *out = e;
    else
        envd_entry_info_free(e);
    return s;
}

/* ---- Remove ---------------------------------------------------------------- */

static void remove_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                          void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx, (void)resp, (void)len, (void)result, (void)free_fn;
    if (err)
        *out_err = envd_error_wrap(err, "failed to remove");
}

envd_status envd_fs_remove_async(envd_client *c, const char *path, envd_future **out)
{
    if (!c || !path || !out)
        return ENVD_E_USAGE;
    Filesystem__RemoveRequest req = FILESYSTEM__REMOVE_REQUEST__INIT;
    req.path = (char *)path;
    envd_unary_spec spec = {
        .method = "/filesystem.Filesystem/Remove", .kind = ENVD_FK_NONE, .finish = remove_finish};
    return envd_unary_start(c, &spec, &req.base, out);
}

envd_status envd_fs_remove(envd_client *c, const char *path, envd_error **err)
{
    if (err)
        *err = NULL;
    envd_future *f;
    envd_status s = envd_fs_remove_async(c, path, &f);
    if (s != ENVD_OK)
        return s;
    return envd_sync_finish(f, NULL, err);
}

/* ---- ListDir --------------------------------------------------------------- */

struct envd_entry_list {
    size_t n;
    envd_entry_info **entries;
};

void envd_entry_list_free(envd_entry_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        envd_entry_info_free(l->entries[i]);
    free(l->entries);
    free(l);
}

static void entry_list_free_fn(void *p)
{
    envd_entry_list_free(p);
}

size_t envd_entry_list_count(const envd_entry_list *l)
{
    return l ? l->n : 0;
}

const envd_entry_info *envd_entry_list_at(const envd_entry_list *l, size_t i)
{
    return l && i < l->n ? l->entries[i] : NULL;
}

static void list_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err, void **result,
                        envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx;
    if (err) {
        *out_err = envd_error_wrap(err, "failed to list directory");
        return;
    }
    Filesystem__ListDirResponse *r = filesystem__list_dir_response__unpack(NULL, len, resp);
    if (!r) {
        *out_err = envd_fs_decode_error("ListDir");
        return;
    }
    envd_entry_list *l = calloc(1, sizeof(*l));
    if (l && r->n_entries)
        l->entries = calloc(r->n_entries, sizeof(*l->entries));
    if (!l || (r->n_entries && !l->entries)) {
        free(l);
        l = NULL;
    }
    for (size_t i = 0; l && i < r->n_entries; i++) {
        const Filesystem__EntryInfo *pe = r->entries[i];
        if (!pe || map_type(pe->type) == ENVD_FILE_TYPE_UNKNOWN)
            continue; /* the Go client drops what it cannot name */
        envd_entry_info *e = envd_entry_from_proto(pe);
        if (!e) {
            envd_entry_list_free(l);
            l = NULL;
            break;
        }
        l->entries[l->n++] = e;
    }
    filesystem__list_dir_response__free_unpacked(r, NULL);
    if (!l) {
        *out_err = nomem();
        return;
    }
    *result = l;
    *free_fn = entry_list_free_fn;
}

envd_status envd_fs_list_async(envd_client *c, const char *path, uint32_t depth, envd_future **out)
{
    if (!c || !path || !out)
        return ENVD_E_USAGE;
    Filesystem__ListDirRequest req = FILESYSTEM__LIST_DIR_REQUEST__INIT;
    req.path = (char *)path;
    req.depth = depth >= 1 ? depth : 1;
    envd_unary_spec spec = {.method = "/filesystem.Filesystem/ListDir",
                            .kind = ENVD_FK_ENTRY_LIST,
                            .finish = list_finish};
    return envd_unary_start(c, &spec, &req.base, out);
}

const envd_entry_list *envd_future_entry_list(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_ENTRY_LIST);
}

envd_status envd_fs_list(envd_client *c, const char *path, uint32_t depth, envd_entry_list **out,
                         envd_error **err)
{
    if (err)
        *err = NULL;
    if (out)
        *out = NULL;
    if (!out)
        return ENVD_E_USAGE;
    envd_future *f;
    envd_status s = envd_fs_list_async(c, path, depth, &f);
    if (s != ENVD_OK)
        return s;
    return envd_sync_finish(f, (void **)out, err);
}
