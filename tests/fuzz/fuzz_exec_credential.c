/* An exec plugin's stdout (k8s/exec_plugin.c): ExecCredential JSON and its
 * RFC 3339 expiry. Either a credential with a token or client certificate
 * and key, or a problem to report; never both, never neither. */
#include "fuzz_util.h"

#include "k8s/exec_plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const versions[] = {"client.authentication.k8s.io/v1",
                                           "client.authentication.k8s.io/v1beta1"};
    /* An exact-size copy with no NUL, so ASan sees any read past the end. */
    char *text = malloc(size ? size : 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    for (size_t i = 0; i < 2; i++) {
        envd_k8s_cred cr;
        char *problem = NULL;
        envd_status st = envd_k8s_parse_exec_credential(text, size, versions[i], &cr, &problem);
        if (st == ENVD_OK) {
            FUZZ_CHECK(problem == NULL);
            envd_k8s_cred_clear(&cr);
        } else {
            FUZZ_CHECK(st == ENVD_E_CONFIG || st == ENVD_E_NOMEM);
            free(problem);
        }
    }
    free(text);
    return 0;
}
