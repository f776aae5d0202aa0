/* GET /apis/agents.kruise.io/v1alpha1/namespaces/<ns>/sandboxes/<name>:
 * TLS and credentials from the resolved kubeconfig, errors a user can act
 * on, and the Sandbox object's fields. */
#include "core/error.h"
#include "k8s/exec_plugin.h"
#include "k8s/k8s.h"

#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (8u << 20)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}
void envd_k8s_curl_init(void)
{
    pthread_once(&curl_once, curl_init_once);
}

/* ------------------------------------------------------------- parsing */

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s ? s : dflt);
}

void envd_k8s_sandbox_free(envd_k8s_sandbox *s)
{
    if (!s)
        return;
    free(s->ns);
    free(s->name);
    free(s->id);
    free(s->token);
    free(s->phase);
    free(s->ready);
    free(s->ready_reason);
    free(s->ready_message);
    free(s->pod_ip);
    free(s->deleting);
    free(s->pool);
    free(s);
}

static const char *str_at(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : NULL;
}

envd_k8s_sandbox *envd_k8s_sandbox_parse(const char *ns, const char *name, const char *text,
                                         size_t len, char **problem)
{
    *problem = NULL;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!json_is_object(root)) {
        if (asprintf(problem, "the answer is not a JSON object (%s)",
                     root ? "another JSON value" : je.text) < 0)
            *problem = NULL;
        json_decref(root);
        return NULL;
    }
    envd_k8s_sandbox *s = calloc(1, sizeof(*s));
    if (!s) {
        json_decref(root);
        return NULL;
    }
    json_t *md = json_object_get(root, "metadata");
    json_t *ann = json_object_get(md, "annotations");
    json_t *labels = json_object_get(md, "labels");
    json_t *spec = json_object_get(root, "spec");
    json_t *status = json_object_get(root, "status");
    const char *tok = str_at(ann, ENVD_K8S_ANN_TOKEN);
    if (!tok)
        tok = str_at(ann, ENVD_K8S_ANN_TOKEN_LEGACY);
    const char *id = str_at(labels, ENVD_K8S_LABEL_ID);
    int bad = !(s->ns = strdup(ns)) || !(s->name = strdup(name)) ||
              (tok && !(s->token = strdup(tok))) ||
              !(s->phase = dup_or(str_at(status, "phase"), "")) ||
              !(s->pod_ip = dup_or(str_at(json_object_get(status, "podInfo"), "podIP"), ""));
    if (!bad) {
        if (id)
            s->id = strdup(id);
        else if (asprintf(&s->id, "%s--%s", ns, name) < 0)
            s->id = NULL;
        bad = !s->id;
    }
    const char *rs = NULL, *rr = NULL, *rm = NULL;
    json_t *conds = json_object_get(status, "conditions");
    for (size_t i = 0; json_is_array(conds) && i < json_array_size(conds); i++) {
        json_t *c = json_array_get(conds, i);
        const char *type = str_at(c, "type");
        if (type && strcmp(type, "Ready") == 0) {
            rs = str_at(c, "status");
            rr = str_at(c, "reason");
            rm = str_at(c, "message");
            break;
        }
    }
    bad = bad || !(s->ready = dup_or(rs, "")) || (rr && !(s->ready_reason = strdup(rr))) ||
          (rm && !(s->ready_message = strdup(rm)));
    const char *del = str_at(md, "deletionTimestamp");
    bad = bad || (del && !(s->deleting = strdup(del)));
    s->paused = json_is_true(json_object_get(spec, "paused"));
    json_t *owners = json_object_get(md, "ownerReferences");
    for (size_t i = 0; !bad && json_is_array(owners) && i < json_array_size(owners); i++) {
        json_t *o = json_array_get(owners, i);
        const char *kind = str_at(o, "kind");
        if (json_is_true(json_object_get(o, "controller")) && kind &&
            strcmp(kind, "SandboxSet") == 0)
            bad = !(s->pool = dup_or(str_at(o, "name"), "?"));
    }
    json_decref(root);
    if (bad) {
        envd_k8s_sandbox_free(s);
        return NULL;
    }
    return s;
}

int envd_k8s_sandbox_is_running(const envd_k8s_sandbox *s)
{
    return s && !s->deleting && !s->paused && !s->pool && strcmp(s->phase, "Running") == 0 &&
           strcmp(s->ready, "True") == 0;
}

envd_error *envd_k8s_not_running_error(const envd_k8s_sandbox *s)
{
    if (envd_k8s_sandbox_is_running(s))
        return NULL;
    char extra[512] = "";
    size_t n = 0;
    if (s->deleting)
        n += (size_t)snprintf(extra + n, sizeof(extra) - n, "; it is being deleted (since %s)",
                              s->deleting);
    if (s->paused && n < sizeof(extra))
        n += (size_t)snprintf(extra + n, sizeof(extra) - n, "; spec.paused is true");
    if (s->pool && n < sizeof(extra))
        snprintf(extra + n, sizeof(extra) - n,
                 "; it is still in the pool of SandboxSet '%s' (not claimed), and the gateway "
                 "routes only claimed sandboxes",
                 s->pool);
    return envd_error_new(
        ENVD_FAILED_PRECONDITION, ENVD_TRANSPORT_NONE, 0,
        "sandbox %s/%s is not running: status.phase is \"%s\", Ready condition is "
        "%s%s%s%s%s%s%s%s%s",
        s->ns, s->name, *s->phase ? s->phase : "(unset)", *s->ready ? "\"" : "",
        *s->ready ? s->ready : "absent", *s->ready ? "\"" : "", s->ready_reason ? " (reason: " : "",
        s->ready_reason ? s->ready_reason : "", s->ready_message ? ", message: " : "",
        s->ready_message ? s->ready_message : "", s->ready_reason ? ")" : "", extra);
}

/* ---------------------------------------------------------------- HTTP */

typedef struct body_buf {
    char *data;
    size_t len, cap;
} body_buf;

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    body_buf *b = ud;
    size_t n = sz * nm;
    if (b->len + n > MAX_BODY)
        return 0;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *nd = realloc(b->data, nc);
        if (!nd)
            return 0;
        b->data = nd;
        b->cap = nc;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return n;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    atomic_int *cancel = ud;
    return cancel && atomic_load(cancel) ? 1 : 0;
}

static int is_tls_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT: return 1;
    default: return 0;
    }
}

/* What we authenticated with, for 401 messages. */
static const char *auth_kind(const envd_k8s_conn *c, const envd_k8s_cred *cr)
{
    if (cr && cr->token)
        return "a token from its exec plugin";
    if (cr && cr->cert.data)
        return "a client certificate from its exec plugin";
    if (c->token)
        return "a bearer token";
    if (c->username)
        return "username/password";
    if (c->cert.data)
        return "a client certificate";
    return "no credentials";
}

/* Points the URL's host at tls-server-name and connects to the real host,
 * so that SNI and certificate verification use that name. */
static envd_status apply_server_name(CURL *h, const char *url, const char *tls_name,
                                     struct curl_slist **connect_to)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *out = NULL;
    envd_status st = ENVD_E_CONFIG;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
        curl_url_set(u, CURLUPART_HOST, tls_name, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_URL, &out, 0) == CURLUE_OK) {
        char line[512];
        snprintf(line, sizeof(line), "%s:%s:%s:%s", tls_name, port, host, port);
        struct curl_slist *l = curl_slist_append(NULL, line);
        if (l) {
            *connect_to = l;
            curl_easy_setopt(h, CURLOPT_CONNECT_TO, l);
            curl_easy_setopt(h, CURLOPT_URL, out);
            st = ENVD_OK;
        } else {
            st = ENVD_E_NOMEM;
        }
    }
    curl_free(host);
    curl_free(port);
    curl_free(out);
    curl_url_cleanup(u);
    return st;
}

static struct curl_slist *add_header(struct curl_slist *l, int *bad, const char *fmt_, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static struct curl_slist *add_header(struct curl_slist *l, int *bad, const char *fmt_, ...)
{
    char line[4096];
    va_list ap;
    va_start(ap, fmt_);
    int n = vsnprintf(line, sizeof(line), fmt_, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || strpbrk(line, "\r\n")) {
        *bad = 1;
        return l;
    }
    struct curl_slist *nl = curl_slist_append(l, line);
    if (!nl)
        *bad = 1;
    return nl ? nl : l;
}

static envd_status http_get(CURL *h, const envd_k8s_conn *c, const envd_k8s_cred *cr,
                            const char *url, int64_t timeout_ms, atomic_int *cancel, long *status,
                            body_buf *body, envd_error **err)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL, *connect_to = NULL;
    int bad = 0;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (c->tls_server_name && apply_server_name(h, url, c->tls_server_name, &connect_to)) {
        *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                              "cannot use tls-server-name '%s' with server %s", c->tls_server_name,
                              c->server);
        return ENVD_E_CONFIG;
    }
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_USERAGENT, "libenvd/" ENVD_VERSION_STRING);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, cancel);
    if (timeout_ms > 0) {
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                         (long)(timeout_ms < 10000 ? timeout_ms : 10000));
    }
    if (c->proxy_url)
        curl_easy_setopt(h, CURLOPT_PROXY, c->proxy_url);
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (c->ca.data) {
        /* Only the kubeconfig's CA, as client-go: not the system store too. */
        struct curl_blob ca = {c->ca.data, c->ca.len, CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
    }
    const envd_k8s_blob *cert = cr && cr->cert.data ? &cr->cert : &c->cert;
    const envd_k8s_blob *key = cr && cr->cert.data ? &cr->key : &c->key;
    if (cert->data && key->data) {
        struct curl_blob cb = {cert->data, cert->len, CURL_BLOB_COPY};
        struct curl_blob kb = {key->data, key->len, CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    hdrs = add_header(hdrs, &bad, "Accept: application/json");
    const char *token = cr && cr->token ? cr->token : c->token;
    if (token)
        hdrs = add_header(hdrs, &bad, "Authorization: Bearer %s", token);
    else if (c->username) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
    }
    if (c->as_user)
        hdrs = add_header(hdrs, &bad, "Impersonate-User: %s", c->as_user);
    if (c->as_uid)
        hdrs = add_header(hdrs, &bad, "Impersonate-Uid: %s", c->as_uid);
    for (size_t i = 0; i < c->n_as_groups; i++)
        hdrs = add_header(hdrs, &bad, "Impersonate-Group: %s", c->as_groups[i]);
    for (size_t i = 0; i < c->n_as_extra; i++)
        hdrs = add_header(hdrs, &bad, "%s", c->as_extra[i]);
    if (bad) {
        curl_slist_free_all(hdrs);
        curl_slist_free_all(connect_to);
        *err =
            envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                           "the credentials of %s cannot be sent in an HTTP header", c->user_desc);
        return ENVD_E_CONFIG;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    /* The handle may be reused: it must not point at these any more. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(connect_to);
    if (rc == CURLE_OK)
        return ENVD_OK;
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
        *err = envd_error_new(ENVD_CANCELED, ENVD_TRANSPORT_HTTP, 0, "canceled");
        return ENVD_CANCELED;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        *err = envd_error_new(ENVD_DEADLINE_EXCEEDED, ENVD_TRANSPORT_HTTP, 0,
                              "the Kubernetes API server at %s did not answer within %lld ms (%s)",
                              c->server, (long long)timeout_ms, why);
        return ENVD_DEADLINE_EXCEEDED;
    }
    if (is_tls_error(rc)) {
        *err = envd_error_new(ENVD_E_TRANSPORT, ENVD_TRANSPORT_HTTP, 0,
                              "TLS with the Kubernetes API server at %s failed: %s (trusting %s%s)",
                              c->server, why, c->ca_desc ? "the CA in " : "the system store",
                              c->ca_desc ? c->ca_desc : "");
        return ENVD_E_TRANSPORT;
    }
    *err = envd_error_new(ENVD_E_TRANSPORT, ENVD_TRANSPORT_HTTP, 0,
                          "cannot reach the Kubernetes API server at %s: %s", c->server, why);
    return ENVD_E_TRANSPORT;
}

/* An API error answer: a metav1.Status when the server made it. */
static envd_error *status_error(const envd_k8s_conn *c, const envd_k8s_cred *cr, long code,
                                const body_buf *b, const char *ns, const char *name)
{
    json_t *st = b->data ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    const char *kind = str_at(st, "kind");
    int is_status = kind && strcmp(kind, "Status") == 0;
    const char *msg = is_status ? str_at(st, "message") : NULL;
    char raw[256] = "";
    if (!msg && b->data) {
        snprintf(raw, sizeof(raw), "%.200s", b->data);
        for (char *p = raw; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        msg = raw;
    }
    if (!msg || !*msg)
        msg = "(no message)";
    envd_error *e;
    int http = (int)code;
    if (code == 401) {
        e = envd_error_new(ENVD_UNAUTHENTICATED, ENVD_TRANSPORT_HTTP, http,
                           "401 Unauthorized: the Kubernetes API server at %s rejected %s of %s "
                           "(%s): %s",
                           c->server, auth_kind(c, cr), c->user_desc, c->origin, msg);
    } else if (code == 403) {
        e = envd_error_new(ENVD_PERMISSION_DENIED, ENVD_TRANSPORT_HTTP, http,
                           "403 Forbidden: %s; %s (%s) needs the RBAC verb \"get\" on resource "
                           "\"sandboxes\" in API group \"agents.kruise.io\" in namespace \"%s\"",
                           msg, c->user_desc, c->origin, ns);
    } else if (code == 404) {
        json_t *details = json_object_get(st, "details");
        const char *dname = str_at(details, "name");
        if (is_status && dname && strcmp(dname, name) == 0)
            e = envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_HTTP, http,
                               "sandbox %s/%s not found (404 from %s)", ns, name, c->server);
        else
            e = envd_error_new(ENVD_NOT_FOUND, ENVD_TRANSPORT_HTTP, http,
                               "404 from %s: it does not serve agents.kruise.io/v1alpha1 "
                               "sandboxes (is OpenKruise Agents installed in this cluster?): %s",
                               c->server, msg);
    } else {
        e = envd_error_new(envd_status_from_http(http), ENVD_TRANSPORT_HTTP, http,
                           "HTTP %ld from the Kubernetes API server at %s: %s", code, c->server,
                           msg);
    }
    json_decref(st);
    return e;
}

/* DNS-1123: a label for namespaces, a subdomain for names. */
static int valid_k8s_name(const char *s, int label)
{
    size_t n = strlen(s);
    if (n == 0 || n > (label ? 63u : 253u))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        int ok = (ch >= 'a' && ch <= 'z') || isdigit(ch) || ch == '-' || (!label && ch == '.');
        if (!ok)
            return 0;
    }
    return isalnum((unsigned char)s[0]) && isalnum((unsigned char)s[n - 1]);
}

static envd_error *wrap_get(envd_error *e, const char *ns, const char *name)
{
    char prefix[600];
    snprintf(prefix, sizeof(prefix), "failed to get sandbox %s/%s", ns, name);
    return envd_error_wrap(e, prefix);
}

envd_status envd_k8s_lookup(const envd_k8s_options *o, const char *ns, const char *name, CURL *easy,
                            atomic_int *cancel, envd_k8s_sandbox **out, envd_error **err)
{
    *out = NULL;
    envd_error *e = NULL;
    if (!name || !valid_k8s_name(name, 0) || (ns && *ns && !valid_k8s_name(ns, 1))) {
        *err = envd_error_new(ENVD_INVALID_ARGUMENT, ENVD_TRANSPORT_NONE, 0,
                              "invalid sandbox %s '%s': Kubernetes names are lower-case letters, "
                              "digits, '-' (and '.' in names)",
                              !name || !valid_k8s_name(name, 0) ? "name" : "namespace",
                              !name || !valid_k8s_name(name, 0) ? (name ? name : "") : ns);
        return ENVD_INVALID_ARGUMENT;
    }
    envd_k8s_conn *c = NULL;
    envd_status st = envd_k8s_conn_load(o, &c, &e);
    if (st != ENVD_OK) {
        *err = envd_error_wrap(
            e ? e : envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s", envd_strerror(st)),
            "failed to create k8s client");
        return st;
    }
    if (!ns || !*ns) {
        ns = c->ns;
        if (!valid_k8s_name(ns, 1)) {
            *err = envd_error_new(ENVD_E_CONFIG, ENVD_TRANSPORT_NONE, 0,
                                  "failed to create k8s client: %s: the namespace '%s' is not a "
                                  "valid Kubernetes name",
                                  c->origin, ns);
            envd_k8s_conn_free(c);
            return ENVD_E_CONFIG;
        }
    }
    int64_t timeout = o ? o->timeout_ms : 30000;
    envd_k8s_curl_init();
    CURL *h = easy ? easy : curl_easy_init();
    char *url = NULL;
    body_buf body = {NULL, 0, 0};
    envd_k8s_cred cred;
    memset(&cred, 0, sizeof(cred));
    long code = 0;
    if (!h || asprintf(&url, "%s/apis/agents.kruise.io/v1alpha1/namespaces/%s/sandboxes/%s",
                       c->server, ns, name) < 0) {
        url = NULL;
        st = ENVD_E_NOMEM;
        goto out;
    }
    /* Static credentials win over the plugin, as in client-go. */
    int use_exec = c->exec && !c->token && !c->username;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (use_exec) {
            envd_k8s_cred_clear(&cred);
            st = envd_k8s_exec_credential(c, attempt > 0, timeout, cancel, &cred, &e);
            if (st != ENVD_OK) {
                e = envd_error_wrap(e, "failed to create k8s client");
                goto out;
            }
        }
        body.len = 0;
        st = http_get(h, c, use_exec ? &cred : NULL, url, timeout, cancel, &code, &body, &e);
        if (st != ENVD_OK) {
            e = wrap_get(e, ns, name);
            goto out;
        }
        /* A 401 with a cached plugin credential: run the plugin again once. */
        if (!(code == 401 && use_exec))
            break;
    }
    if (code != 200) {
        e = wrap_get(status_error(c, use_exec ? &cred : NULL, code, &body, ns, name), ns, name);
        st = envd_error_code(e);
        goto out;
    }
    char *problem = NULL;
    *out = envd_k8s_sandbox_parse(ns, name, body.data ? body.data : "", body.len, &problem);
    if (!*out) {
        st = problem ? ENVD_E_PROTOCOL : ENVD_E_NOMEM;
        e = wrap_get(envd_error_new(st, ENVD_TRANSPORT_HTTP, 200, "%s from %s",
                                    problem ? problem : "out of memory", c->server),
                     ns, name);
        free(problem);
    }
out:
    if (st != ENVD_OK && !e)
        e = wrap_get(envd_error_new(st, ENVD_TRANSPORT_NONE, 0, "%s", envd_strerror(st)), ns, name);
    if (st != ENVD_OK)
        *err = e;
    else
        envd_error_free(e);
    envd_k8s_cred_clear(&cred);
    free(url);
    free(body.data);
    if (h && h != easy)
        curl_easy_cleanup(h);
    envd_k8s_conn_free(c);
    return st;
}
