/* Test helper: the E2B-compatible API stub (tests/e2bapi/stub.mjs) on
 * loopback, and its test hooks (/_stub/...) read with libcurl + jansson.
 * Header-only, like tests/k8s/k8s_stub.h. */
#ifndef ENVD_TEST_E2BAPI_STUB_H
#define ENVD_TEST_E2BAPI_STUB_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../listening.h"

typedef struct e2bapi_stub {
    pid_t pid;
    int port;
    char url[64]; /* "http://127.0.0.1:PORT" */
} e2bapi_stub;

static inline void e2bapi_stub_stop(e2bapi_stub *s)
{
    test_stop_child(&s->pid, 2000);
}

/* Starts the stub with the envd at `domain` and the extra arguments (NULL
 * terminated, at most 16). 0, or -1 with a message. */
static inline int e2bapi_stub_start(e2bapi_stub *s, const char *domain, const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    char script[600];
#ifdef ENVD_SOURCE_DIR
    snprintf(script, sizeof(script), "%s/tests/e2bapi/stub.mjs", ENVD_SOURCE_DIR);
#else
    snprintf(script, sizeof(script), "tests/e2bapi/stub.mjs");
#endif
    const char *argv[32] = {"node", script, "--port", "0", "--domain", domain};
    size_t n = 6;
    for (size_t i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    char buf[256];
    s->port = test_spawn_listening(argv, &s->pid, buf, sizeof(buf));
    if (s->port <= 0) {
        fprintf(stderr, "e2bapi stub did not start (output: %s)\n", buf);
        e2bapi_stub_stop(s);
        return -1;
    }
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
    return 0;
}

static inline size_t e2bapi_sink_(char *p, size_t size, size_t n, void *ud)
{
    FILE *f = ud;
    return fwrite(p, size, n, f);
}

/* method on the stub's path with an optional JSON body; the reply's JSON
 * (caller json_decref's), NULL on failure. */
static inline json_t *e2bapi_stub_call(const e2bapi_stub *s, const char *method, const char *path,
                                       const char *body)
{
    char url[512], *data = NULL;
    size_t len = 0;
    snprintf(url, sizeof(url), "%s%s", s->url, path);
    FILE *mem = open_memstream(&data, &len);
    CURL *h = curl_easy_init();
    if (!mem || !h) {
        if (mem)
            fclose(mem);
        free(data);
        curl_easy_cleanup(h);
        return NULL;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, e2bapi_sink_);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, mem);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    fclose(mem);
    json_t *j = rc == CURLE_OK ? json_loadb(data, len, 0, NULL) : NULL;
    free(data);
    return j;
}

/* The stub's count of live sandboxes, -1 when it cannot be read. */
static inline int e2bapi_stub_live(const e2bapi_stub *s)
{
    json_t *j = e2bapi_stub_call(s, "GET", "/_stub/live", NULL);
    int n = j && json_is_integer(json_object_get(j, "live"))
                ? (int)json_integer_value(json_object_get(j, "live"))
                : -1;
    json_decref(j);
    return n;
}

#endif
