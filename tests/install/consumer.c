/* Built against an installed libenvd, by pkg-config and by find_package. */
#include <envd/envd.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
    envd_config *cfg = envd_config_new();
    envd_runtime *rt = NULL;
    envd_client *c = NULL;
    int ok = cfg && envd_config_set_domain(cfg, "127.0.0.1:49983") == ENVD_OK &&
             envd_runtime_new(cfg, &rt) == ENVD_OK &&
             envd_client_new(rt, "sbx", cfg, &c, NULL) == ENVD_OK &&
             strcmp(envd_client_runtime_url(c), "http://127.0.0.1:49983") == 0;
    printf("libenvd %s: %s\n", envd_version(), ok ? "ok" : "FAILED");
    envd_client_free(c);
    envd_runtime_free(rt);
    envd_config_free(cfg);
    return ok ? 0 : 1;
}
