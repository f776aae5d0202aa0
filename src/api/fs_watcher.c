/* The polling watchers (CreateWatcher, GetWatcherEvents, RemoveWatcher), as
 * the Python SDK's synchronous watch_dir: the watcher lives in envd and
 * buffers events until they are fetched. */
#include "api/fs_internal.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

static void id_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err, void **result,
                      envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx;
    if (err) {
        *out_err = envd_error_wrap(err, "failed to create watcher");
        return;
    }
    Filesystem__CreateWatcherResponse *r =
        filesystem__create_watcher_response__unpack(NULL, len, resp);
    if (!r || !r->watcher_id || !r->watcher_id[0]) {
        *out_err = envd_fs_decode_error("CreateWatcher");
    } else if (!(*result = envd_strdup(r->watcher_id))) {
        *out_err = envd_fs_nomem();
    } else {
        *free_fn = free;
    }
    if (r)
        filesystem__create_watcher_response__free_unpacked(r, NULL);
}

envd_status envd_fs_watcher_create_async(envd_client *c, const char *path, unsigned flags,
                                         envd_future **out)
{
    envd_status st = envd_fs_check(c, out, "path", path);
    if (st != ENVD_OK)
        return st;
    /* CreateWatcherRequest has WatchDirRequest's fields and numbers. */
    Filesystem__CreateWatcherRequest req = FILESYSTEM__CREATE_WATCHER_REQUEST__INIT;
    req.path = (char *)path;
    req.recursive = (flags & ENVD_WATCH_RECURSIVE) != 0;
    req.include_entry = (flags & ENVD_WATCH_INCLUDE_ENTRY) != 0;
    req.allow_network_mounts = (flags & ENVD_WATCH_ALLOW_NETWORK_MOUNTS) != 0;
    envd_unary_spec spec = {.method = "/filesystem.Filesystem/CreateWatcher",
                            .kind = ENVD_FK_WATCHER_ID,
                            .finish = id_finish};
    return envd_unary_start(c, &spec, &req.base, out);
}

const char *envd_future_watcher_id(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_WATCHER_ID);
}

void envd_fs_event_list_free(envd_fs_event_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        envd_fs_event_clear((envd_fs_event *)&l->items[i]);
    free((envd_fs_event *)l->items);
    free(l);
}

static void event_list_free_fn(void *p)
{
    envd_fs_event_list_free(p);
}

static void events_finish(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                          void **result, envd_free_fn *free_fn, envd_error **out_err)
{
    (void)ctx;
    if (err) {
        *out_err = envd_error_wrap(err, "failed to get watcher events");
        return;
    }
    Filesystem__GetWatcherEventsResponse *r =
        filesystem__get_watcher_events_response__unpack(NULL, len, resp);
    if (!r) {
        *out_err = envd_fs_decode_error("GetWatcherEvents");
        return;
    }
    envd_fs_event_list *l = envd_calloc(1, sizeof(*l));
    envd_fs_event *items = l && r->n_events ? envd_calloc(r->n_events, sizeof(*items)) : NULL;
    if (!l || (r->n_events && !items)) {
        free(l);
        l = NULL;
    } else {
        l->items = items;
    }
    for (size_t i = 0; l && i < r->n_events; i++) {
        if (!r->events[i])
            continue;
        if (envd_fs_event_from_proto(r->events[i], &items[l->count]) != ENVD_OK) {
            envd_fs_event_list_free(l);
            l = NULL;
            break;
        }
        l->count++;
    }
    filesystem__get_watcher_events_response__free_unpacked(r, NULL);
    if (!l) {
        *out_err = envd_fs_nomem();
        return;
    }
    *result = l;
    *free_fn = event_list_free_fn;
}

envd_status envd_fs_watcher_events_async(envd_client *c, const char *id, envd_future **out)
{
    static const envd_fs_one_string row = {
        "/filesystem.Filesystem/GetWatcherEvents",
        &filesystem__get_watcher_events_request__descriptor, "id", ENVD_FK_EVENT_LIST, events_finish, NULL,
        1 /* events */};
    return envd_fs_one_string_start(c, &row, id, out);
}

const envd_fs_event_list *envd_future_event_list(const envd_future *f)
{
    return envd_future_result(f, ENVD_FK_EVENT_LIST);
}

envd_status envd_fs_watcher_remove_async(envd_client *c, const char *id, envd_future **out)
{
    static const envd_fs_one_string row = {
        "/filesystem.Filesystem/RemoveWatcher", &filesystem__remove_watcher_request__descriptor,
        "id", ENVD_FK_NONE, envd_fs_outcome_finish, "failed to remove watcher", 0};
    return envd_fs_one_string_start(c, &row, id, out);
}

