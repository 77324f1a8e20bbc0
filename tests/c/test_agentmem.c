/*
 * Tests of the C API (include/agentmem.h): every function, every error path, ownership of
 * every returned object (run under valgrind), a file-backed store reopened, and many threads
 * on one handle.
 *
 *   test_agentmem [PATH/TO/tests/error_codes.json]
 *
 * With the path, the status names are also checked against the shared error table.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agentmem.h"
#include "check.h"

/* ------------------------------------------------------------------------------- helpers */

static const char *HASHING = "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":64}}";
static const char *NO_EMBEDDER = "{\"embedder\":\"none\"}";
static const char *MISSING_ID = "00000000-0000-0000-0000-000000000000";

static am_memory *open_store(const char *file, int line, const char *options) {
    am_memory *m = NULL;
    am_error *err = NULL;
    if (!expect_status(file, line, "am_memory_open", am_memory_open(":memory:", options, &m, &err),
                       AM_OK, &err, NULL) ||
        !m) {
        fprintf(stderr, "cannot continue without a store\n");
        exit(1);
    }
    return m;
}
#define OPEN(options) open_store(__FILE__, __LINE__, (options))

static uint64_t count_of(const char *file, int line, am_memory *m, const char *request) {
    uint64_t n = 0;
    am_error *err = NULL;
    expect_status(file, line, "am_memory_count", am_memory_count(m, request, &n, &err), AM_OK,
                  &err, NULL);
    return n;
}
#define COUNT(m, request) count_of(__FILE__, __LINE__, (m), (request))

/* The content of a memory, or "" when get fails; into buf. */
static const char *content_of(am_memory *m, const char *id, char *buf, size_t size) {
    char *out = NULL;
    buf[0] = '\0';
    if (am_memory_get(m, id, &out, NULL) == AM_OK) {
        cJSON *r = cJSON_Parse(out);
        const char *c = str_field(r, "content");
        snprintf(buf, size, "%s", c ? c : "");
        cJSON_Delete(r);
    }
    am_string_free(out);
    return buf;
}

/* The ids of a search's hits (or a list's items) joined by spaces, into buf. */
static const char *ids_of(const cJSON *items, char *buf, size_t size) {
    const cJSON *item;
    buf[0] = '\0';
    cJSON_ArrayForEach(item, items) {
        const char *id = str_field(item, "id");
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s%s", used ? " " : "", id ? id : "?");
    }
    return buf;
}

/* ------------------------------------------------------------------------------- basics */

static void test_version(void) {
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", AGENTMEM_VERSION_MAJOR, AGENTMEM_VERSION_MINOR,
             AGENTMEM_VERSION_PATCH);
    CHECK_STR(am_version(), expected);
    CHECK_STR(AGENTMEM_VERSION_STRING, expected);
    CHECK(am_version() == am_version()); /* a static string */
}

static void test_status_names(const char *codes_path) {
    static const struct {
        am_status code;
        const char *name;
    } names[] = {
        {AM_OK, "AM_OK"},
        {AM_ERR_INVALID_INPUT, "AM_ERR_INVALID_INPUT"},
        {AM_ERR_NOT_FOUND, "AM_ERR_NOT_FOUND"},
        {AM_ERR_ALREADY_EXISTS, "AM_ERR_ALREADY_EXISTS"},
        {AM_ERR_STORAGE, "AM_ERR_STORAGE"},
        {AM_ERR_INDEX, "AM_ERR_INDEX"},
        {AM_ERR_EMBEDDING, "AM_ERR_EMBEDDING"},
        {AM_ERR_MODEL_UNAVAILABLE, "AM_ERR_MODEL_UNAVAILABLE"},
        {AM_ERR_LLM, "AM_ERR_LLM"},
        {AM_ERR_PLUGIN, "AM_ERR_PLUGIN"},
        {AM_ERR_PERMISSION_DENIED, "AM_ERR_PERMISSION_DENIED"},
        {AM_ERR_IO, "AM_ERR_IO"},
        {AM_ERR_CORRUPTED, "AM_ERR_CORRUPTED"},
        {AM_ERR_CLOSED, "AM_ERR_CLOSED"},
        {AM_ERR_UNSUPPORTED, "AM_ERR_UNSUPPORTED"},
        {AM_ERR_INTERNAL, "AM_ERR_INTERNAL"},
        {AM_ERR_CANCELLED, "AM_ERR_CANCELLED"},
        {AM_ERR_NULL_ARG, "AM_ERR_NULL_ARG"},
        {AM_ERR_PANIC, "AM_ERR_PANIC"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_STR(am_status_str(names[i].code), names[i].name);
    /* The numbers are part of the ABI. */
    CHECK_INT(AM_OK, 0);
    CHECK_INT(AM_ERR_INVALID_INPUT, 1);
    CHECK_INT(AM_ERR_INTERNAL, 15);
    CHECK_INT(AM_ERR_CANCELLED, 16);
    CHECK_INT(AM_ERR_NULL_ARG, 100);
    CHECK_INT(AM_ERR_PANIC, 101);
    static const am_status unknown[] = {17, 18, 99, 102, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECK_STR(am_status_str(unknown[i]), "AM_ERR_UNKNOWN");

    if (!codes_path)
        return;
    /* The shared table names every core code exactly as the header does. */
    FILE *f = fopen(codes_path, "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    cJSON *table = cJSON_Parse(text);
    const cJSON *codes = cJSON_GetObjectItemCaseSensitive(table, "codes"), *row;
    CHECK_INT(cJSON_GetArraySize(codes), 16);
    cJSON_ArrayForEach(row, codes) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(row, "code");
        CHECK(cJSON_IsNumber(code));
        if (cJSON_IsNumber(code))
            CHECK_STR(am_status_str((am_status)code->valuedouble), str_field(row, "c"));
    }
    cJSON_Delete(table);
}

static void test_null_tolerance(void) {
    CHECK_INT(am_error_code(NULL), AM_ERR_NULL_ARG);
    CHECK(am_error_message(NULL) != NULL);
    CHECK_STR(am_error_message(NULL), "");
    am_error_free(NULL);
    am_string_free(NULL);
    am_memory_free(NULL);
}

/* ------------------------------------------------------------------------------- opening */

static void test_open_errors(void) {
    am_error *err = NULL;
    am_memory *m = NULL;
    /* Out-parameters are cleared on entry, so a failure never leaves a stale pointer. */
    int dummy;
    am_memory *stale = (am_memory *)&dummy;

    m = stale;
    EXPECT(am_memory_open(NULL, HASHING, &m, &err), AM_ERR_NULL_ARG);
    CHECK(m == NULL);
    EXPECT_MSG(am_memory_open(":memory:", HASHING, NULL, &err), AM_ERR_NULL_ARG, "out");

    m = stale;
    EXPECT_MSG(am_memory_open(":memory:", "{", &m, &err), AM_ERR_INVALID_INPUT, "JSON");
    CHECK(m == NULL);
    EXPECT(am_memory_open(":memory:", "", &m, &err), AM_ERR_INVALID_INPUT);
    EXPECT_MSG(am_memory_open(":memory:", "[1]", &m, &err), AM_ERR_INVALID_INPUT, "object");
    EXPECT_MSG(am_memory_open(":memory:", "{\"embeder\":\"none\"}", &m, &err),
               AM_ERR_INVALID_INPUT, "embeder");
    EXPECT_MSG(am_memory_open(":memory:", "{\"embedder\":\"gpt\"}", &m, &err),
               AM_ERR_INVALID_INPUT, "gpt");
    EXPECT(am_memory_open(":memory:", "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":0}}",
                          &m, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_open(":memory:", "{\"embedder\":\"\xff\"}", &m, &err), AM_ERR_INVALID_INPUT);
    EXPECT_MSG(am_memory_open("", HASHING, &m, &err), AM_ERR_INVALID_INPUT, "path");
    CHECK(m == NULL);
    /* A model directory that does not exist: the store opens, embedding fails (documented), or
       the open fails; either way the code names the cause. */
    am_status s = am_memory_open(
        ":memory:", "{\"embedder\":{\"provider\":\"local\",\"model_dir\":\"/nonexistent/model\"}}",
        &m, &err);
    if (s == AM_OK) {
        char *out = NULL;
        CHECK(m != NULL);
        am_error_free(err);
        err = NULL;
        EXPECT(am_memory_add(m, "{\"content\":\"needs a model\"}", &out, &err),
               AM_ERR_MODEL_UNAVAILABLE);
        CHECK(out == NULL);
        am_memory_free(m);
        m = NULL;
    } else {
        EXPECT(s, AM_ERR_MODEL_UNAVAILABLE);
    }
    /* err may be NULL: the status alone reports the failure. */
    CHECK_INT(am_memory_open(":memory:", "{", &m, NULL), AM_ERR_INVALID_INPUT);
    CHECK_INT(am_memory_open(NULL, NULL, NULL, NULL), AM_ERR_NULL_ARG);
    CHECK(m == NULL);
}

/* ------------------------------------------------------------------------- NULL arguments */

static void test_null_arguments(void) {
    am_memory *m = OPEN(NO_EMBEDDER);
    am_error *err = NULL;
    char *out = NULL;
    uint64_t n = 0;
    const float v[3] = {1, 0, 0};
    const char *add = "{\"content\":\"x\"}";
    const char *msgs = "{\"messages\":\"x\",\"user_id\":\"u\",\"infer\":false}";
    const char *batch = "{\"memories\":[{\"content\":\"x\"}]}";
    const char *search = "{\"query\":\"x\",\"mode\":\"vector\"}";
    const char *upd = "{\"content\":\"y\"}";
    const char *sel = "{\"user_id\":\"u\"}";

    EXPECT_MSG(am_memory_flush(NULL, &err), AM_ERR_NULL_ARG, "m");

    EXPECT_MSG(am_memory_add(NULL, add, &out, &err), AM_ERR_NULL_ARG, "m");
    EXPECT_MSG(am_memory_add(m, NULL, &out, &err), AM_ERR_NULL_ARG, "request_json");
    EXPECT_MSG(am_memory_add(m, add, NULL, &err), AM_ERR_NULL_ARG, "out_json");

    EXPECT_MSG(am_memory_add_messages(NULL, msgs, &out, &err), AM_ERR_NULL_ARG, "m");
    EXPECT_MSG(am_memory_add_messages(m, NULL, &out, &err), AM_ERR_NULL_ARG, "request_json");
    EXPECT_MSG(am_memory_add_messages(m, msgs, NULL, &err), AM_ERR_NULL_ARG, "out_json");
    /* err may be NULL: the status alone tells. */
    CHECK_INT(am_memory_add_messages(m, NULL, &out, NULL), AM_ERR_NULL_ARG);

    EXPECT(am_memory_add_with_vector(NULL, add, v, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_add_with_vector(m, NULL, v, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT_MSG(am_memory_add_with_vector(m, add, NULL, 3, &out, &err), AM_ERR_NULL_ARG, "vector");
    EXPECT(am_memory_add_with_vector(m, add, v, 3, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_add_batch(NULL, batch, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_add_batch(m, NULL, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_add_batch(m, batch, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_add_batch_with_vectors(NULL, batch, v, 1, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_add_batch_with_vectors(m, NULL, v, 1, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT_MSG(am_memory_add_batch_with_vectors(m, batch, NULL, 1, 3, &out, &err), AM_ERR_NULL_ARG,
               "vectors");
    EXPECT(am_memory_add_batch_with_vectors(m, batch, v, 1, 3, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_get(NULL, MISSING_ID, &out, &err), AM_ERR_NULL_ARG);
    EXPECT_MSG(am_memory_get(m, NULL, &out, &err), AM_ERR_NULL_ARG, "id");
    EXPECT(am_memory_get(m, MISSING_ID, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_list(NULL, NULL, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_list(m, NULL, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_count(NULL, NULL, &n, &err), AM_ERR_NULL_ARG);
    EXPECT_MSG(am_memory_count(m, NULL, NULL, &err), AM_ERR_NULL_ARG, "out_count");

    EXPECT(am_memory_update(NULL, MISSING_ID, upd, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_update(m, NULL, upd, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_update(m, MISSING_ID, NULL, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_update(m, MISSING_ID, upd, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_update_with_vector(NULL, MISSING_ID, upd, v, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_update_with_vector(m, NULL, upd, v, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_update_with_vector(m, MISSING_ID, NULL, v, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_update_with_vector(m, MISSING_ID, upd, NULL, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_update_with_vector(m, MISSING_ID, upd, v, 3, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_delete(NULL, MISSING_ID, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_delete(m, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_delete_all(NULL, sel, &n, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_delete_all(m, NULL, &n, &err), AM_ERR_NULL_ARG);
    EXPECT_MSG(am_memory_delete_all(m, sel, NULL, &err), AM_ERR_NULL_ARG, "out_deleted");

    EXPECT(am_memory_history(NULL, MISSING_ID, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_history(m, NULL, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_history(m, MISSING_ID, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_search(NULL, search, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_search(m, NULL, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_search(m, search, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_search_with_vector(NULL, search, v, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_search_with_vector(m, NULL, v, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_search_with_vector(m, search, NULL, 3, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_search_with_vector(m, search, v, 3, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_reset(NULL, &err), AM_ERR_NULL_ARG);

    EXPECT(am_memory_purge_expired(NULL, &n, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_purge_expired(m, NULL, &err), AM_ERR_NULL_ARG);

    EXPECT_MSG(am_memory_copy_into(NULL, m, &out, &err), AM_ERR_NULL_ARG, "source");
    EXPECT_MSG(am_memory_copy_into(m, NULL, &out, &err), AM_ERR_NULL_ARG, "target");
    EXPECT_MSG(am_memory_copy_into(m, m, NULL, &err), AM_ERR_NULL_ARG, "out_json");
    CHECK_INT(am_memory_copy_into(NULL, NULL, NULL, NULL), AM_ERR_NULL_ARG);

    CHECK(out == NULL);
    /* None of it changed the store. */
    CHECK_INT(COUNT(m, NULL), 0);
    am_memory_free(m);
}

/* ------------------------------------------------------------------------ bad input: JSON */

static void test_bad_json(void) {
    am_memory *m = OPEN(HASHING);
    am_memory *mv = OPEN(NO_EMBEDDER);
    am_error *err = NULL;
    char *out = NULL;
    uint64_t n = 0;
    char id[37];
    const float v[3] = {1, 0, 0};
    static const char *const bad[] = {"{", "", "not json", "{\"content\":}", "{} trailing",
                                      "{\"content\":\"x\",}"};
    ADD(m, "{\"content\":\"kept\",\"user_id\":\"u\"}", id);
    float vv[3] = {0, 1, 0};
    char *vout = NULL;
    EXPECT(am_memory_add_with_vector(mv, "{\"content\":\"kept\"}", vv, 3, &vout, &err), AM_OK);
    am_string_free(vout);

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *b = bad[i];
        EXPECT_MSG(am_memory_add(m, b, &out, &err), AM_ERR_INVALID_INPUT, "JSON");
        EXPECT_MSG(am_memory_add_messages(m, b, &out, &err), AM_ERR_INVALID_INPUT, "JSON");
        EXPECT(am_memory_add_with_vector(mv, b, v, 3, &out, &err), AM_ERR_INVALID_INPUT);
        EXPECT(am_memory_add_batch(m, b, &out, &err), AM_ERR_INVALID_INPUT);
        EXPECT(am_memory_add_batch_with_vectors(mv, b, v, 1, 3, &out, &err), AM_ERR_INVALID_INPUT);
        EXPECT(am_memory_list(m, b, &out, &err), AM_ERR_INVALID_INPUT);
        EXPECT(am_memory_count(m, b, &n, &err), AM_ERR_INVALID_INPUT);
        EXPECT(am_memory_update(m, id, b, &out, &err), AM_ERR_INVALID_INPUT);
        EXPECT(am_memory_update_with_vector(mv, id, b, v, 3, &out, &err), AM_ERR_INVALID_INPUT);
        EXPECT(am_memory_delete_all(m, b, &n, &err), AM_ERR_INVALID_INPUT);
        EXPECT(am_memory_search(m, b, &out, &err), AM_ERR_INVALID_INPUT);
        EXPECT(am_memory_search_with_vector(mv, b, v, 3, &out, &err), AM_ERR_INVALID_INPUT);
    }
    /* Valid JSON that is not an object. */
    EXPECT_MSG(am_memory_add(m, "[\"x\"]", &out, &err), AM_ERR_INVALID_INPUT, "object");
    EXPECT(am_memory_add(m, "\"x\"", &out, &err), AM_ERR_INVALID_INPUT);
    /* A bare string is not a request (the messages go in "messages"). */
    EXPECT(am_memory_add_messages(m, "\"I like tea\"", &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_add_messages(m, "[]", &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_search(m, "42", &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_list(m, "[]", &out, &err), AM_ERR_INVALID_INPUT);
    CHECK(out == NULL);
    CHECK_INT(COUNT(m, NULL), 1);
    CHECK_INT(COUNT(mv, NULL), 1);
    am_memory_free(m);
    am_memory_free(mv);
}

/* ------------------------------------------------------------------- bad input: UTF-8, NUL */

static void test_invalid_utf8(void) {
    am_memory *m = OPEN(HASHING);
    am_error *err = NULL;
    char *out = NULL;
    uint64_t n = 0;
    const float v[64] = {1};
    const char *bad_id = "\xc3\x28";                        /* a broken 2-byte sequence */
    const char *bad_req = "{\"content\":\"caf\xe9\"}";     /* Latin-1, not UTF-8 */
    const char *bad_sel = "{\"user_id\":\"\xff\"}";
    char id[37];
    ADD(m, "{\"content\":\"a memory\"}", id);

    EXPECT_MSG(am_memory_get(m, bad_id, &out, &err), AM_ERR_INVALID_INPUT, "UTF-8");
    EXPECT(am_memory_update(m, bad_id, "{\"content\":\"x\"}", &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_update_with_vector(m, bad_id, "{\"content\":\"x\"}", v, 64, &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_delete(m, bad_id, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_history(m, bad_id, &out, &err), AM_ERR_INVALID_INPUT);

    EXPECT_MSG(am_memory_add(m, bad_req, &out, &err), AM_ERR_INVALID_INPUT, "UTF-8");
    EXPECT(am_memory_add_with_vector(m, bad_req, v, 64, &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT_MSG(am_memory_add_messages(m, "{\"messages\":\"caf\xe9\",\"user_id\":\"u\"}", &out,
                                      &err),
               AM_ERR_INVALID_INPUT, "UTF-8");
    EXPECT(am_memory_add_messages(
               m, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}],\"user_id\":\"u\"}",
               &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_add_batch(m, "{\"memories\":[{\"content\":\"\xff\"}]}", &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_add_batch_with_vectors(m, "{\"memories\":[{\"content\":\"\xff\"}]}", v, 1, 64,
                                            &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_update(m, id, bad_req, &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_update_with_vector(m, id, bad_req, v, 64, &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_list(m, bad_sel, &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_count(m, bad_sel, &n, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_delete_all(m, bad_sel, &n, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_search(m, "{\"query\":\"\xfe\"}", &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_search_with_vector(m, "{\"query\":\"\xfe\"}", v, 64, &out, &err),
           AM_ERR_INVALID_INPUT);

    /* A NUL cannot travel in a C string, but it can as a JSON escape: the core refuses it. */
    EXPECT_MSG(am_memory_add(m, "{\"content\":\"a\\u0000b\"}", &out, &err), AM_ERR_INVALID_INPUT,
               "NUL");
    EXPECT(am_memory_update(m, id, "{\"content\":\"a\\u0000b\"}", &out, &err),
           AM_ERR_INVALID_INPUT);
    /* A lone surrogate escape is not a Unicode scalar value. */
    EXPECT(am_memory_add(m, "{\"content\":\"\\ud800\"}", &out, &err), AM_ERR_INVALID_INPUT);

    CHECK(out == NULL);
    char buf[64];
    CHECK_STR(content_of(m, id, buf, sizeof buf), "a memory");
    CHECK_INT(COUNT(m, NULL), 1);
    am_memory_free(m);
}

/* ------------------------------------------------------------- not found, misspelt keys */

static void test_not_found(void) {
    am_memory *m = OPEN(HASHING);
    am_error *err = NULL;
    char *out = NULL;
    const float v[64] = {1};
    EXPECT(am_memory_get(m, MISSING_ID, &out, &err), AM_ERR_NOT_FOUND);
    EXPECT(am_memory_get(m, "not-a-uuid", &out, &err), AM_ERR_NOT_FOUND);
    EXPECT(am_memory_update(m, MISSING_ID, "{\"content\":\"x\"}", &out, &err), AM_ERR_NOT_FOUND);
    EXPECT(am_memory_update_with_vector(m, MISSING_ID, "{\"content\":\"x\"}", v, 64, &out, &err),
           AM_ERR_NOT_FOUND);
    EXPECT(am_memory_delete(m, MISSING_ID, &err), AM_ERR_NOT_FOUND);
    EXPECT(am_memory_history(m, MISSING_ID, &out, &err), AM_ERR_NOT_FOUND);
    EXPECT(am_memory_get(m, "", &out, &err), AM_ERR_INVALID_INPUT);
    /* err may be NULL: nothing leaks, the status tells. */
    CHECK_INT(am_memory_get(m, MISSING_ID, &out, NULL), AM_ERR_NOT_FOUND);
    CHECK(out == NULL);
    CHECK_INT(COUNT(m, NULL), 0);
    am_memory_free(m);
}

static void test_misspelt_keys(void) {
    am_memory *m = OPEN(HASHING);
    am_error *err = NULL;
    char *out = NULL;
    uint64_t n = 0;
    char id[37];
    ADD(m, "{\"content\":\"a memory\",\"user_id\":\"u\"}", id);
    EXPECT_MSG(am_memory_add(m, "{\"content\":\"x\",\"usr_id\":\"a\"}", &out, &err),
               AM_ERR_INVALID_INPUT, "usr_id");
    EXPECT_MSG(am_memory_add(m, "{\"contents\":\"x\"}", &out, &err), AM_ERR_INVALID_INPUT,
               "contents");
    EXPECT_MSG(am_memory_add_batch(m, "{\"memory\":[]}", &out, &err), AM_ERR_INVALID_INPUT,
               "memory");
    EXPECT_MSG(am_memory_add_messages(m, "{\"message\":\"x\",\"user_id\":\"u\"}", &out, &err),
               AM_ERR_INVALID_INPUT, "message");
    EXPECT_MSG(am_memory_add_messages(
                   m, "{\"messages\":[{\"role\":\"user\",\"text\":\"x\"}],\"user_id\":\"u\"}",
                   &out, &err),
               AM_ERR_INVALID_INPUT, "text");
    EXPECT_MSG(am_memory_add_batch(m, "{\"memories\":[{\"content\":\"x\",\"knd\":\"semantic\"}]}",
                                   &out, &err),
               AM_ERR_INVALID_INPUT, "knd");
    EXPECT_MSG(am_memory_list(m, "{\"ordr\":\"created_asc\"}", &out, &err), AM_ERR_INVALID_INPUT,
               "ordr");
    EXPECT_MSG(am_memory_count(m, "{\"user\":\"u\"}", &n, &err), AM_ERR_INVALID_INPUT, "user");
    EXPECT_MSG(am_memory_update(m, id, "{\"contnt\":\"x\"}", &out, &err), AM_ERR_INVALID_INPUT,
               "contnt");
    EXPECT_MSG(am_memory_delete_all(m, "{\"userid\":\"u\"}", &n, &err), AM_ERR_INVALID_INPUT,
               "userid");
    EXPECT_MSG(am_memory_search(m, "{\"query\":\"memory\",\"limt\":3}", &out, &err),
               AM_ERR_INVALID_INPUT, "limt");
    CHECK(out == NULL);
    CHECK_INT(COUNT(m, NULL), 1);
    am_memory_free(m);
}

/* ------------------------------------------------------- conversations, without a model */

/* The event at index i of a list: its "event", "memory" and "id" (37 bytes) into the
   out-parameters; 0 (and a failure) when it is missing. */
static int event_at(const char *file, int line, const cJSON *events, int i, const char *want_event,
                    const char *want_memory, char *id) {
    const cJSON *e = cJSON_GetArrayItem(events, i);
    const char *event = str_field(e, "event"), *memory = str_field(e, "memory");
    const char *got_id = str_field(e, "id");
    g_checks++;
    if (!event || !memory || !got_id || strlen(got_id) != 36) {
        report(file, line, "event %d is missing or incomplete", i);
        return 0;
    }
    g_checks++;
    if (strcmp(event, want_event) != 0 || strcmp(memory, want_memory) != 0) {
        report(file, line, "event %d is %s \"%s\", expected %s \"%s\"", i, event, memory,
               want_event, want_memory);
        return 0;
    }
    if (id)
        memcpy(id, got_id, 37);
    return 1;
}
#define EVENT_AT(events, i, event, memory, id)                                                 \
    event_at(__FILE__, __LINE__, (events), (i), (event), (memory), (id))

/* A store without a chat model stores each non-system message as it is. */
static void test_messages_without_model(void) {
    am_memory *m = OPEN(HASHING);
    am_error *err = NULL;
    char *out = NULL;
    char user_id[37], assistant_id[37], again_id[37];
    const char *conversation =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant\"},"
        "{\"role\":\"user\",\"content\":\"I'm vegetarian\"},"
        "{\"role\":\"assistant\",\"content\":\"Noted, no meat.\",\"name\":\"chef-bot\"}],"
        "\"user_id\":\"alice\",\"metadata\":{\"source\":\"chat\"}}";

    EXPECT(am_memory_add_messages(m, conversation, &out, &err), AM_OK);
    cJSON *events = TAKE(out);
    CHECK_INT(cJSON_GetArraySize(events), 2); /* the system message is not stored */
    EVENT_AT(events, 0, "ADD", "I'm vegetarian", user_id);
    EVENT_AT(events, 1, "ADD", "Noted, no meat.", assistant_id);
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(events, 0), "previous_memory") ==
          NULL);
    cJSON_Delete(events);

    EXPECT(am_memory_get(m, assistant_id, &out, &err), AM_OK);
    cJSON *record = TAKE(out);
    const cJSON *metadata = cJSON_GetObjectItemCaseSensitive(record, "metadata");
    CHECK_STR(str_field(record, "kind"), "episodic");
    CHECK_STR(str_field(record, "user_id"), "alice");
    CHECK_STR(str_field(metadata, "role"), "assistant");
    CHECK_STR(str_field(metadata, "actor_id"), "chef-bot");
    CHECK_STR(str_field(metadata, "source"), "chat");
    cJSON_Delete(record);

    /* The same message again (a plain string is one user message): nothing new. */
    EXPECT(am_memory_add_messages(m, "{\"messages\":\"I'm vegetarian\",\"user_id\":\"alice\"}",
                                  &out, &err),
           AM_OK);
    events = TAKE(out);
    CHECK_INT(cJSON_GetArraySize(events), 1);
    if (EVENT_AT(events, 0, "NONE", "I'm vegetarian", again_id))
        CHECK_STR(again_id, user_id);
    cJSON_Delete(events);

    /* Refused before anything is stored. */
    EXPECT_MSG(am_memory_add_messages(m, "{\"user_id\":\"alice\"}", &out, &err),
               AM_ERR_INVALID_INPUT, "messages is required");
    EXPECT_MSG(am_memory_add_messages(m, "{\"messages\":3,\"user_id\":\"alice\"}", &out, &err),
               AM_ERR_INVALID_INPUT, "messages must be");
    EXPECT_MSG(am_memory_add_messages(m, "{\"messages\":\"hi\",\"user_id\":\"alice\",\"infer\":1}",
                                      &out, &err),
               AM_ERR_INVALID_INPUT, "expected a boolean");
    EXPECT(am_memory_add_messages(
               m, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"hi\"}],\"user_id\":\"alice\"}",
               &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_add_messages(m, "{\"messages\":[],\"user_id\":\"alice\"}", &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_add_messages(
               m, "{\"messages\":\"hi\",\"user_id\":\"alice\",\"metadata\":{\"user_id\":\"bob\"}}",
               &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_add_messages(m, "{\"messages\":\"hi\",\"user_id\":\"alice\",\"kind\":\"dream\"}",
                                  &out, &err),
           AM_ERR_INVALID_INPUT);
    CHECK(out == NULL);
    CHECK_INT(COUNT(m, NULL), 2);
    am_memory_free(m);
}

/* --------------------------------------------------------------------------- round trip */

static void test_crud(void) {
    am_memory *m = OPEN(HASHING);
    am_error *err = NULL;
    char *out = NULL;
    uint64_t n = 99;
    char id[37], id2[37], again[37];
    char buf[256];

    CHECK(ADD(m, "{\"content\":\"Alice is allergic to peanuts\",\"user_id\":\"alice\","
                 "\"kind\":\"semantic\",\"metadata\":{\"topic\":\"health\",\"level\":2}}",
              id));
    CHECK(ADD(m, "{\"content\":\"Alice lives in Lisbon\",\"user_id\":\"alice\"}", id2));
    /* The same content in the same scope is the same memory. */
    CHECK(!ADD(m, "{\"content\":\"Alice is allergic to peanuts\",\"user_id\":\"alice\"}", again));
    CHECK_STR(again, id);

    /* get: the whole record. */
    if (EXPECT(am_memory_get(m, id, &out, &err), AM_OK)) {
        cJSON *r = TAKE(out);
        CHECK_STR(str_field(r, "id"), id);
        CHECK_STR(str_field(r, "content"), "Alice is allergic to peanuts");
        CHECK_STR(str_field(r, "user_id"), "alice");
        CHECK_STR(str_field(r, "kind"), "semantic");
        CHECK(str_field(r, "hash") && strlen(str_field(r, "hash")) == 32);
        CHECK(str_field(r, "created_at") && str_field(r, "updated_at"));
        cJSON *meta = cJSON_GetObjectItemCaseSensitive(r, "metadata");
        CHECK_STR(str_field(meta, "topic"), "health");
        CHECK_INT(cJSON_GetObjectItemCaseSensitive(meta, "level")->valuedouble, 2);
        CHECK(cJSON_GetObjectItemCaseSensitive(r, "agent_id") == NULL ||
              cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "agent_id")));
        cJSON_Delete(r);
    }

    /* count: NULL request and "{}" are the same; scopes narrow. */
    CHECK_INT(COUNT(m, NULL), 2);
    CHECK_INT(COUNT(m, "{}"), 2);
    CHECK_INT(COUNT(m, "{\"user_id\":\"alice\"}"), 2);
    CHECK_INT(COUNT(m, "{\"user_id\":\"bob\"}"), 0);
    CHECK_INT(COUNT(m, "{\"filters\":{\"topic\":\"health\"}}"), 1);

    /* update: content and metadata, the record comes back. */
    if (EXPECT(am_memory_update(m, id, "{\"content\":\"Alice is allergic to tree nuts\","
                                       "\"metadata\":{\"topic\":\"allergy\"}}",
                                &out, &err),
               AM_OK)) {
        cJSON *r = TAKE(out);
        CHECK_STR(str_field(r, "content"), "Alice is allergic to tree nuts");
        cJSON *meta = cJSON_GetObjectItemCaseSensitive(r, "metadata");
        CHECK_INT(cJSON_GetArraySize(meta), 1); /* metadata is replaced whole */
        CHECK_STR(str_field(meta, "topic"), "allergy");
        cJSON_Delete(r);
    }
    /* An update that would duplicate another memory fails and changes nothing. */
    EXPECT_MSG(am_memory_update(m, id, "{\"content\":\"Alice lives in Lisbon\"}", &out, &err),
               AM_ERR_ALREADY_EXISTS, id2);
    EXPECT_MSG(am_memory_update(m, id, "{}", &out, &err), AM_ERR_INVALID_INPUT,
               "nothing to update");
    CHECK_STR(content_of(m, id, buf, sizeof buf), "Alice is allergic to tree nuts");

    /* history: ADD then UPDATE, old and new content. */
    if (EXPECT(am_memory_history(m, id, &out, &err), AM_OK)) {
        cJSON *h = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(h), 2);
        cJSON *first = cJSON_GetArrayItem(h, 0), *second = cJSON_GetArrayItem(h, 1);
        CHECK_STR(str_field(first, "event"), "ADD");
        CHECK_STR(str_field(first, "memory_id"), id);
        CHECK_STR(str_field(second, "event"), "UPDATE");
        CHECK_STR(str_field(second, "old_content"), "Alice is allergic to peanuts");
        CHECK_STR(str_field(second, "new_content"), "Alice is allergic to tree nuts");
        cJSON_Delete(h);
    }

    /* search: keyword and hybrid, hits carry a score. */
    if (EXPECT(am_memory_search(m, "{\"query\":\"nuts\",\"mode\":\"keyword\",\"user_id\":\"alice\"}",
                                &out, &err),
               AM_OK)) {
        cJSON *hits = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(hits), 1);
        cJSON *hit = cJSON_GetArrayItem(hits, 0);
        CHECK_STR(str_field(hit, "id"), id);
        CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(hit, "score")));
        CHECK(cJSON_GetObjectItemCaseSensitive(hit, "explain") != NULL);
        cJSON_Delete(hits);
    }
    if (EXPECT(am_memory_search(m, "{\"query\":\"where does Alice live\",\"limit\":1}", &out,
                                &err),
               AM_OK)) {
        cJSON *hits = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(hits), 1);
        CHECK_STR(str_field(cJSON_GetArrayItem(hits, 0), "id"), id2);
        cJSON_Delete(hits);
    }

    /* delete: gone for get, history keeps a DELETE row. */
    EXPECT(am_memory_delete(m, id2, &err), AM_OK);
    EXPECT(am_memory_get(m, id2, &out, &err), AM_ERR_NOT_FOUND);
    EXPECT(am_memory_delete(m, id2, &err), AM_ERR_NOT_FOUND);
    if (EXPECT(am_memory_history(m, id2, &out, &err), AM_OK)) {
        cJSON *h = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(h), 2);
        CHECK_STR(str_field(cJSON_GetArrayItem(h, 1), "event"), "DELETE");
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(h, 1),
                                                           "is_deleted")));
        cJSON_Delete(h);
    }
    CHECK_INT(COUNT(m, NULL), 1);

    /* delete_all: a scope deletes that scope; no scope and no filter is refused (reset is
       the call that deletes everything). */
    ADD(m, "{\"content\":\"Bob likes steak\",\"user_id\":\"bob\"}", id2);
    n = 99;
    EXPECT(am_memory_delete_all(m, "{\"user_id\":\"bob\"}", &n, &err), AM_OK);
    CHECK_INT(n, 1);
    n = 99;
    EXPECT_MSG(am_memory_delete_all(m, "{}", &n, &err), AM_ERR_INVALID_INPUT, "reset");
    CHECK_INT(n, 0);
    CHECK_INT(COUNT(m, NULL), 1);

    /* flush on an in-memory store is harmless. */
    EXPECT(am_memory_flush(m, &err), AM_OK);

    /* reset: everything and its history. */
    EXPECT(am_memory_reset(m, &err), AM_OK);
    CHECK_INT(COUNT(m, NULL), 0);
    EXPECT(am_memory_history(m, id, &out, &err), AM_ERR_NOT_FOUND);
    CHECK(out == NULL);
    am_memory_free(m);
}

static void test_batch_and_pages(void) {
    am_memory *m = OPEN(HASHING);
    am_error *err = NULL;
    char *out = NULL;
    char seen[2048] = "";
    char *cursor = NULL;

    if (EXPECT(am_memory_add_batch(m, "{\"memories\":[{\"content\":\"one\"},{\"content\":\"two\"},"
                                      "{\"content\":\"three\"},{\"content\":\"one\"},"
                                      "{\"content\":\"four\"},{\"content\":\"five\"}]}",
                                   &out, &err),
               AM_OK)) {
        cJSON *r = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(r), 6);
        /* A duplicate inside the batch is the first one's id, not added. */
        CHECK_STR(str_field(cJSON_GetArrayItem(r, 3), "id"), str_field(cJSON_GetArrayItem(r, 0), "id"));
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r, 3), "added")));
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r, 4), "added")));
        cJSON_Delete(r);
    }
    CHECK_INT(COUNT(m, NULL), 5);
    /* A batch with one bad memory adds none. */
    EXPECT_MSG(am_memory_add_batch(m, "{\"memories\":[{\"content\":\"six\"},{\"content\":\"\"}]}",
                                   &out, &err),
               AM_ERR_INVALID_INPUT, "memory 1");
    CHECK_INT(COUNT(m, NULL), 5);
    if (EXPECT(am_memory_add_batch(m, "{\"memories\":[]}", &out, &err), AM_OK)) {
        cJSON *r = TAKE(out);
        CHECK(cJSON_IsArray(r) && cJSON_GetArraySize(r) == 0);
        cJSON_Delete(r);
    }

    /* Pages of two, oldest first, by cursor: every memory once, then a null cursor. */
    int pages = 0, items = 0;
    for (;;) {
        char request[512];
        if (cursor)
            snprintf(request, sizeof request,
                     "{\"limit\":2,\"order\":\"created_asc\",\"cursor\":\"%s\"}", cursor);
        else
            snprintf(request, sizeof request, "{\"limit\":2,\"order\":\"created_asc\"}");
        free(cursor);
        cursor = NULL;
        if (!EXPECT(am_memory_list(m, request, &out, &err), AM_OK))
            break;
        cJSON *page = TAKE(out);
        cJSON *list = cJSON_GetObjectItemCaseSensitive(page, "items"), *item;
        cJSON *next = cJSON_GetObjectItemCaseSensitive(page, "next_cursor");
        CHECK(cJSON_IsArray(list));
        cJSON_ArrayForEach(item, list) {
            size_t used = strlen(seen);
            snprintf(seen + used, sizeof seen - used, "%s%s", used ? "," : "",
                     str_field(item, "content"));
            items++;
        }
        pages++;
        CHECK(cJSON_IsString(next) || cJSON_IsNull(next));
        if (cJSON_IsString(next)) {
            cursor = malloc(strlen(next->valuestring) + 1);
            strcpy(cursor, next->valuestring);
        }
        cJSON_Delete(page);
        if (!cursor || pages > 10)
            break;
    }
    free(cursor);
    CHECK_INT(pages, 3);
    CHECK_INT(items, 5);
    CHECK_STR(seen, "one,two,three,four,five");
    /* NULL request: the defaults (newest first). */
    if (EXPECT(am_memory_list(m, NULL, &out, &err), AM_OK)) {
        cJSON *page = TAKE(out);
        cJSON *list = cJSON_GetObjectItemCaseSensitive(page, "items");
        CHECK_INT(cJSON_GetArraySize(list), 5);
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(page, "next_cursor")));
        cJSON_Delete(page);
    }
    EXPECT_MSG(am_memory_list(m, "{\"cursor\":\"garbage\"}", &out, &err), AM_ERR_INVALID_INPUT,
               "cursor");
    CHECK(out == NULL);
    am_memory_free(m);
}

static void test_expiry(void) {
    am_memory *m = OPEN(HASHING);
    am_error *err = NULL;
    char *out = NULL;
    uint64_t n = 99;
    char old[37], later[37];
    ADD(m, "{\"content\":\"parking spot B12\",\"kind\":\"working\",\"expires_at\":\"2000-01-01\"}",
        old);
    ADD(m, "{\"content\":\"room 4 booked\",\"expires_at\":\"2999-01-01T00:00:00Z\"}", later);
    CHECK_INT(COUNT(m, NULL), 1); /* an expired memory is hidden */
    if (EXPECT(am_memory_get(m, old, &out, &err), AM_OK)) {
        cJSON *r = TAKE(out);
        CHECK_STR(str_field(r, "expires_at"), "2000-01-01T00:00:00.000000Z");
        cJSON_Delete(r);
    }
    EXPECT(am_memory_purge_expired(m, &n, &err), AM_OK);
    CHECK_INT(n, 1);
    n = 99;
    EXPECT(am_memory_purge_expired(m, &n, &err), AM_OK);
    CHECK_INT(n, 0);
    EXPECT(am_memory_get(m, old, &out, &err), AM_ERR_NOT_FOUND);
    if (EXPECT(am_memory_update(m, later, "{\"expires_at\":null}", &out, &err), AM_OK)) {
        cJSON *r = TAKE(out);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "expires_at");
        CHECK(e == NULL || cJSON_IsNull(e));
        cJSON_Delete(r);
    }
    EXPECT_MSG(am_memory_add(m, "{\"content\":\"x\",\"expires_at\":\"tomorrow\"}", &out, &err),
               AM_ERR_INVALID_INPUT, "tomorrow");
    am_memory_free(m);
}

/* ------------------------------------------------------------------------------ vectors */

static void test_vectors(void) {
    am_memory *m = OPEN(NO_EMBEDDER);
    am_error *err = NULL;
    char *out = NULL;
    char east[37] = "", north[37] = "", buf[1024];
    const float e[3] = {1, 0, 0};
    const float nan_v[3] = {1, NAN, 0}, inf_v[3] = {INFINITY, 0, 0}, zero[3] = {0, 0, 0};

    /* Without an embedder, text alone cannot be embedded. */
    EXPECT(am_memory_add(m, "{\"content\":\"no vector\"}", &out, &err), AM_ERR_UNSUPPORTED);
    EXPECT(am_memory_search(m, "{\"query\":\"x\",\"mode\":\"vector\"}", &out, &err),
           AM_ERR_UNSUPPORTED);
    EXPECT_MSG(am_memory_add_with_vector(m, "{\"content\":\"nan\"}", nan_v, 3, &out, &err),
               AM_ERR_INVALID_INPUT, "NaN");
    EXPECT(am_memory_add_with_vector(m, "{\"content\":\"inf\"}", inf_v, 3, &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT_MSG(am_memory_add_with_vector(m, "{\"content\":\"zero\"}", zero, 3, &out, &err),
               AM_ERR_INVALID_INPUT, "zero");
    EXPECT(am_memory_add_with_vector(m, "{\"content\":\"empty\"}", e, 0, &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT_MSG(am_memory_add_with_vector(m, "{\"content\":\"huge\"}", e, SIZE_MAX / 4, &out,
                                         &err),
               AM_ERR_INVALID_INPUT, "dims");
    CHECK_INT(COUNT(m, NULL), 0);

    if (EXPECT(am_memory_add_with_vector(m, "{\"content\":\"points east\",\"user_id\":\"u\"}", e, 3,
                                         &out, &err),
               AM_OK)) {
        cJSON *r = TAKE(out);
        snprintf(east, sizeof east, "%s", str_field(r, "id") ? str_field(r, "id") : "");
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "added")));
        cJSON_Delete(r);
    }
    /* The first vector fixes the dimension. */
    EXPECT_MSG(am_memory_add_with_vector(m, "{\"content\":\"two d\"}", e, 2, &out, &err),
               AM_ERR_INVALID_INPUT, "dimension");

    /* A batch: three rows of three. */
    const float rows[9] = {0, 1, 0, 0, 0, 1, 0, 1, 0};
    if (EXPECT(am_memory_add_batch_with_vectors(
                   m,
                   "{\"memories\":[{\"content\":\"points north\",\"user_id\":\"u\"},"
                   "{\"content\":\"points up\",\"user_id\":\"w\"},"
                   "{\"content\":\"points north\",\"user_id\":\"u\"}]}",
                   rows, 3, 3, &out, &err),
               AM_OK)) {
        cJSON *r = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(r), 3);
        snprintf(north, sizeof north, "%s",
                 str_field(cJSON_GetArrayItem(r, 0), "id") ? str_field(cJSON_GetArrayItem(r, 0), "id") : "");
        CHECK_STR(str_field(cJSON_GetArrayItem(r, 2), "id"), north);
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(r, 2), "added")));
        cJSON_Delete(r);
    }
    CHECK_INT(COUNT(m, NULL), 3);
    /* Bad batches add nothing. */
    const char *two = "{\"memories\":[{\"content\":\"b1\"},{\"content\":\"b2\"}]}";
    const float bad_rows[6] = {1, 1, 1, 1, NAN, 1};
    EXPECT_MSG(am_memory_add_batch_with_vectors(m, two, rows, 1, 3, &out, &err),
               AM_ERR_INVALID_INPUT, "one vector per memory");
    EXPECT(am_memory_add_batch_with_vectors(m, two, bad_rows, 2, 3, &out, &err),
           AM_ERR_INVALID_INPUT);
    const float flat2[4] = {1, 0, 0, 1};
    EXPECT_MSG(am_memory_add_batch_with_vectors(m, two, flat2, 2, 2, &out, &err),
               AM_ERR_INVALID_INPUT, "dimension");
    EXPECT(am_memory_add_batch_with_vectors(m, two, rows, 2, 0, &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_add_batch_with_vectors(m, two, rows, SIZE_MAX, 3, &out, &err),
           AM_ERR_INVALID_INPUT);
    CHECK_INT(COUNT(m, NULL), 3);
    /* An empty batch needs no array: C callers pass NULL for empty arrays. */
    if (EXPECT(am_memory_add_batch_with_vectors(m, "{\"memories\":[]}", NULL, 0, 0, &out, &err),
               AM_OK)) {
        CHECK(strcmp(out, "[]") == 0);
        am_string_free(out);
        out = NULL;
    }
    EXPECT(am_memory_add_batch_with_vectors(m, two, NULL, 0, 3, &out, &err), AM_ERR_INVALID_INPUT);

    /* Vector search: nearest first, similarity reported, scope applied. */
    const float q[3] = {0.9f, 0.1f, 0};
    if (EXPECT(am_memory_search_with_vector(m, "{\"mode\":\"vector\",\"limit\":3}", q, 3, &out,
                                            &err),
               AM_OK)) {
        cJSON *hits = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(hits), 3);
        cJSON *first = cJSON_GetArrayItem(hits, 0);
        CHECK_STR(str_field(first, "id"), east);
        cJSON *sim = cJSON_GetObjectItemCaseSensitive(first, "similarity");
        CHECK(cJSON_IsNumber(sim) && sim->valuedouble > 0.993884 - 1e-4 &&
              sim->valuedouble < 0.993884 + 1e-4);
        CHECK_STR(str_field(cJSON_GetArrayItem(hits, 1), "id"), north);
        cJSON_Delete(hits);
    }
    if (EXPECT(am_memory_search_with_vector(m, "{\"mode\":\"vector\",\"user_id\":\"w\"}", e, 3,
                                            &out, &err),
               AM_OK)) {
        cJSON *hits = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(hits), 1);
        CHECK_STR(str_field(cJSON_GetArrayItem(hits, 0), "content"), "points up");
        cJSON_Delete(hits);
    }
    EXPECT_MSG(am_memory_search_with_vector(m, "{\"mode\":\"vector\"}", e, 2, &out, &err),
               AM_ERR_INVALID_INPUT, "dimension");
    EXPECT(am_memory_search_with_vector(m, "{\"mode\":\"vector\"}", nan_v, 3, &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_search_with_vector(m, "{\"mode\":\"vector\"}", zero, 3, &out, &err),
           AM_ERR_INVALID_INPUT);
    /* Keyword search needs no vector even here. */
    if (EXPECT(am_memory_search(m, "{\"query\":\"north\",\"mode\":\"keyword\"}", &out, &err),
               AM_OK)) {
        cJSON *hits = TAKE(out);
        CHECK_STR(ids_of(hits, buf, sizeof buf), north);
        cJSON_Delete(hits);
    }

    /* update_with_vector: new content goes with its vector. */
    EXPECT(am_memory_update(m, north, "{\"content\":\"points north-east\"}", &out, &err),
           AM_ERR_UNSUPPORTED);
    EXPECT_MSG(am_memory_update_with_vector(m, north, "{\"content\":\"points north-east\"}", e, 2,
                                            &out, &err),
               AM_ERR_INVALID_INPUT, "dimension");
    EXPECT(am_memory_update_with_vector(m, north, "{\"content\":\"points north-east\"}", nan_v, 3,
                                        &out, &err),
           AM_ERR_INVALID_INPUT);
    CHECK_STR(content_of(m, north, buf, sizeof buf), "points north");
    const float ne[3] = {1, 1, 0};
    if (EXPECT(am_memory_update_with_vector(m, north, "{\"content\":\"points north-east\"}", ne, 3,
                                            &out, &err),
               AM_OK)) {
        cJSON *r = TAKE(out);
        CHECK_STR(str_field(r, "content"), "points north-east");
        cJSON_Delete(r);
    }
    if (EXPECT(am_memory_search_with_vector(m, "{\"mode\":\"vector\",\"limit\":1}", ne, 3, &out,
                                            &err),
               AM_OK)) {
        cJSON *hits = TAKE(out);
        CHECK_STR(ids_of(hits, buf, sizeof buf), north);
        cJSON_Delete(hits);
    }
    CHECK(out == NULL);
    am_memory_free(m);
}

/* ------------------------------------------------------------------ out-parameter clearing */

static void test_out_params_cleared(void) {
    am_memory *m = OPEN(HASHING);
    int dummy;
    char *stale = (char *)&dummy;
    char *out = stale;
    uint64_t n = 12345;
    am_error *err = (am_error *)&dummy; /* overwritten, never freed */

    CHECK_INT(am_memory_get(m, MISSING_ID, &out, &err), AM_ERR_NOT_FOUND);
    CHECK(out == NULL);
    CHECK(err != (am_error *)&dummy && err != NULL);
    am_error_free(err);

    err = (am_error *)&dummy;
    CHECK_INT(am_memory_count(m, "{", &n, &err), AM_ERR_INVALID_INPUT);
    CHECK_INT(n, 0);
    am_error_free(err);

    /* On success, *err is set to NULL. */
    err = (am_error *)&dummy;
    n = 12345;
    CHECK_INT(am_memory_count(m, NULL, &n, &err), AM_OK);
    CHECK(err == NULL);
    CHECK_INT(n, 0);

    n = 12345;
    err = (am_error *)&dummy;
    CHECK_INT(am_memory_purge_expired(m, &n, &err), AM_OK);
    CHECK(err == NULL);
    CHECK_INT(n, 0);

    out = stale;
    err = (am_error *)&dummy;
    CHECK_INT(am_memory_add_messages(m, "{\"messages\":[]}", &out, &err), AM_ERR_INVALID_INPUT);
    CHECK(out == NULL);
    CHECK(err != (am_error *)&dummy && err != NULL);
    am_error_free(err);

    out = stale;
    err = NULL;
    CHECK_INT(am_memory_search(m, "{\"query\":\"\"}", &out, &err), AM_ERR_INVALID_INPUT);
    CHECK(out == NULL);
    /* An error stays readable, unchanged, until freed. */
    const char *msg1 = am_error_message(err);
    char copy[512];
    snprintf(copy, sizeof copy, "%s", msg1);
    CHECK_STR(am_error_message(err), copy);
    CHECK_INT(am_error_code(err), AM_ERR_INVALID_INPUT);
    am_error_free(err);
    am_memory_free(m);
}

/* A failed call changes nothing: counts, contents and history stay as they were. */
static void test_failures_change_nothing(void) {
    am_memory *m = OPEN(HASHING);
    am_error *err = NULL;
    char *out = NULL;
    uint64_t n;
    char id[37], buf[256];
    ADD(m, "{\"content\":\"the one memory\",\"user_id\":\"u\"}", id);
    ADD(m, "{\"content\":\"another memory\",\"user_id\":\"u\"}", buf);
    uint64_t before = COUNT(m, NULL);

    EXPECT(am_memory_add(m, "{\"content\":\"\"}", &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_add(m, "{\"content\":\"x\",\"metadata\":{\"user_id\":\"mallory\"}}", &out,
                         &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_add_batch(m, "{\"memories\":[{\"content\":\"fine\"},{\"content\":\"x\","
                                  "\"kind\":\"dream\"}]}",
                               &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_update(m, id, "{\"content\":\"another memory\"}", &out, &err),
           AM_ERR_ALREADY_EXISTS);
    EXPECT(am_memory_update(m, id, "{\"kind\":\"dream\"}", &out, &err), AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_delete_all(m, "{\"filters\":{\"topic\":{\"like\":\"x\"}}}", &n, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT(am_memory_delete(m, " ", &err), AM_ERR_INVALID_INPUT);

    CHECK_INT(COUNT(m, NULL), before);
    CHECK_STR(content_of(m, id, buf, sizeof buf), "the one memory");
    if (EXPECT(am_memory_history(m, id, &out, &err), AM_OK)) {
        cJSON *h = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(h), 1);
        cJSON_Delete(h);
    }
    am_memory_free(m);
}

/* ---------------------------------------------------------------------------- copy_into */

/* A store copied into another: every memory with its id, the whole history (a deleted
   memory's too), and a second copy into the now non-empty target refused. */
static void test_copy_into(void) {
    am_memory *source = OPEN(HASHING), *target = OPEN(HASHING), *other = OPEN(NO_EMBEDDER);
    am_error *err = NULL;
    char *out = NULL;
    char a[37], b[37], gone[37], buf[256];
    int dummy;
    ADD(source, "{\"content\":\"Alice is vegetarian\",\"user_id\":\"alice\","
                "\"metadata\":{\"topic\":\"food\"}}",
        a);
    ADD(source, "{\"content\":\"Bob plays the cello\",\"agent_id\":\"bot\"}", b);
    ADD(source, "{\"content\":\"forget me\"}", gone);
    EXPECT(am_memory_update(source, b, "{\"content\":\"Bob plays the viola\"}", &out, &err),
           AM_OK);
    am_string_free(out);
    out = NULL;
    EXPECT(am_memory_delete(source, gone, &err), AM_OK);

    if (EXPECT(am_memory_copy_into(source, target, &out, &err), AM_OK)) {
        cJSON *copied = TAKE(out);
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(copied, "memories")) == 2);
        /* ADD a, ADD b, UPDATE b, ADD gone, DELETE gone. */
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(copied, "history")) == 5);
        cJSON_Delete(copied);
    }
    CHECK_INT(COUNT(target, NULL), 2);
    CHECK_STR(content_of(target, b, buf, sizeof buf), "Bob plays the viola");
    CHECK_INT(COUNT(target, "{\"filters\":{\"topic\":\"food\"}}"), 1);
    if (EXPECT(am_memory_history(target, gone, &out, &err), AM_OK)) {
        cJSON *h = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(h), 2);
        CHECK_STR(str_field(cJSON_GetArrayItem(h, 1), "event"), "DELETE");
        cJSON_Delete(h);
    }
    if (EXPECT(am_memory_search(target, "{\"query\":\"viola\",\"mode\":\"keyword\"}", &out,
                                &err),
               AM_OK)) {
        cJSON *hits = TAKE(out);
        CHECK_STR(ids_of(hits, buf, sizeof buf), b);
        cJSON_Delete(hits);
    }
    /* The source is unchanged and still usable. */
    CHECK_INT(COUNT(source, NULL), 2);

    /* The target is no longer empty; an error clears the out-parameter. */
    out = (char *)&dummy;
    EXPECT_MSG(am_memory_copy_into(source, target, &out, &err), AM_ERR_ALREADY_EXISTS, "empty");
    CHECK(out == NULL);
    CHECK_INT(COUNT(target, NULL), 2);
    /* A target embedding with another model is refused (mixed vectors would make search
       meaningless); one without embedder takes the copy and the source's model. */
    am_memory *narrow = OPEN("{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":32}}");
    EXPECT_MSG(am_memory_copy_into(source, narrow, &out, &err), AM_ERR_INVALID_INPUT, "hashing-64");
    CHECK_INT(COUNT(narrow, NULL), 0);
    EXPECT(am_memory_copy_into(source, other, &out, &err), AM_OK);
    am_string_free(out);
    out = NULL;
    CHECK_INT(COUNT(other, NULL), 2);
    am_memory_free(source);
    am_memory_free(target);
    am_memory_free(other);
    am_memory_free(narrow);
}

/* ------------------------------------------------------------------------- file-backed */

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        CHECK(unlink(path) == 0);
    }
    closedir(d);
    CHECK(rmdir(dir) == 0);
}

static void test_file_store(void) {
    char dir[] = "/tmp/agentmem-c-test-XXXXXX";
    char path[256], bad_path[300], buf[256];
    am_error *err = NULL;
    am_memory *m = NULL;
    char *out = NULL;
    char a[37] = "", b[37] = "";
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/memories.db", dir);

    /* Invalid UTF-8 in the path is refused before anything touches the disk. */
    snprintf(bad_path, sizeof bad_path, "%s/\xff\xfe.db", dir);
    EXPECT_MSG(am_memory_open(bad_path, HASHING, &m, &err), AM_ERR_INVALID_INPUT, "UTF-8");
    CHECK(m == NULL);

    /* Paths that are no store: a missing directory, the directory itself, a foreign file
       (which the failed open leaves untouched). */
    char missing[300], foreign[300];
    snprintf(missing, sizeof missing, "%s/no/such/dir/memories.db", dir);
    am_status s = am_memory_open(missing, HASHING, &m, &err);
    CHECK(s == AM_ERR_STORAGE || s == AM_ERR_IO);
    CHECK(am_error_code(err) == s && am_error_message(err)[0] != '\0');
    am_error_free(err);
    err = NULL;
    CHECK(m == NULL);
    EXPECT_MSG(am_memory_open(dir, HASHING, &m, &err), AM_ERR_INVALID_INPUT, "directory");
    snprintf(foreign, sizeof foreign, "%s/notes.txt", dir);
    FILE *f = fopen(foreign, "wb");
    CHECK(f != NULL);
    if (f) {
        for (int i = 0; i < 512; i++)
            fputs("not a database. ", f);
        fclose(f);
        EXPECT_MSG(am_memory_open(foreign, HASHING, &m, &err), AM_ERR_CORRUPTED,
                   "not an agent_mem store");
        CHECK(m == NULL);
        f = fopen(foreign, "rb");
        CHECK(f != NULL);
        if (f) {
            fseek(f, 0, SEEK_END);
            CHECK_INT(ftell(f), 512 * 16);
            fclose(f);
        }
    }

    if (!EXPECT(am_memory_open(path, HASHING, &m, &err), AM_OK) || !m) {
        remove_tree(dir);
        return;
    }
    ADD(m, "{\"content\":\"Alice is vegetarian\",\"user_id\":\"alice\"}", a);
    ADD(m, "{\"content\":\"Bob plays the cello\",\"user_id\":\"bob\"}", b);
    EXPECT(am_memory_update(m, a, "{\"metadata\":{\"diet\":\"vegetarian\"}}", &out, &err), AM_OK);
    am_string_free(out);
    out = NULL;
    EXPECT(am_memory_flush(m, &err), AM_OK);
    am_memory_free(m);
    m = NULL;

    /* Reopened: the memories, their metadata, history and both indexes are back. */
    if (EXPECT(am_memory_open(path, HASHING, &m, &err), AM_OK) && m) {
        CHECK_INT(COUNT(m, NULL), 2);
        CHECK_STR(content_of(m, a, buf, sizeof buf), "Alice is vegetarian");
        CHECK_INT(COUNT(m, "{\"filters\":{\"diet\":\"vegetarian\"}}"), 1);
        if (EXPECT(am_memory_history(m, a, &out, &err), AM_OK)) {
            cJSON *h = TAKE(out);
            CHECK_INT(cJSON_GetArraySize(h), 2);
            cJSON_Delete(h);
        }
        if (EXPECT(am_memory_search(m, "{\"query\":\"cello\",\"mode\":\"keyword\"}", &out, &err),
                   AM_OK)) {
            cJSON *hits = TAKE(out);
            CHECK_STR(ids_of(hits, buf, sizeof buf), b);
            cJSON_Delete(hits);
        }
        if (EXPECT(am_memory_search(m, "{\"query\":\"Bob plays the cello\",\"mode\":\"vector\","
                                       "\"limit\":1}",
                                    &out, &err),
                   AM_OK)) {
            cJSON *hits = TAKE(out);
            CHECK_STR(ids_of(hits, buf, sizeof buf), b);
            cJSON_Delete(hits);
        }
        /* Two handles on one file see each other's writes. */
        am_memory *m2 = NULL;
        if (EXPECT(am_memory_open(path, HASHING, &m2, &err), AM_OK) && m2) {
            char c[37];
            ADD(m2, "{\"content\":\"Carol runs marathons\",\"user_id\":\"carol\"}", c);
            CHECK_INT(COUNT(m, NULL), 3);
            if (EXPECT(am_memory_search(m, "{\"query\":\"Carol runs marathons\",\"mode\":\"vector\","
                                           "\"limit\":1}",
                                        &out, &err),
                       AM_OK)) {
                cJSON *hits = TAKE(out);
                CHECK_STR(ids_of(hits, buf, sizeof buf), c);
                cJSON_Delete(hits);
            }
            am_memory_free(m2);
        }
        am_memory_free(m);
    }
    remove_tree(dir);
}

/* ------------------------------------------------------------------------------ threads */

#define THREADS 4
#define ADDS_PER_THREAD 50

typedef struct {
    am_memory *m;
    int index;
    int failures;
    char message[256];
} Worker;

static void worker_fail(Worker *w, const char *what, am_status s, am_error *err) {
    if (!w->failures)
        snprintf(w->message, sizeof w->message, "thread %d: %s: %s %s", w->index, what,
                 am_status_str(s), am_error_message(err));
    w->failures++;
}

static void *worker(void *arg) {
    Worker *w = arg;
    for (int i = 0; i < ADDS_PER_THREAD; i++) {
        char request[256], *out = NULL;
        am_error *err = NULL;
        am_status s;
        snprintf(request, sizeof request,
                 "{\"content\":\"thread %d note %d about topic %d\",\"user_id\":\"t%d\"}", w->index,
                 i, i % 7, w->index);
        s = am_memory_add(w->m, request, &out, &err);
        if (s != AM_OK || !out || !strstr(out, "\"added\":true"))
            worker_fail(w, "add", s, err);
        am_string_free(out);
        am_error_free(err);
        out = NULL;
        err = NULL;

        if (i % 5 == 0) {
            snprintf(request, sizeof request, "{\"query\":\"topic %d\",\"limit\":5}", i % 7);
            s = am_memory_search(w->m, request, &out, &err);
            if (s != AM_OK || !out || out[0] != '[')
                worker_fail(w, "search", s, err);
            am_string_free(out);
            am_error_free(err);
            err = NULL;

            uint64_t n = 0;
            snprintf(request, sizeof request, "{\"user_id\":\"t%d\"}", w->index);
            s = am_memory_count(w->m, request, &n, &err);
            /* This thread's own adds are all visible to it. */
            if (s != AM_OK || n != (uint64_t)(i + 1))
                worker_fail(w, "count", s, err);
            am_error_free(err);
            err = NULL;
        }
        if (i % 10 == 0) {
            s = am_memory_get(w->m, MISSING_ID, &out, &err);
            if (s != AM_ERR_NOT_FOUND || out != NULL || am_error_code(err) != AM_ERR_NOT_FOUND)
                worker_fail(w, "get missing", s, err);
            am_error_free(err);
        }
    }
    return NULL;
}

/* THREADS threads share one handle; every add lands exactly once. */
static void run_threads(am_memory *m) {
    am_error *err = NULL;
    char *out = NULL;
    pthread_t threads[THREADS];
    Worker workers[THREADS];
    int started[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t].m = m;
        workers[t].index = t;
        workers[t].failures = 0;
        workers[t].message[0] = '\0';
        started[t] = pthread_create(&threads[t], NULL, worker, &workers[t]) == 0;
        CHECK(started[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        if (!started[t])
            continue;
        pthread_join(threads[t], NULL);
        CHECK_INT(workers[t].failures, 0);
        if (workers[t].failures)
            fprintf(stderr, "  first: %s\n", workers[t].message);
    }
    CHECK_INT(COUNT(m, NULL), THREADS * ADDS_PER_THREAD);
    for (int t = 0; t < THREADS; t++) {
        char request[64];
        snprintf(request, sizeof request, "{\"user_id\":\"t%d\"}", t);
        CHECK_INT(COUNT(m, request), ADDS_PER_THREAD);
    }
    /* Every memory once in a full listing. */
    if (EXPECT(am_memory_list(m, "{\"limit\":1000}", &out, &err), AM_OK)) {
        cJSON *page = TAKE(out);
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(page, "items")),
                  THREADS * ADDS_PER_THREAD);
        cJSON_Delete(page);
    }
}

static void test_threads(void) {
    am_memory *m = OPEN(HASHING);
    run_threads(m);
    am_memory_free(m);

    /* A file-backed store: a writer and a pool of reader connections. */
    char dir[] = "/tmp/agentmem-c-threads-XXXXXX", path[256];
    am_error *err = NULL;
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/memories.db", dir);
    m = NULL;
    if (EXPECT(am_memory_open(path, HASHING, &m, &err), AM_OK) && m) {
        run_threads(m);
        am_memory_free(m);
    }
    remove_tree(dir);
}

/* --------------------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    test_version();
    test_status_names(argc > 1 ? argv[1] : NULL);
    test_null_tolerance();
    test_open_errors();
    test_null_arguments();
    test_bad_json();
    test_invalid_utf8();
    test_not_found();
    test_misspelt_keys();
    test_messages_without_model();
    test_crud();
    test_batch_and_pages();
    test_expiry();
    test_vectors();
    test_out_params_cleared();
    test_failures_change_nothing();
    test_copy_into();
    test_file_store();
    test_threads();
    if (g_failures) {
        fprintf(stderr, "%d of %d checks FAILED\n", g_failures, g_checks);
        return 1;
    }
    printf("test_agentmem: all %d checks passed\n", g_checks);
    return 0;
}
