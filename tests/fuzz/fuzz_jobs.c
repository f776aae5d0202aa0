/* envdctl's jobs files (src/cli/batch_jobs.c): the bytes as a JSON Lines
 * file and as a YAML file, read to the end twice (validation and run read
 * the file in two passes). Each job is either filled or an error with a
 * message naming its line; a YAML syntax error ends the reading. */
#include "fuzz_util.h"

#include "batch.h"

static char g_dir[64];

static void read_all(const char *path)
{
    char *err = NULL;
    batch_reader *r = batch_reader_open(path, 0, &err);
    if (!r) {
        FUZZ_CHECK(err != NULL);
        free(err);
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int guard = 0; guard < 100000; guard++) {
            batch_job job;
            memset(&job, 0, sizeof job);
            err = NULL;
            int rc = batch_reader_next(r, &job, &err);
            if (rc == 1) {
                FUZZ_CHECK(err == NULL);
                /* exactly one kind: a command line, an argv, or code */
                FUZZ_CHECK((job.cmd != NULL) + (job.argv != NULL) + (job.code != NULL) == 1);
                FUZZ_CHECK(!job.language || job.code);
                batch_job_free(&job);
                continue;
            }
            batch_job_free(&job);
            if (rc == -1) {
                FUZZ_CHECK(err != NULL && err[0]);
                free(err);
                continue; /* a job's own error: the reader goes on */
            }
            FUZZ_CHECK(rc == 0);
            free(err);
            break;
        }
        err = NULL;
        if (batch_reader_rewind(r, &err) != 0) {
            free(err);
            break;
        }
    }
    batch_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/fuzz-jobs-XXXXXX");
        if (!mkdtemp(g_dir))
            abort();
    }
    static const char *const names[] = {"jobs.jsonl", "jobs.yaml"};
    for (size_t i = 0; i < 2; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", g_dir, names[i]);
        FILE *f = fopen(path, "wb");
        if (!f)
            return 0;
        fwrite(data, 1, size, f);
        fclose(f);
        read_all(path);
    }
    return 0;
}
