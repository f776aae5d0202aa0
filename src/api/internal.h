/* What the API layer's files share: runtime, client, and the generic unary
 * operation that turns one RPC into one future. */
#ifndef ENVD_API_INTERNAL_H
#define ENVD_API_INTERNAL_H

#include "config/config.h"
#include "core/error.h"
#include "core/future.h"
#include "core/timer.h"
#include "transport/transport.h"

#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdatomic.h>

/* Result kinds carried by futures (for the typed accessors). */
enum {
    ENVD_FK_NONE = 0,
    ENVD_FK_ENTRY,
    ENVD_FK_BOOL,
    ENVD_FK_COMMAND,
    ENVD_FK_HANDLE,
    ENVD_FK_PROCESS_LIST,
    ENVD_FK_BYTES,
    ENVD_FK_ENTRY_LIST,
    ENVD_FK_WRITE_INFO,
    ENVD_FK_PROBE,
    ENVD_FK_CLIENT, /* envd_client_from_k8s_async: an envd_client */
    ENVD_FK_TRANSFER,   /* /files stream reads: bytes moved */
    ENVD_FK_WATCH,      /* envd_fs_watch_dir_async: an envd_watch */
    ENVD_FK_WATCHER_ID, /* envd_fs_watcher_create_async: a string */
    ENVD_FK_EVENT_LIST, /* envd_fs_watcher_events_async */
    ENVD_FK_K8S_SANDBOX,     /* envd_k8s_sandbox_get: an envd_k8s_sandbox */
    ENVD_FK_K8S_SANDBOX_LIST, /* envd_k8s_sandbox_list_async: an envd_k8s_sandboxes */
    ENVD_FK_K8S_CLAIM,        /* envd_k8s_claim_async: an envd_k8s_claimed */
    ENVD_FK_SANDBOX,          /* envd_sandbox_create_async, _connect_async: an envd_sandbox */
    ENVD_FK_SANDBOX_LIST,     /* envd_sandbox_list_async: an envd_sandboxes */
    ENVD_FK_CODE_EXECUTION,   /* envd_code_run_async: an envd_code_execution */
    ENVD_FK_CODE_CONTEXT,     /* envd_code_context_create_async: an envd_code_context */
    ENVD_FK_CODE_CONTEXT_LIST /* envd_code_context_list_async: an envd_code_contexts */
};

struct envd_runtime {
    envd_timers *timers;
    envd_grpc_engine *grpc;
    envd_curl_engine *curl;
    struct envd_k8s_worker *k8s; /* exec plugins; made on first use (k8s/worker.h) */
    pthread_mutex_t mu;
    pthread_cond_t slot_cv;
    int inflight;
    int max_inflight;
    envd_pool_limits pool; /* per endpoint, for both engines */
    int fail_fast;
    int closing;
    envd_transport_choice *choice; /* transport auto, per endpoint */
    struct envd_op *live;          /* ops with work to finish at free (op.h) */
    /* Fire-and-forget kills still on the wire (a cancelled run's SIGKILL):
     * envd_runtime_free lets them land before the engines go. */
    int kills_pending;
    pthread_cond_t kills_cv;
    /* Callbacks of ops' timers running now (envd_op_later): envd_runtime_free
     * waits for them before the engines they may start work on go. */
    int later_running;
    pthread_cond_t later_cv;
};

struct envd_client {
    /* The caller's, and one per command handle (a handle's calls and a
     * run's kill at runtime free need the client after the caller let go;
     * envd_client_free drops one). */
    atomic_int refs;
    envd_runtime *rt;
    envd_config *cfg;
    char *sandbox_id;
    char *runtime_url;
    envd_endpoint ep;
    /* Headers every request carries, built once: the Go client's set, in
     * its order, custom headers last and overriding. */
    envd_kv *headers;
    size_t n_headers;
    size_t auth_index;  /* position of authorization in headers, or SIZE_MAX */
    char *own_auth;     /* header values the client made itself */
    char *own_port;
    char *keepalive;    /* "50" */
    char *files_path;   /* path prefix of the runtime URL ("" or "/x") + "/files" */
    atomic_int transport; /* envd_transport_kind: GRPC, CONNECT or AUTO (unknown) */
    struct envd_traffic *traffic; /* the token provider's state, or NULL (api/traffic.h) */
};

void envd_client_ref(envd_client *c);

/* base_url and authority of url into ep, and "<path prefix>/files" into
 * *files_path (client.c; the code interpreter's base URL goes through it
 * too). ENVD_E_CONFIG (with *err) for a URL that is not http(s). */
envd_status envd_endpoint_parse(const char *url, envd_endpoint *ep, char **files_path,
                                envd_error **err);

/* Version gates (gates.c): features newer envd versions added. */
typedef enum envd_gate {
    ENVD_GATE_STDIN_OFF,
    ENVD_GATE_CLOSE_STDIN,
    ENVD_GATE_OCTET_UPLOAD,
    ENVD_GATE_METADATA,
    ENVD_GATE_RECURSIVE_WATCH,
    ENVD_GATE_WATCH_ENTRY,
    ENVD_GATE_WATCH_NETWORK,
    ENVD_GATE_COMPOSE,
} envd_gate;
/* 1 when the sandbox's envd serves g, or its version is unknown. */
int envd_client_serves(const envd_client *c, envd_gate g);
/* ENVD_OK, or ENVD_UNIMPLEMENTED with a start error naming both versions. */
envd_status envd_client_gate(const envd_client *c, envd_gate g);

/* In-flight cap. acquire returns ENVD_E_BUSY (fail-fast) or ENVD_E_SHUTDOWN. */
envd_status envd_rt_acquire(envd_runtime *rt);
void envd_rt_release(envd_runtime *rt);

/* The transport for RPCs of this client, probing once when auto. */
envd_rpc_transport *envd_client_rpc_transport(envd_client *c);

/* Headers for a call: the client's, with authorization replaced for `user`
 * (NULL = keep), plus up to `extra` more the caller appends. Returns the
 * count written to out (capacity c->n_headers + 1 + extra). *owned gets a
 * string the caller frees after the call starts (may be NULL). */
size_t envd_call_headers(envd_client *c, const char *user, envd_kv *out, char **owned);

/* Converts a unary response. On success sets *result and *free_fn (result may
 * be NULL). err is the transport's error (owned by finish: it frees it or
 * returns it, possibly changed, through *out_err). */
typedef void (*envd_unary_finish)(void *ctx, const uint8_t *resp, size_t len, envd_error *err,
                                  void **result, envd_free_fn *free_fn, envd_error **out_err);

typedef struct envd_unary_spec {
    const char *method;
    int kind; /* ENVD_FK_* of the future */
    envd_unary_finish finish;
    void *ctx;                 /* passed to finish; freed with ctx_free */
    envd_free_fn ctx_free;
    const char *user;          /* per-call user, or NULL */
    int urgent;                /* takes no in-flight slot (kills while stopping) */
    uint32_t list_field;       /* a list reply: its repeated field, capped by
                                * max_list_entries before decoding */
} envd_unary_spec;

/* Starts a unary RPC whose request is `msg` (packed here). On error nothing
 * was started and ctx was freed. out NULL: fire and forget (no future; the
 * outcome is dropped). */
/* The finish of a yes/no call as the Go client answers it: success is 1,
 * the error `no` (not_found for Exists and Kill, already_exists for
 * MakeDir) is 0 and no error, anything else is wrapped with prefix. Takes
 * err. */
void envd_finish_bool(envd_error *err, envd_status no, const char *prefix, void **result,
                      envd_free_fn *free_fn, envd_error **out_err);

envd_status envd_unary_start(envd_client *c, const envd_unary_spec *spec,
                             const ProtobufCMessage *msg, envd_future **out);


char *envd_strdup0(const char *s); /* strdup that maps NULL to "" */

#endif
