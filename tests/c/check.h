/*
 * The assertions shared by the C tests (test_agentmem.c, test_infer.c, test_plugins.c): checks
 * that count and report without stopping, a call's status checked together with its error
 * object, and the JSON a call returns parsed and freed. Header-only; each test program
 * includes it once.
 */
#ifndef AGENTMEM_TEST_CHECK_H
#define AGENTMEM_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agentmem.h"

/* ----------------------------------------------------------------------------- assertions */

static int g_checks, g_failures;

static inline void report(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    g_failures++;
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond)                                                                            \
    do {                                                                                        \
        g_checks++;                                                                             \
        if (!(cond))                                                                            \
            report(__FILE__, __LINE__, "CHECK failed: %s", #cond);                              \
    } while (0)

#define CHECK_STR(got, want)                                                                   \
    do {                                                                                        \
        const char *g_ = (got), *w_ = (want);                                                   \
        g_checks++;                                                                             \
        if (!g_ || strcmp(g_, w_) != 0)                                                         \
            report(__FILE__, __LINE__, "%s is \"%s\", expected \"%s\"", #got,                   \
                   g_ ? g_ : "(NULL)", w_);                                                     \
    } while (0)

#define CHECK_INT(got, want)                                                                   \
    do {                                                                                        \
        long long g_ = (long long)(got), w_ = (long long)(want);                                \
        g_checks++;                                                                             \
        if (g_ != w_)                                                                           \
            report(__FILE__, __LINE__, "%s is %lld, expected %lld", #got, g_, w_);              \
    } while (0)

/*
 * Checks a call's status and its error object, then frees the error: on success *errp must
 * be NULL; on failure it must hold the same code and a non-empty message (containing
 * `needle` if given).
 */
static inline int expect_status(const char *file, int line, const char *call, am_status got,
                         am_status want, am_error **errp, const char *needle) {
    am_error *err = errp ? *errp : NULL;
    int ok = 1;
    g_checks++;
    if (got != want) {
        report(file, line, "%s returned %s, expected %s (message: %s)", call, am_status_str(got),
               am_status_str(want), am_error_message(err));
        ok = 0;
    } else if (errp && want == AM_OK && err != NULL) {
        report(file, line, "%s succeeded but set *err", call);
        ok = 0;
    } else if (errp && want != AM_OK) {
        if (err == NULL) {
            report(file, line, "%s failed without an error object", call);
            ok = 0;
        } else if (am_error_code(err) != want) {
            report(file, line, "%s: am_error_code is %s, the status %s", call,
                   am_status_str(am_error_code(err)), am_status_str(want));
            ok = 0;
        } else if (am_error_message(err) == NULL || am_error_message(err)[0] == '\0') {
            report(file, line, "%s: empty error message", call);
            ok = 0;
        } else if (needle && !strstr(am_error_message(err), needle)) {
            report(file, line, "%s: message \"%s\" does not contain \"%s\"", call,
                   am_error_message(err), needle);
            ok = 0;
        }
    }
    if (errp) {
        am_error_free(*errp);
        *errp = NULL;
    }
    return ok;
}

#define EXPECT(call, want) expect_status(__FILE__, __LINE__, #call, (call), (want), &err, NULL)
#define EXPECT_MSG(call, want, needle)                                                         \
    expect_status(__FILE__, __LINE__, #call, (call), (want), &err, (needle))

/* Parses a returned string, frees it and clears the pointer; NULL (and a failure) if it is
   not JSON. */
static inline cJSON *take(const char *file, int line, char **outp) {
    char *out = *outp;
    cJSON *v = out ? cJSON_Parse(out) : NULL;
    g_checks++;
    if (!v)
        report(file, line, "not JSON: %s", out ? out : "(NULL)");
    am_string_free(out);
    *outp = NULL;
    return v;
}
#define TAKE(out) take(__FILE__, __LINE__, &(out))

static inline const char *str_field(const cJSON *object, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(object, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Adds a memory and copies its id into id (37 bytes); returns "added". */
static inline int add_memory(const char *file, int line, am_memory *m, const char *request,
                             char *id) {
    char *out = NULL;
    am_error *err = NULL;
    id[0] = '\0';
    if (!expect_status(file, line, request, am_memory_add(m, request, &out, &err), AM_OK, &err,
                       NULL))
        return 0;
    cJSON *r = take(file, line, &out);
    const char *got = str_field(r, "id");
    int added = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "added"));
    g_checks++;
    if (!got || strlen(got) != 36)
        report(file, line, "add returned no uuid");
    else
        memcpy(id, got, 37);
    cJSON_Delete(r);
    return added;
}
#define ADD(m, request, id) add_memory(__FILE__, __LINE__, (m), (request), (id))

#endif
