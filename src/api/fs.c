/* Filesystem RPCs: get_info and exists (Stat). */
#include "api/internal.h"
#include "filesystem.pb-c.h"

#include <stdlib.h>
#include <string.h>

void envd_entry_info_free(envd_entry_info *e)
{
    if (!e)
        return;
    free((char *)e->name);
    free((char *)e->path);
    free((char *)e->permissions);
    free((char *)e->owner);
    free((char *)e->group);
    free((char *)e->symlink_target);
    free(e);
}

static void entry_free_fn(void *p) { envd_entry_info_free(p); }

static envd_file_type map_type(Filesystem__FileType t)
{
    switch (t) {
    case FILESYSTEM__FILE_TYPE__FILE_TYPE_FILE: return ENVD_FILE_TYPE_FILE;
    case FILESYSTEM__FILE_TYPE__FILE_TYPE_DIRECTORY: return ENVD_FILE_TYPE_DIRECTORY;
    case FILESYSTEM__FILE_TYPE__FILE_TYPE_SYMLINK: return ENVD_FILE_TYPE_SYMLINK;
    default: return ENVD_FILE_TYPE_UNKNOWN;
    }
}

/* Copies a decoded EntryInfo into the public shape. NULL on OOM. */
envd_entry_info *envd_entry_from_proto(const Filesystem__EntryInfo *p);
envd_entry_info *envd_entry_from_proto(const Filesystem__EntryInfo *p)
{
    envd_entry_info *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
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
    if (p->_symlink_target_case == FILESYSTEM__ENTRY_INFO___SYMLINK_TARGET_SYMLINK_TARGET)
        e->symlink_target = envd_strdup0(p->symlink_target);
    if (!e->name || !e->path || !e->permissions || !e->owner || !e->group ||
        (p->_symlink_target_case == FILESYSTEM__ENTRY_INFO___SYMLINK_TARGET_SYMLINK_TARGET &&
         !e->symlink_target)) {
        envd_entry_info_free(e);
        return NULL;
    }
    return e;
}

static envd_error *decode_error(const char *what)
{
    return envd_error_new(ENVD_E_PROTOCOL, ENVD_TRANSPORT_NONE, 0, "malformed %s response", what);
}

static void stat_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                        void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx;
    if (err) {
        *out_err = envd_error_wrap(err, "failed to get file info");
        return;
    }
    Filesystem__StatResponse *r = filesystem__stat_response__unpack(NULL, len, resp);
    if (!r || !r->entry) {
        *out_err = decode_error("Stat");
    } else {
        *result = envd_entry_from_proto(r->entry);
        *free_fn = entry_free_fn;
        if (!*result)
            *out_err = envd_error_new(ENVD_E_NOMEM, ENVD_TRANSPORT_NONE, 0, "out of memory");
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
    envd_unary_spec spec = {"/filesystem.Filesystem/Stat", ENVD_FK_ENTRY, stat_finish, NULL, NULL,
                            NULL};
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

envd_status envd_fs_exists(envd_client *c, const char *path, int *exists, envd_error **err)
{
    if (err)
        *err = NULL;
    if (!exists)
        return ENVD_E_USAGE;
    *exists = 0;
    envd_entry_info *e = NULL;
    envd_error *e2 = NULL;
    envd_status s = envd_fs_get_info(c, path, &e, &e2);
    if (s == ENVD_OK) {
        *exists = 1;
        envd_entry_info_free(e);
        return ENVD_OK;
    }
    if (s == ENVD_NOT_FOUND) {
        envd_error_free(e2);
        return ENVD_OK;
    }
    if (err)
        *err = e2;
    else
        envd_error_free(e2);
    return s;
}
