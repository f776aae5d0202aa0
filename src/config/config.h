/* The config object's fields, for the API layer, and the setters' reasons
 * for the YAML loader. */
#ifndef ENVD_CONFIG_CONFIG_H
#define ENVD_CONFIG_CONFIG_H

#include "core/kv.h"
#include "envd/envd.h"

#include <stddef.h>
#include <stdint.h>

#define ENVD_DEFAULT_RUNTIME_PORT 49983
#define ENVD_DEFAULT_CODE_PORT 49999 /* the code interpreter's, envd_code.h */
/* Each worker is a thread draining its own gRPC completion queue, and gRPC
 * aborts the whole process when it cannot create a thread (0.1 let 100000
 * through and died in abseil after ~32000 threads). A bound the setter
 * enforces keeps that an error a caller can see. */
#define ENVD_MAX_WORKERS 1024
/* Far above the default of 4096, low enough that an extra digit or two is
 * caught. */
#define ENVD_MAX_INFLIGHT_LIMIT 1000000
#define ENVD_DEFAULT_RETRIES 3
#define ENVD_MAX_RETRIES 10
/* A day. Past a few minutes a keepalive no longer keeps anything alive
 * (the sandbox gateway drops streams idle for 600 s), so a larger value is
 * a mistake, not a choice. */
#define ENVD_MAX_KEEPALIVE_S 86400
/* gRPC takes the receive limit as an int; a message of a gigabyte is a
 * mistake or an attack, not a reply. */
#define ENVD_MAX_MESSAGE_LIMIT ((int64_t)1 << 30)
#define ENVD_MIN_MESSAGE_LIMIT ((int64_t)1 << 10)
#define ENVD_MAX_RATE_WINDOW_MS 3600000

struct envd_config {
    char *domain;
    char *scheme;
    char *runtime_token;
    int runtime_port;
    char *api_key;
    char *auth_header; /* NULL = Basic base64(user:) */
    char *user;        /* RPC user (when no auth header) and /files username */
    char *sandbox_base_url;
    int code_port;       /* envd_code.h: e2b-sandbox-port of code-interpreter calls */
    char *code_base_url; /* NULL: the runtime URL */
    char *ca_file;
    envd_kvlist headers; /* names in lower case */
    int64_t request_timeout_ms;
    envd_transport_kind transport;
    int keepalive_s;
    int h2c;
    int64_t idle_timeout_ms;
    int workers;
    int max_inflight;
    int fail_fast;
    int retries; /* envd_config_set_retries */
    int64_t max_message_bytes; /* see the limits in envd.h */
    int64_t max_list_entries;
    int64_t files_min_bytes;
    int64_t files_min_window_ms;
    int envd_version[3]; /* major, minor, patch; major -1: unknown */
    int streams_per_connection; /* connection pools, see envd.h */
    int max_connections;
    /* Traffic tokens (api/traffic.c): a static token, or a provider. */
    char *traffic_token;
    envd_traffic_token_cb traffic_cb;
    void *traffic_ud;
    /* Why the last setter failed: "<argument>: <reason>", "" after a
     * success. reason_at is where <reason> starts; bad_arg says which
     * argument it was (1 = the first after cfg), 0 when none. */
    char last_error[384];
    size_t reason_at;
    int bad_arg;
};

/* "Basic " + base64(user + ":"); caller frees. */
char *envd_basic_auth(const char *user);

/* The last failure's reason without the argument's name, for callers that
 * name the option their own way (the YAML loader: "file:line:col: key:
 * reason"). "" when the last setter succeeded. */
const char *envd_config_last_reason(const envd_config *cfg);
/* Which argument the last failure was about (1 = first after cfg), 0 none. */
int envd_config_last_bad_arg(const envd_config *cfg);

#endif
