/* The blocking layer. Every blocking (non-_async) function of the API is one
 * row of src/api/sync.c: a macro that expands to the whole exported function,
 * which starts the _async form, waits, and moves the result and the error
 * out. The contract every row gets from here, and nowhere else:
 *   - on an engine thread or inside a callback: ENVD_E_USAGE, with *err
 *     naming the function, and nothing is started;
 *   - *out and *err are cleared first (either may be NULL: the result or the
 *     error is then dropped);
 *   - a starter that refused returns its status, and *err says why: the
 *     message it left with envd_start_error, or the status's text;
 *   - *out is set only on ENVD_OK, and on ENVD_E_COMMAND_EXIT, where the
 *     command's result is kept beside the error as the Go client returns both.
 *
 * A row, for an exported `envd_status envd_fs_get_info(envd_client *c,
 * const char *path, envd_entry_info **out, envd_error **err)` started by
 * envd_fs_get_info_async(c, path, &f):
 *
 *   ENVD_SYNC_TAKE(envd_fs_get_info, envd_entry_info *, ENVD_FK_ENTRY,
 *                  (c, path, &f_), envd_client *c, const char *path)
 *
 * The arguments in parentheses are those of the starter; f_ is the future
 * variable the expansion declares. The parameters after them are the leading
 * parameters of the blocking form (out and err are appended). _VIA forms
 * name a starter that is not <name>_async. */
#ifndef ENVD_API_SYNC_H
#define ENVD_API_SYNC_H

#include "api/internal.h"

/* For starters: records why this thread's start refused (a usage error
 * naming the argument, say) and returns code. The blocking form turns it
 * into its *err as "<function>: <message>". */
envd_status envd_start_error(envd_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The prologue: ENVD_E_USAGE (and *err) on an engine thread; otherwise
 * clears *err and any start message left on this thread, and returns OK. */
envd_status envd_sync_begin(const char *fn, envd_error **err);

/* The epilogue, after the starter ran and returned st (with the future f
 * when st is ENVD_OK): waits, moves the result of this kind into *out (see
 * the contract above), moves the error into *err and frees f. */
envd_status envd_sync_call(const char *fn, envd_status st, envd_future *f, int kind, void **out,
                           envd_error **err);

/* The same for a boolean future (ENVD_FK_BOOL): *out is 1 or 0, 0 on error. */
envd_status envd_sync_bool(const char *fn, envd_status st, envd_future *f, int *out,
                           envd_error **err);

/* What every row shares: the prologue, then the starter, which sets f_. */
#define ENVD_SYNC_START_(starter, args)                                                            \
    envd_future *f_ = NULL;                                                                        \
    envd_status s_ = envd_sync_begin(__func__, err);                                               \
    if (s_ != ENVD_OK)                                                                             \
        return s_;                                                                                 \
    s_ = starter args;

#define ENVD_SYNC_TAKE_VIA(name, starter, type, kind, args, ...)                                   \
    envd_status name(__VA_ARGS__, type *out, envd_error **err)                                     \
    {                                                                                              \
        void *r_ = NULL;                                                                           \
        if (out)                                                                                   \
            *out = NULL;                                                                           \
        ENVD_SYNC_START_(starter, args)                                                            \
        s_ = envd_sync_call(__func__, s_, f_, kind, out ? &r_ : NULL, err);                        \
        if (out)                                                                                   \
            *out = r_;                                                                             \
        return s_;                                                                                 \
    }

#define ENVD_SYNC_BOOL_VIA(name, starter, args, ...)                                               \
    envd_status name(__VA_ARGS__, int *out, envd_error **err)                                      \
    {                                                                                              \
        if (out)                                                                                   \
            *out = 0;                                                                              \
        ENVD_SYNC_START_(starter, args)                                                            \
        return envd_sync_bool(__func__, s_, f_, out, err);                                         \
    }

#define ENVD_SYNC_NONE_VIA(name, starter, args, ...)                                               \
    envd_status name(__VA_ARGS__, envd_error **err)                                                \
    {                                                                                              \
        ENVD_SYNC_START_(starter, args)                                                            \
        return envd_sync_call(__func__, s_, f_, ENVD_FK_NONE, NULL, err);                          \
    }

/* A result of type `type` (a pointer) moved out of a future of this kind. */
#define ENVD_SYNC_TAKE(name, type, kind, args, ...)                                                \
    ENVD_SYNC_TAKE_VIA(name, name##_async, type, kind, args, __VA_ARGS__)
/* A yes/no answer (a future of kind ENVD_FK_BOOL) into an int. */
#define ENVD_SYNC_BOOL(name, args, ...) ENVD_SYNC_BOOL_VIA(name, name##_async, args, __VA_ARGS__)
/* Only the outcome. */
#define ENVD_SYNC_NONE(name, args, ...) ENVD_SYNC_NONE_VIA(name, name##_async, args, __VA_ARGS__)

#endif
