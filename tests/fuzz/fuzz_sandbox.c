/* Sandbox and SandboxClaim objects from the Kubernetes API (k8s/sandbox.c)
 * and the not-running message built from them. */
#include "fuzz_util.h"

#include "k8s/k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1); /* exact size, no NUL */
    if (!text)
        return 0;
    memcpy(text, data, size);
    char *problem = NULL;
    envd_k8s_sb *s = envd_k8s_sandbox_parse("ns", "name", text, size, &problem);
    if (s) {
        FUZZ_CHECK(s->pub.id && s->pub.id[0]);
        envd_error_free(envd_k8s_not_running_error(s));
        envd_k8s_sandbox_free(&s->pub);
    }
    free(problem);
    free(text);
    return 0;
}
