/* Signed /files URLs (envd's v1 scheme, spec §6.2): the signature is
 * "v1_" + unpadded standard base64 of SHA-256 over
 * "<path>:<operation>:<username>:<token>[:<expiration>]". */
#include "api/files_internal.h"
#include "core/alloc.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

envd_status envd_files_signature(const char *path, const char *operation, const char *user,
                                 const char *token, int64_t expiration, char **out)
{
    if (!out)
        return ENVD_E_USAGE;
    *out = NULL;
    if (!path || !operation || !token)
        return ENVD_E_USAGE;
    if (!user)
        user = "";
    char exp[24] = "";
    if (expiration > 0)
        snprintf(exp, sizeof exp, ":%lld", (long long)expiration);
    size_t n = strlen(path) + strlen(operation) + strlen(user) + strlen(token) + strlen(exp) + 4;
    char *raw = envd_malloc(n);
    if (!raw)
        return ENVD_E_NOMEM;
    int len = snprintf(raw, n, "%s:%s:%s:%s%s", path, operation, user, token, exp);
    unsigned char digest[SHA256_DIGEST_LENGTH];
    unsigned int dlen = 0;
    int ok = EVP_Digest(raw, (size_t)len, digest, &dlen, EVP_sha256(), NULL) == 1;
    OPENSSL_cleanse(raw, n); /* it holds the token */
    free(raw);
    if (!ok || dlen != sizeof digest)
        return ENVD_E_NOMEM;
    /* "v1_" + base64 (4 chars per 3 bytes, NUL) */
    char *sig = envd_malloc(3 + 4 * ((sizeof digest + 2) / 3) + 1);
    if (!sig)
        return ENVD_E_NOMEM;
    memcpy(sig, "v1_", 3);
    int b = EVP_EncodeBlock((unsigned char *)sig + 3, digest, (int)sizeof digest);
    while (b > 0 && sig[3 + b - 1] == '=') /* Go's RawStdEncoding: no padding */
        b--;
    sig[3 + b] = '\0';
    *out = sig;
    return ENVD_OK;
}

envd_status envd_files_url(envd_client *c, const char *path, envd_files_op op, const char *user,
                          int64_t expires_in_s, char **url, envd_error **err)
{
    if (err)
        *err = NULL;
    if (url)
        *url = NULL;
    const char *bad = !url ? "url is NULL"
                      : !c ? "client is NULL"
                      : !path ? "path is NULL"
                      : !*path ? "path is empty"
                      : (op != ENVD_FILES_READ && op != ENVD_FILES_WRITE)
                          ? "op is not ENVD_FILES_READ or ENVD_FILES_WRITE"
                          : NULL;
    if (bad) {
        if (err)
            *err = envd_error_new(ENVD_E_USAGE, ENVD_TRANSPORT_NONE, 0, "envd_files_url: %s", bad);
        return ENVD_E_USAGE;
    }
    if (expires_in_s < 0) {
        if (err)
            *err = envd_error_new(ENVD_INVALID_ARGUMENT, ENVD_TRANSPORT_NONE, 0,
                                  "envd_files_url: expires_in_s is negative");
        return ENVD_INVALID_ARGUMENT;
    }
    if (!user || !*user)
        user = c->cfg->user;
    const char *token = c->cfg->runtime_token;
    int signed_url = token && *token;
    if (!signed_url && expires_in_s > 0) {
        if (err)
            *err = envd_error_new(ENVD_INVALID_ARGUMENT, ENVD_TRANSPORT_NONE, 0,
                                  "a signature expiration needs a runtime token (the client has "
                                  "none, so its URLs are not signed)");
        return ENVD_INVALID_ARGUMENT;
    }
    int64_t expiration = expires_in_s > 0 ? (int64_t)time(NULL) + expires_in_s : 0;
    char *sig = NULL;
    envd_status s = ENVD_OK;
    if (signed_url &&
        (s = envd_files_signature(path, op == ENVD_FILES_READ ? "read" : "write", user, token,
                                  expiration, &sig)) != ENVD_OK)
        return s;
    char *ep = curl_easy_escape(NULL, path, 0);
    char *eu = curl_easy_escape(NULL, user, 0);
    char *es = sig ? curl_easy_escape(NULL, sig, 0) : NULL; /* + and / must not stay raw */
    s = ENVD_E_NOMEM;
    if (ep && eu && (es || !sig)) {
        size_t n = strlen(c->ep.base_url) + strlen(ep) + strlen(eu) + (es ? strlen(es) : 0) + 96;
        char *u = envd_malloc(n);
        if (u) {
            int k = snprintf(u, n, "%s/files?path=%s&username=%s", c->ep.base_url, ep, eu);
            if (es)
                k += snprintf(u + k, n - (size_t)k, "&signature=%s", es);
            if (expiration > 0)
                snprintf(u + k, n - (size_t)k, "&signature_expiration=%lld", (long long)expiration);
            *url = u;
            s = ENVD_OK;
        }
    }
    curl_free(ep);
    curl_free(eu);
    curl_free(es);
    free(sig);
    return s;
}
