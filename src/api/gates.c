/* Version gates: what an envd version can serve, checked at start when the
 * caller told the client which version the sandbox runs
 * (envd_config_set_envd_version). The versions are the E2B SDKs' (their
 * envd/versions files) and envd's own history (spec: version history). */
#include "api/internal.h"
#include "api/sync.h"

typedef struct gate_row {
    int v[3];
    const char *what;
} gate_row;

static const gate_row GATES[] = {
    [ENVD_GATE_STDIN_OFF] = {{0, 3, 0}, "starting a command with stdin disabled"},
    [ENVD_GATE_CLOSE_STDIN] = {{0, 5, 2}, "closing stdin"},
    [ENVD_GATE_OCTET_UPLOAD] = {{0, 5, 7}, "an octet-stream upload"},
    [ENVD_GATE_METADATA] = {{0, 6, 2}, "file metadata on upload"},
    [ENVD_GATE_RECURSIVE_WATCH] = {{0, 1, 4}, "a recursive watch"},
    [ENVD_GATE_WATCH_ENTRY] = {{0, 6, 3}, "watch events with entry info"},
    [ENVD_GATE_WATCH_NETWORK] = {{0, 6, 4}, "watching a network mount"},
    [ENVD_GATE_COMPOSE] = {{0, 5, 5}, "composing files (/files/compose)"},
};

int envd_client_serves(const envd_client *c, envd_gate g)
{
    const int *have = c->cfg->envd_version, *need = GATES[g].v;
    if (have[0] < 0)
        return 1; /* unknown: envd answers for itself */
    for (int i = 0; i < 3; i++)
        if (have[i] != need[i])
            return have[i] > need[i];
    return 1;
}

envd_status envd_client_gate(const envd_client *c, envd_gate g)
{
    if (envd_client_serves(c, g))
        return ENVD_OK;
    const int *have = c->cfg->envd_version, *need = GATES[g].v;
    return envd_start_error(ENVD_UNIMPLEMENTED, "%s needs envd %d.%d.%d or later; the sandbox runs %d.%d.%d",
                            GATES[g].what, need[0], need[1], need[2], have[0], have[1], have[2]);
}
