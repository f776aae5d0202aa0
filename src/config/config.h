/* The config object's fields, for the API layer. */
#ifndef ENVD_CONFIG_CONFIG_H
#define ENVD_CONFIG_CONFIG_H

#include "envd/envd.h"

#include <stddef.h>
#include <stdint.h>

struct envd_config {
    char *domain;
    char *scheme;
    char *runtime_token;
    int runtime_port;
    char *api_key;
    char *auth_header; /* NULL = Basic base64(user:) */
    char *user;        /* RPC user (when no auth header) and /files username */
    char *sandbox_base_url;
    char *ca_file;
    char **header_names; /* lower case */
    char **header_values;
    size_t n_headers;
    int64_t request_timeout_ms;
    envd_transport_kind transport;
    int keepalive_s;
    int h2c;
    int64_t idle_timeout_ms;
    int workers;
    int max_inflight;
    int fail_fast;
};

/* "Basic " + base64(user + ":"); caller frees. */
char *envd_basic_auth(const char *user);

#endif
