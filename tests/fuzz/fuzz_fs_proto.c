/* Filesystem replies (protobuf from the server) through the code that turns
 * them into the public structs (api/fs.c): ListDir entries, Stat, watch
 * stream events and polled watcher events. */
#include "fuzz_util.h"

#include "api/fs_internal.h"
#include "core/pb_scan.h"

static void entry(const Filesystem__EntryInfo *p)
{
    envd_entry_info *e = envd_entry_from_proto(p);
    if (e)
        envd_entry_info_free(e);
}

static void event(const Filesystem__FilesystemEvent *p)
{
    envd_fs_event ev;
    if (envd_fs_event_from_proto(p, &ev) == ENVD_OK)
        envd_fs_event_clear(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The entry count taken before decoding (unary.c) agrees with
     * protobuf-c on whatever it decodes. */
    size_t counted = 0;
    int scanned = envd_pb_count_field(data, size, 1, &counted);
    Filesystem__ListDirResponse *l = filesystem__list_dir_response__unpack(NULL, size, data);
    if (l) {
        FUZZ_CHECK(scanned == 0 && counted == l->n_entries);
        for (size_t i = 0; i < l->n_entries; i++)
            entry(l->entries[i]);
        filesystem__list_dir_response__free_unpacked(l, NULL);
    }
    Filesystem__StatResponse *s = filesystem__stat_response__unpack(NULL, size, data);
    if (s) {
        if (s->entry)
            entry(s->entry);
        filesystem__stat_response__free_unpacked(s, NULL);
    }
    Filesystem__WatchDirResponse *w = filesystem__watch_dir_response__unpack(NULL, size, data);
    if (w) {
        if (w->event_case == FILESYSTEM__WATCH_DIR_RESPONSE__EVENT_FILESYSTEM && w->filesystem)
            event(w->filesystem);
        filesystem__watch_dir_response__free_unpacked(w, NULL);
    }
    Filesystem__GetWatcherEventsResponse *g =
        filesystem__get_watcher_events_response__unpack(NULL, size, data);
    if (g) {
        for (size_t i = 0; i < g->n_events; i++)
            event(g->events[i]);
        filesystem__get_watcher_events_response__free_unpacked(g, NULL);
    }
    return 0;
}
