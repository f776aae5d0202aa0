/* Clients for the sandboxes a configuration file names: an `id` entry
 * directly, a `k8s` entry through the Sandbox lookup. Lives in the k8s
 * layer because it calls down into both config and k8s. */
#include "api/internal.h"
#include "api/sync.h"
#include "config/config_file.h"

#include <stdlib.h>

/* The entry to use, or NULL with *err set. *none: the file lists no
 * sandbox and none was asked for. */
static const envd_sandbox_entry *pick(const envd_config_file *f, const char *name, int *none,
                                      envd_error **err)
{
    *none = 0;
    if (name) {
        const envd_sandbox_entry *e = envd_config_file_sandbox_find(f, name);
        if (!e)
            *err = envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_NONE, 0,
                                  "%s: no sandbox named '%s'", f->path, name);
        return e;
    }
    if (f->n_sandboxes == 0)
        *none = 1;
    return f->n_sandboxes ? &f->sandboxes[0] : NULL;
}

/* The file's options with the entry's own token. Caller frees. */
static envd_config *entry_config(const envd_config_file *f, const envd_sandbox_entry *e)
{
    envd_config *c = envd_config_dup(f->cfg);
    if (c && e && e->runtime_token &&
        envd_config_set_runtime_token(c, e->runtime_token) != ENVD_OK) {
        envd_config_free(c);
        return NULL;
    }
    return c;
}

static void client_free_fn(void *p)
{
    envd_client_free(p);
}

envd_status envd_config_file_client_async(envd_runtime *rt, const envd_config_file *f,
                                          const char *name, envd_future **out)
{
    if (!out)
        return envd_start_error(ENVD_E_USAGE, "out is NULL");
    *out = NULL;
    if (!rt)
        return envd_start_error(ENVD_E_USAGE, "runtime is NULL");
    if (!f)
        return envd_start_error(ENVD_E_USAGE, "file is NULL");
    envd_error *e = NULL;
    int none;
    const envd_sandbox_entry *en = pick(f, name, &none, &e);
    envd_config *c = (en || none) ? entry_config(f, en) : NULL;
    if ((en || none) && !c)
        return ENVD_E_NOMEM;
    envd_status st;
    if (en && en->k8s_name) {
        st = envd_client_from_k8s_async(rt, en->k8s_namespace, en->k8s_name, c, f->k8s, out);
    } else {
        /* Nothing to look up: a future that is already complete. */
        envd_future *fut = envd_future_create(ENVD_FK_CLIENT);
        envd_client *cl = NULL;
        if (!fut) {
            st = ENVD_E_NOMEM;
        } else {
            if (en || none)
                envd_client_new(rt, en ? en->id : NULL, c, &cl, &e);
            envd_future_complete(fut, cl, cl ? client_free_fn : NULL, cl ? NULL : e);
            e = NULL;
            *out = fut;
            st = ENVD_OK;
        }
    }
    envd_error_free(e);
    envd_config_free(c);
    return st;
}
