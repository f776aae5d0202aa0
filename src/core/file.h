/* Reading a whole local file into memory, bounded: configuration files,
 * kubeconfigs, service-account tokens, CA bundles. A bound, because these
 * paths come from users and environments, and /dev/zero or a log file
 * named by mistake must fail cleanly instead of eating the memory. */
#ifndef ENVD_CORE_FILE_H
#define ENVD_CORE_FILE_H

#include "core/buf.h"
#include "envd/envd.h"

#include <stddef.h>

/* Appends the content of the file at path to out (NUL-terminated, see
 * buf.h). Returns 0, or an errno value: the open or read error (ENOENT,
 * EACCES, EISDIR ...), EFBIG when the file holds more than max bytes,
 * ENOMEM. On an error out holds what it held before. */
int envd_file_read(const char *path, size_t max, envd_buf *out);

/* The same with an error object: ENVD_E_IO with "<path>: <reason>" (the
 * reason names the limit when the file is too large), or ENVD_E_NOMEM. err
 * may be NULL. */
envd_status envd_file_read_err(const char *path, size_t max, envd_buf *out, envd_error **err);

#endif
