/* The configuration file (config/config_file.c, yaml_doc.c): any bytes as
 * the YAML file, loaded with the default environment and with a named one.
 * Either a config, or an error with a message; never both. */
#include "fuzz_util.h"

#include "envd/envd.h"
#include "envd/envd_k8s.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    if (fd < 0)
        return 0;
    static const char *const envs[] = {NULL, "qa"};
    for (size_t i = 0; i < 2; i++) {
        envd_config_file *f = NULL;
        envd_error *err = NULL;
        envd_status st = envd_config_file_load(path, envs[i], &f, &err);
        if (st == ENVD_OK) {
            FUZZ_CHECK(f && !err);
            size_t n = 0;
            const envd_sandbox_entry *e = envd_config_file_sandboxes(f, &n);
            FUZZ_CHECK(n == 0 || e != NULL);
            envd_config_file_free(f);
        } else {
            FUZZ_CHECK(!f && err && envd_error_message(err)[0]);
            envd_error_free(err);
        }
    }
    envd_config *cfg = NULL;
    envd_error *err = NULL;
    if (envd_config_load_file(path, &cfg, NULL, &err) == ENVD_OK)
        envd_config_free(cfg);
    envd_error_free(err);
    close(fd);
    return 0;
}
