/*
 * The one dispatch through the C ABI: every operation am_operations lists is called by name
 * through am_memory_call with the requests of tests/dispatch/calls.json (the cases every
 * language runs), in order, and each result is checked; an unknown operation, text that is
 * not JSON, invalid UTF-8, a request of the wrong type or with a misspelt key are
 * AM_ERR_INVALID_INPUT and change nothing; NULL arguments are AM_ERR_NULL_ARG.
 *
 * Usage: test_dispatch <dir of calls.json and noop.wat>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static char g_dir[4096];

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    size_t got = text ? fread(text, 1, (size_t)size, f) : 0;
    fclose(f);
    if (!text || got != (size_t)size) {
        free(text);
        return NULL;
    }
    text[size] = '\0';
    return text;
}

/* "$id", "$change" (the last change id a result named), "$entity" and "$object" (the subject
   and object entities of the last relation a result held) and "$plugin" replaced, everywhere
   in value (changed in place). */
static char g_change[64];
static char g_entity[64];
static char g_object[64];

static void resolve(cJSON *value, const char *id) {
    cJSON *item;
    if (cJSON_IsString(value)) {
        char path[4200];
        const char *with = NULL;
        if (strcmp(value->valuestring, "$id") == 0) {
            with = id;
        } else if (strcmp(value->valuestring, "$change") == 0) {
            with = g_change;
        } else if (strcmp(value->valuestring, "$entity") == 0) {
            with = g_entity;
        } else if (strcmp(value->valuestring, "$object") == 0) {
            with = g_object;
        } else if (strcmp(value->valuestring, "$plugin") == 0) {
            snprintf(path, sizeof path, "%s/noop.wat", g_dir);
            with = path;
        }
        if (with)
            cJSON_SetValuestring(value, with);
        return;
    }
    cJSON_ArrayForEach(item, value) resolve(item, id);
}

/* calls.json's rule: an object's keys, a list item by item, a scalar equal. */
static int matches(const cJSON *expected, const cJSON *actual) {
    const cJSON *e, *a;
    if (cJSON_IsObject(expected)) {
        if (!cJSON_IsObject(actual))
            return 0;
        cJSON_ArrayForEach(e, expected) {
            a = cJSON_GetObjectItemCaseSensitive(actual, e->string);
            if (!a || !matches(e, a))
                return 0;
        }
        return 1;
    }
    if (cJSON_IsArray(expected)) {
        if (!cJSON_IsArray(actual) || cJSON_GetArraySize(expected) != cJSON_GetArraySize(actual))
            return 0;
        a = actual->child;
        cJSON_ArrayForEach(e, expected) {
            if (!matches(e, a))
                return 0;
            a = a->next;
        }
        return 1;
    }
    return cJSON_Compare(expected, actual, 1);
}

static am_memory *open_store(const cJSON *options) {
    am_memory *m = NULL;
    am_error *err = NULL;
    char *text = cJSON_PrintUnformatted(options);
    EXPECT(am_memory_open(":memory:", text, &m, &err), AM_OK);
    free(text);
    return m;
}

/* The operations the library lists. */
static cJSON *operations(void) {
    char *out = NULL;
    am_error *err = NULL;
    EXPECT(am_operations(&out, &err), AM_OK);
    return TAKE(out);
}

static void every_operation_runs(const cJSON *cases, const cJSON *ops) {
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(cases, "calls"), *call, *op;
    am_memory *m = open_store(cJSON_GetObjectItemCaseSensitive(cases, "options"));
    am_error *err = NULL;
    char id[64] = "";

    /* The cases name every listed operation, and only those. */
    cJSON_ArrayForEach(op, ops) {
        int named = 0;
        cJSON_ArrayForEach(call, calls) named |= strcmp(call->child->valuestring, op->valuestring) == 0;
        if (!named)
            report(__FILE__, __LINE__, "calls.json does not call %s", op->valuestring);
        g_checks++;
    }
    cJSON_ArrayForEach(call, calls) {
        const char *name = call->child->valuestring;
        int listed = 0;
        cJSON_ArrayForEach(op, ops) listed |= strcmp(op->valuestring, name) == 0;
        if (!listed)
            report(__FILE__, __LINE__, "calls.json calls %s, which is not listed", name);
        g_checks++;
    }

    cJSON_ArrayForEach(call, calls) {
        const char *name = call->child->valuestring;
        cJSON *request = cJSON_Duplicate(call->child->next, 1);
        cJSON *expected = cJSON_Duplicate(call->child->next->next, 1);
        resolve(request, id);
        char *text = cJSON_PrintUnformatted(request), *out = NULL;
        const cJSON *error_name = cJSON_GetObjectItemCaseSensitive(expected, "$error");
        if (cJSON_IsString(error_name)) {
            /* {"$error": "Unsupported"}: the call fails with that code (its C name is
               AM_ERR_ + the name in upper snake case, as am_status_str spells it). */
            am_status status = am_memory_call(m, name, text, &out, &err);
            const char *got = am_status_str(status);
            char want[64] = "AM_ERR_";
            size_t at = strlen(want);
            for (const char *c = error_name->valuestring; *c && at + 2 < sizeof want; c++) {
                if (c != error_name->valuestring && *c >= 'A' && *c <= 'Z') want[at++] = '_';
                want[at++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
            }
            want[at] = '\0';
            g_checks++;
            if (strcmp(got, want) != 0)
                report(__FILE__, __LINE__, "%s %s: %s, expected %s", name, text, got, want);
            am_error_free(err);
            err = NULL;
            am_string_free(out);
            out = NULL;
            free(text);
            cJSON_Delete(request);
            cJSON_Delete(expected);
            continue;
        }
        if (expect_status(__FILE__, __LINE__, name, am_memory_call(m, name, text, &out, &err),
                          AM_OK, &err, NULL)) {
            cJSON *result = TAKE(out);
            if (!id[0] && strcmp(name, "add") == 0 && str_field(result, "id"))
                snprintf(id, sizeof id, "%s", str_field(result, "id"));
            if (cJSON_IsObject(result) && str_field(result, "change_id"))
                snprintf(g_change, sizeof g_change, "%s", str_field(result, "change_id"));
            cJSON *relation = cJSON_GetObjectItemCaseSensitive(result, "relation");
            if (cJSON_IsObject(result) && cJSON_IsObject(relation) &&
                str_field(relation, "subject")) {
                snprintf(g_entity, sizeof g_entity, "%s", str_field(relation, "subject"));
                const char *object = str_field(relation, "object");
                snprintf(g_object, sizeof g_object, "%s", object ? object : "");
            }
            resolve(expected, id);
            g_checks++;
            if (!matches(expected, result)) {
                char *got = cJSON_PrintUnformatted(result);
                report(__FILE__, __LINE__, "%s %s: got %s", name, text, got);
                free(got);
            }
            cJSON_Delete(result);
        }
        free(text);
        cJSON_Delete(request);
        cJSON_Delete(expected);
    }
    am_memory_free(m);
}

/* The whole store as JSON text (to compare before and after). */
static char *snapshot(am_memory *m) {
    char *out = NULL;
    am_error *err = NULL;
    EXPECT(am_memory_call(m, "list", "{\"order\": \"created_asc\"}", &out, &err), AM_OK);
    return out;
}

static void bad_calls_change_nothing(const cJSON *cases, const cJSON *ops) {
    am_memory *m = open_store(cJSON_GetObjectItemCaseSensitive(cases, "options"));
    am_error *err = NULL;
    char id[64], *out = NULL, request[8192];
    const cJSON *op;
    ADD(m, "{\"content\": \"Alice drinks tea\", \"user_id\": \"a\"}", id);
    ADD(m, "{\"content\": \"Bob\", \"user_id\": \"b\"}", id);
    char *before = snapshot(m);

    EXPECT_MSG(am_memory_call(m, "frobnicate", "{}", &out, &err), AM_ERR_INVALID_INPUT,
               "unknown operation \"frobnicate\"");
    EXPECT_MSG(am_memory_call(m, "plugin_call", "{", &out, &err), AM_ERR_INVALID_INPUT,
               "unknown operation \"plugin_call\"");
    EXPECT_MSG(am_memory_call(m, "\xff", "{}", &out, &err), AM_ERR_INVALID_INPUT,
               "operation is not valid UTF-8");
    EXPECT_MSG(am_memory_call(m, "count", "{\"user_id\": \"\xff\"}", &out, &err),
               AM_ERR_INVALID_INPUT, "request_json is not valid UTF-8");
    EXPECT(am_memory_call(NULL, "count", NULL, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_call(m, NULL, NULL, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_call(m, "count", NULL, NULL, &err), AM_ERR_NULL_ARG);
    CHECK(out == NULL);

    cJSON_ArrayForEach(op, ops) {
        const char *name = op->valuestring;
        const char *bad[] = {"", "{", "nul", "[1]", "\"text\"", "7",
                             "{\"id\": 5, \"user_id\": 5, \"content\": 5}", request};
        snprintf(request, sizeof request,
                 "{\"id\": \"%s\", \"user_id\": \"a\", \"content\": \"x\", \"query\": \"x\", "
                 "\"messages\": \"x\", \"memories\": [], \"path\": \"%s/noop.wat\", \"usr\": 1}",
                 id, g_dir);
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            if (!expect_status(__FILE__, __LINE__, name, am_memory_call(m, name, bad[i], &out, &err),
                               AM_ERR_INVALID_INPUT, &err, NULL))
                fprintf(stderr, "  request: %s\n", bad[i]);
            CHECK(out == NULL);
        }
    }
    char *after = snapshot(m);
    CHECK_STR(after, before);
    EXPECT(am_memory_call(m, "plugin_list", NULL, &out, &err), AM_OK);
    CHECK_STR(out, "[]");
    am_string_free(out);
    am_string_free(before);
    am_string_free(after);
    am_memory_free(m);
}

/* The store as of a past moment through the generic call: get, search and count read the
   version current then; versions lists them all. */
static void past_moments(const cJSON *cases) {
    am_memory *m = open_store(cJSON_GetObjectItemCaseSensitive(cases, "options"));
    am_error *err = NULL;
    char id[64], *out = NULL, request[512];
    ADD(m, "{\"content\": \"Erin lives in Lyon\", \"user_id\": \"erin\"}", id);
    snprintf(request, sizeof request, "{\"id\": \"%s\"}", id);
    EXPECT(am_memory_call(m, "get", request, &out, &err), AM_OK);
    cJSON *first = TAKE(out);
    char at[64];
    snprintf(at, sizeof at, "%s", str_field(first, "valid_from_tx"));
    cJSON_Delete(first);
    snprintf(request, sizeof request, "{\"id\": \"%s\", \"content\": \"Erin lives in Porto\"}",
             id);
    EXPECT(am_memory_call(m, "update", request, &out, &err), AM_OK);
    am_string_free(out);
    out = NULL;

    snprintf(request, sizeof request, "{\"id\": \"%s\", \"as_of\": \"%s\"}", id, at);
    EXPECT(am_memory_call(m, "get", request, &out, &err), AM_OK);
    cJSON *then = TAKE(out);
    CHECK_STR(str_field(then, "content"), "Erin lives in Lyon");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(then, "version")) == 1);
    CHECK(str_field(then, "valid_to_tx") != NULL);
    cJSON_Delete(then);

    snprintf(request, sizeof request,
             "{\"query\": \"Lyon\", \"mode\": \"keyword\", \"as_of\": \"%s\"}", at);
    EXPECT(am_memory_call(m, "search", request, &out, &err), AM_OK);
    cJSON *hits = TAKE(out);
    CHECK(cJSON_GetArraySize(hits) == 1);
    CHECK_STR(str_field(cJSON_GetArrayItem(hits, 0), "content"), "Erin lives in Lyon");
    cJSON_Delete(hits);

    snprintf(request, sizeof request, "{\"id\": \"%s\"}", id);
    EXPECT(am_memory_call(m, "versions", request, &out, &err), AM_OK);
    cJSON *versions = TAKE(out);
    CHECK(cJSON_GetArraySize(versions) == 2);
    cJSON_Delete(versions);

    EXPECT(am_memory_call(m, "count", "{\"as_of\": \"2000-01-01\"}", &out, &err), AM_OK);
    CHECK_STR(out, "0");
    am_string_free(out);
    out = NULL;
    EXPECT_MSG(am_memory_call(m, "count", "{\"as_of\": \"soon\"}", &out, &err),
               AM_ERR_INVALID_INPUT, "as_of");
    CHECK(out == NULL);
    am_memory_free(m);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <tests/dispatch>\n", argv[0]);
        return 2;
    }
    snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
    char path[4200];
    snprintf(path, sizeof path, "%s/calls.json", g_dir);
    char *text = read_file(path);
    cJSON *cases = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!cases) {
        fprintf(stderr, "cannot read %s\n", path);
        return 2;
    }
    cJSON *ops = operations();
    CHECK(cJSON_GetArraySize(ops) > 0);
    every_operation_runs(cases, ops);
    bad_calls_change_nothing(cases, ops);
    past_moments(cases);
    cJSON_Delete(ops);
    cJSON_Delete(cases);
    printf("test_dispatch: %d checks, %d failures\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
}
