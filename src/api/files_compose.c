/* POST /files/compose (envd >= 0.5.5): a JSON body through the one /files
 * transfer (files_xfer.c); the reply is one EntryInfo (files_write.c). */
#include "api/files_internal.h"
#include "api/sync.h"

#include <jansson.h>
#include <stdlib.h>

/* {"source_paths":[...],"destination":"...","username":"..."}; NULL on OOM. */
static char *compose_body(const char *const *sources, size_t n, const char *destination,
                          const char *user)
{
    json_t *srcs = json_array();
    for (size_t i = 0; srcs && i < n; i++)
        if (json_array_append_new(srcs, json_string(sources[i])) != 0) {
            json_decref(srcs);
            srcs = NULL;
        }
    json_t *root = srcs ? json_pack("{s:o, s:s, s:s}", "source_paths", srcs, "destination",
                                    destination, "username", user)
                        : NULL;
    char *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return out;
}

envd_status envd_files_compose_async(envd_client *c, const char *const *sources, size_t n,
                                     const char *destination, const envd_files_opts *o,
                                     envd_future **out)
{
    return envd_files_compose_start(c, sources, n, destination, o, 0, out);
}

envd_status envd_files_compose_start(envd_client *c, const char *const *sources, size_t n,
                                     const char *destination, const envd_files_opts *o,
                                     int no_slot, envd_future **out)
{
    if (out)
        *out = NULL;
    if (!c)
        return envd_start_error(ENVD_E_USAGE, "client is NULL");
    if (!sources || n == 0)
        return envd_start_error(ENVD_E_USAGE, "no sources to compose");
    for (size_t i = 0; i < n; i++)
        if (!sources[i] || !*sources[i])
            return envd_start_error(ENVD_E_USAGE, "sources[%zu] is %s", i,
                                    sources[i] ? "empty" : "NULL");
    if (!destination || !*destination)
        return envd_start_error(ENVD_E_USAGE, "destination is %s", destination ? "empty" : "NULL");
    envd_status s = envd_client_gate(c, ENVD_GATE_COMPOSE);
    if (s != ENVD_OK)
        return s;
    /* Only the user and the timeouts apply: no gzip, metadata or range. */
    envd_files_opts plain = o ? *o : envd_files_opts_default;
    plain.gzip = plain.octet = plain.has_range = 0;
    plain.meta = (envd_kvlist){0};
    plain.progress = NULL;
    plain.parts = 0;
    char *body = compose_body(sources, n, destination, plain.user ? plain.user : c->cfg->user);
    if (!body)
        return ENVD_E_NOMEM;
    files_args a = {.path = destination, .compose_json = body, .no_slot = no_slot};
    s = envd_files_xfer_start(c, &a, &plain, out);
    free(body);
    return s;
}
