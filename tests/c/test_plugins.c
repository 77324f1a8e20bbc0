/*
 * Tests of the plugin functions of the C API (include/agentmem.h, library built with the
 * cargo feature "plugins"): registering WebAssembly-text modules as bytes, hooks seen through
 * am_memory_add, direct calls with binary input and output, scope confinement and capabilities
 * of host functions, limits, errors, ownership of every returned object, and the Rust example
 * plugin pii_redactor.wasm registered by path when it was built.
 *
 *   test_plugins [PATH/TO/pii_redactor.wasm]
 *
 * Without the path, or when the file is missing, the example's test is skipped (with a line
 * saying so).
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "agentmem.h"
#include "check.h"

/* ------------------------------------------------------------------------------- helpers */

static const char *HASHING = "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":64}}";

static am_memory *open_store(const char *file, int line) {
    am_memory *m = NULL;
    am_error *err = NULL;
    if (!expect_status(file, line, "am_memory_open", am_memory_open(":memory:", HASHING, &m, &err),
                       AM_OK, &err, NULL) ||
        !m) {
        fprintf(stderr, "cannot continue without a store\n");
        exit(1);
    }
    return m;
}
#define OPEN() open_store(__FILE__, __LINE__)

/*
 * A WebAssembly-text module speaking extism's kernel ABI, built export by export (as
 * core/tests/all/support/wat.rs does): every module imports the same host functions, so the host
 * must provide them all, and only the capabilities decide what a call may do.
 */
typedef struct {
    char data[4096];
    char funcs[4096];
    unsigned next;
} Wat;

static void wat_init(Wat *w) {
    w->data[0] = w->funcs[0] = '\0';
    w->next = 16;
}

static void append(char *buf, size_t size, const char *fmt, ...) {
    size_t used = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    if (used < size)
        vsnprintf(buf + used, size - used, fmt, ap);
    va_end(ap);
}

/* An export with this body (a function returning i32). */
static void wat_func(Wat *w, const char *name, const char *body) {
    append(w->funcs, sizeof w->funcs, "  (func (export \"%s\") (result i32) %s)\n", name, body);
}

/* Puts text in a data segment; *at is its address. */
static size_t wat_constant(Wat *w, const char *text, unsigned *at) {
    size_t len = strlen(text);
    *at = w->next;
    append(w->data, sizeof w->data, "  (data (i32.const %u) \"", *at);
    for (size_t i = 0; i < len; i++)
        append(w->data, sizeof w->data, "\\%02x", (unsigned char)text[i]);
    append(w->data, sizeof w->data, "\")\n");
    w->next += (unsigned)len + 16;
    return len;
}

/* An export answering with this text. */
static void wat_reply(Wat *w, const char *name, const char *text) {
    unsigned at;
    size_t len = wat_constant(w, text, &at);
    char body[128];
    snprintf(body, sizeof body, "(call $reply (i32.const %u) (i32.const %zu)) (i32.const 0)", at,
             len);
    wat_func(w, name, body);
}

/* An export answering with its input. */
static void wat_echo(Wat *w, const char *name) {
    wat_func(w, name, "(call $output_set (call $input_offset) (call $input_length)) (i32.const 0)");
}

/* An export calling a host function (text in, text out) with its input; answers its result. */
static void wat_host(Wat *w, const char *name, const char *host) {
    char body[256];
    snprintf(body, sizeof body,
             "(local $r i64) (local.set $r (call $%s (call $input_offset))) "
             "(call $output_set (local.get $r) (call $length (local.get $r))) (i32.const 0)",
             host);
    wat_func(w, name, body);
}

/* The module's text, in buf. */
static const char *wat_text(const Wat *w, char *buf, size_t size) {
    snprintf(
        buf, size,
        "(module\n"
        "  (import \"extism:host/env\" \"alloc\" (func $alloc (param i64) (result i64)))\n"
        "  (import \"extism:host/env\" \"store_u8\" (func $store_u8 (param i64 i32)))\n"
        "  (import \"extism:host/env\" \"output_set\" (func $output_set (param i64 i64)))\n"
        "  (import \"extism:host/env\" \"input_offset\" (func $input_offset (result i64)))\n"
        "  (import \"extism:host/env\" \"input_length\" (func $input_length (result i64)))\n"
        "  (import \"extism:host/env\" \"length\" (func $length (param i64) (result i64)))\n"
        "  (import \"extism:host/user\" \"am_search\" (func $am_search (param i64) (result i64)))\n"
        "  (import \"extism:host/user\" \"am_log\" (func $am_log (param i64)))\n"
        "  (memory (export \"memory\") 1)\n"
        "%s"
        "  (func $copy (param $ptr i32) (param $len i32) (result i64)\n"
        "    (local $off i64) (local $i i32)\n"
        "    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))\n"
        "    (block $done\n"
        "      (loop $next\n"
        "        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))\n"
        "        (call $store_u8\n"
        "          (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))\n"
        "          (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))\n"
        "        (local.set $i (i32.add (local.get $i) (i32.const 1)))\n"
        "        (br $next)))\n"
        "    (local.get $off))\n"
        "  (func $reply (param $ptr i32) (param $len i32)\n"
        "    (call $output_set (call $copy (local.get $ptr) (local.get $len))\n"
        "                      (i64.extend_i32_u (local.get $len))))\n"
        "%s)\n",
        w->data, w->funcs);
    return buf;
}

/* Registers a module's text under a manifest; returns the info (to cJSON_Delete) or NULL. */
static cJSON *register_wat(const char *file, int line, am_memory *m, const char *manifest,
                           const Wat *w) {
    char text[12288];
    char *info = NULL;
    am_error *err = NULL;
    wat_text(w, text, sizeof text);
    if (!expect_status(file, line, manifest,
                       am_memory_register_plugin(m, manifest, (const uint8_t *)text, strlen(text),
                                                 &info, &err),
                       AM_OK, &err, NULL))
        return NULL;
    return take(file, line, &info);
}
#define REGISTER(m, manifest, w) register_wat(__FILE__, __LINE__, (m), (manifest), (w))

/* Calls a plugin with text input; copies its output (text) into buf; returns the status. */
static am_status call_text(am_memory *m, const char *id, const char *function, const char *input,
                           const char *scope, char *buf, size_t size, am_error **err) {
    uint8_t *out = NULL;
    size_t len = 0;
    am_status status = am_memory_call_plugin(m, id, function, (const uint8_t *)input,
                                             strlen(input), scope, &out, &len, err);
    buf[0] = '\0';
    if (status == AM_OK) {
        snprintf(buf, size, "%.*s", (int)len, (const char *)out);
        am_bytes_free(out, len);
    }
    return status;
}

/* The plugin ids of am_memory_list_plugins joined by spaces, into buf. */
static const char *plugin_ids(am_memory *m, char *buf, size_t size) {
    char *out = NULL;
    am_error *err = NULL;
    const cJSON *item;
    buf[0] = '\0';
    if (!EXPECT(am_memory_list_plugins(m, &out, &err), AM_OK))
        return buf;
    cJSON *list = TAKE(out);
    CHECK(cJSON_IsArray(list));
    cJSON_ArrayForEach(item, list) {
        const char *id = str_field(item, "id");
        append(buf, size, "%s%s", buf[0] ? " " : "", id ? id : "?");
    }
    cJSON_Delete(list);
    return buf;
}

/* The strings of a JSON array joined by spaces, into buf. */
static const char *joined(const cJSON *array, char *buf, size_t size) {
    const cJSON *item;
    buf[0] = '\0';
    cJSON_ArrayForEach(item, array) {
        append(buf, size, "%s%s", buf[0] ? " " : "",
               cJSON_IsString(item) ? item->valuestring : "?");
    }
    return buf;
}

static double number_at(const cJSON *object, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(object, a);
    if (b)
        v = cJSON_GetObjectItemCaseSensitive(v, b);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static uint64_t count_all(am_memory *m) {
    uint64_t n = 0;
    am_error *err = NULL;
    EXPECT(am_memory_count(m, "{}", &n, &err), AM_OK);
    return n;
}

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

static double seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* --------------------------------------------------------------------------------- tests */

/* Every required pointer NULL in turn: AM_ERR_NULL_ARG, out-parameters cleared, no leak. */
static void test_null_arguments(void) {
    am_memory *m = OPEN();
    am_error *err = NULL;
    Wat w;
    wat_init(&w);
    wat_echo(&w, "echo");
    cJSON_Delete(REGISTER(m, "{\"id\":\"echo\",\"kind\":\"function\"}", &w));
    const uint8_t wasm[] = "(module)";
    char *json = (char *)&w; /* a sentinel: must be cleared */
    uint8_t *out = (uint8_t *)&w;
    size_t len = 99;

    EXPECT_MSG(am_memory_register_plugin(NULL, "{\"id\":\"x\"}", wasm, 8, &json, &err),
               AM_ERR_NULL_ARG, "m must not be NULL");
    CHECK(json == NULL);
    EXPECT_MSG(am_memory_register_plugin(m, NULL, wasm, 8, &json, &err), AM_ERR_NULL_ARG,
               "manifest_json");
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"x\"}", wasm, 8, NULL, &err),
               AM_ERR_NULL_ARG, "out_info_json");

    json = (char *)&w;
    EXPECT(am_memory_list_plugins(NULL, &json, &err), AM_ERR_NULL_ARG);
    CHECK(json == NULL);
    EXPECT_MSG(am_memory_list_plugins(m, NULL, &err), AM_ERR_NULL_ARG, "out_json");

    EXPECT(am_memory_unregister_plugin(NULL, "echo", &err), AM_ERR_NULL_ARG);
    EXPECT_MSG(am_memory_unregister_plugin(m, NULL, &err), AM_ERR_NULL_ARG, "id");

    am_status (*lifecycle[])(const am_memory *, const char *, char **, am_error **) = {
        am_memory_load_plugin, am_memory_unload_plugin, am_memory_reload_plugin};
    for (size_t i = 0; i < sizeof lifecycle / sizeof *lifecycle; i++) {
        json = (char *)&w;
        EXPECT(lifecycle[i](NULL, "echo", &json, &err), AM_ERR_NULL_ARG);
        CHECK(json == NULL);
        json = (char *)&w;
        EXPECT_MSG(lifecycle[i](m, NULL, &json, &err), AM_ERR_NULL_ARG, "id must not be NULL");
        CHECK(json == NULL);
        EXPECT_MSG(lifecycle[i](m, "echo", NULL, &err), AM_ERR_NULL_ARG, "out_info_json");
    }

    const uint8_t in[] = "hi";
    EXPECT(am_memory_call_plugin(NULL, "echo", "echo", in, 2, NULL, &out, &len, &err),
           AM_ERR_NULL_ARG);
    CHECK(out == NULL);
    CHECK_INT(len, 0);
    EXPECT_MSG(am_memory_call_plugin(m, NULL, "echo", in, 2, NULL, &out, &len, &err),
               AM_ERR_NULL_ARG, "id must not be NULL");
    EXPECT_MSG(am_memory_call_plugin(m, "echo", NULL, in, 2, NULL, &out, &len, &err),
               AM_ERR_NULL_ARG, "function must not be NULL");
    EXPECT_MSG(am_memory_call_plugin(m, "echo", "echo", NULL, 2, NULL, &out, &len, &err),
               AM_ERR_NULL_ARG, "input is NULL but input_len is 2");
    len = 99;
    EXPECT_MSG(am_memory_call_plugin(m, "echo", "echo", in, 2, NULL, NULL, &len, &err),
               AM_ERR_NULL_ARG, "out must not be NULL");
    CHECK_INT(len, 0); /* cleared although out was the NULL one */
    out = (uint8_t *)&w;
    EXPECT_MSG(am_memory_call_plugin(m, "echo", "echo", in, 2, NULL, &out, NULL, &err),
               AM_ERR_NULL_ARG, "out_len must not be NULL");
    CHECK(out == NULL);
    /* err NULL is allowed everywhere. */
    CHECK_INT(am_memory_call_plugin(m, "echo", NULL, in, 2, NULL, &out, &len, NULL),
              AM_ERR_NULL_ARG);

    am_bytes_free(NULL, 0);
    am_bytes_free(NULL, 12);
    char ids[256];
    CHECK_STR(plugin_ids(m, ids, sizeof ids), "echo"); /* none of the above changed anything */
    am_memory_free(m);
}

static void test_register_errors(void) {
    am_memory *m = OPEN();
    am_error *err = NULL;
    char *info = NULL;
    char ids[256];
    const char *good = "(module (func (export \"on_add\") (result i32) (i32.const 0)))";
    const uint8_t *bytes = (const uint8_t *)good;
    size_t n = strlen(good);

    /* The module's bytes and its path: exactly one. */
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"p\"}", NULL, 5, &info, &err),
               AM_ERR_INVALID_INPUT, "wasm is NULL but wasm_len is 5");
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"p\"}", NULL, 0, &info, &err),
               AM_ERR_INVALID_INPUT, "give a path");
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"p\",\"path\":\"/tmp/p.wasm\"}", bytes, n,
                                         &info, &err),
               AM_ERR_INVALID_INPUT, "not both");
    /* Too long to be a module: refused before the bytes are read. */
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"p\"}", bytes, ((size_t)256 << 20) + 1,
                                         &info, &err),
               AM_ERR_INVALID_INPUT, "at most 268435456 bytes");
    /* Bad manifests. */
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":", bytes, n, &info, &err),
               AM_ERR_INVALID_INPUT, "manifest_json is not valid JSON");
    EXPECT_MSG(am_memory_register_plugin(m, "[1]", bytes, n, &info, &err), AM_ERR_INVALID_INPUT,
               "must be a JSON object");
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"p\",\"capabilites\":[]}", bytes, n, &info,
                                         &err),
               AM_ERR_INVALID_INPUT, "capabilites");
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"p\",\"capabilities\":[\"root\"]}", bytes,
                                         n, &info, &err),
               AM_ERR_INVALID_INPUT, "root");
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"no spaces\"}", bytes, n, &info, &err),
               AM_ERR_INVALID_INPUT, "no spaces");
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"p\",\"limits\":{\"timeout_ms\":0}}", bytes,
                                         n, &info, &err),
               AM_ERR_INVALID_INPUT, "timeout_ms");
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"\xff\"}", bytes, n, &info, &err),
               AM_ERR_INVALID_INPUT, "not valid UTF-8");
    /* Modules that are not WebAssembly: AM_ERR_PLUGIN, naming the plugin. */
    const char *junk = "this is not wasm";
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"bad\"}", (const uint8_t *)junk,
                                         strlen(junk), &info, &err),
               AM_ERR_PLUGIN, "not a WebAssembly module");
    const uint8_t truncated[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 0xff, 0xff, 0xff};
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"bad\"}", truncated, sizeof truncated,
                                         &info, &err),
               AM_ERR_PLUGIN, "\"bad\"");
    const char *unclosed = "(module (func (export \"on_add\")";
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"bad\"}", (const uint8_t *)unclosed,
                                         strlen(unclosed), &info, &err),
               AM_ERR_PLUGIN, "cannot be loaded");
    /* Empty bytes (a non-NULL pointer, length 0) are a module, an empty one. */
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"bad\"}", bytes, 0, &info, &err),
               AM_ERR_PLUGIN, "not a WebAssembly module");
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"bad\",\"path\":\"/nonexistent/p.wasm\"}",
                                         NULL, 0, &info, &err),
               AM_ERR_IO, "/nonexistent/p.wasm");
    /* A hook plugin must export a hook. */
    const char *no_hooks = "(module (func (export \"helper\") (result i32) (i32.const 0)))";
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"bad\"}", (const uint8_t *)no_hooks,
                                         strlen(no_hooks), &info, &err),
               AM_ERR_PLUGIN, "exports none of on_add");
    CHECK(info == NULL);
    CHECK_STR(plugin_ids(m, ids, sizeof ids), "");

    /* Registered, then the same id again. */
    if (EXPECT(am_memory_register_plugin(m, "{\"id\":\"p\"}", bytes, n, &info, &err), AM_OK))
        cJSON_Delete(TAKE(info));
    EXPECT_MSG(am_memory_register_plugin(m, "{\"id\":\"p\",\"kind\":\"function\"}", bytes, n,
                                         &info, &err),
               AM_ERR_ALREADY_EXISTS, "\"p\"");
    CHECK(info == NULL);
    char *list = NULL;
    if (EXPECT(am_memory_list_plugins(m, &list, &err), AM_OK)) {
        cJSON *all = TAKE(list);
        CHECK_INT(cJSON_GetArraySize(all), 1);
        CHECK_STR(str_field(cJSON_GetArrayItem(all, 0), "kind"), "hook"); /* the first one */
        cJSON_Delete(all);
    }
    am_memory_free(m);
}

/* on_add hooks seen through am_memory_add: a rewrite is what gets stored, a rejection fails
   the add with the plugin's reason and stores nothing. */
static void test_on_add_hooks(void) {
    am_memory *m = OPEN();
    am_error *err = NULL;
    char id[37], buf[256], *out = NULL;
    Wat w;

    wat_init(&w);
    wat_reply(&w, "on_add", "{\"content\":\"I like [redacted] tea\"}");
    cJSON *info = REGISTER(m, "{\"id\":\"rewrite\"}", &w);
    char hooks[128];
    CHECK_STR(joined(cJSON_GetObjectItemCaseSensitive(info, "hooks"), hooks, sizeof hooks),
              "on_add");
    cJSON_Delete(info);
    ADD(m, "{\"content\":\"I like green tea\",\"user_id\":\"alice\"}", id);
    CHECK_STR(content_of(m, id, buf, sizeof buf), "I like [redacted] tea");
    /* What search sees is the stored text. */
    static const struct {
        const char *request;
        int hits;
    } searches[] = {
        {"{\"query\":\"redacted\",\"mode\":\"keyword\",\"user_id\":\"alice\"}", 1},
        {"{\"query\":\"green\",\"mode\":\"keyword\",\"user_id\":\"alice\"}", 0},
    };
    for (size_t i = 0; i < sizeof searches / sizeof *searches; i++) {
        if (EXPECT(am_memory_search(m, searches[i].request, &out, &err), AM_OK)) {
            cJSON *hits = TAKE(out);
            CHECK_INT(cJSON_GetArraySize(hits), searches[i].hits);
            cJSON_Delete(hits);
        }
    }
    EXPECT(am_memory_unregister_plugin(m, "rewrite", &err), AM_OK);

    wat_init(&w);
    wat_reply(&w, "on_add", "{\"reject\":\"no secrets in memory\"}");
    cJSON_Delete(REGISTER(m, "{\"id\":\"guard\"}", &w));
    uint64_t before = count_all(m);
    out = (char *)&w;
    EXPECT_MSG(am_memory_add(m, "{\"content\":\"the password is hunter2\",\"user_id\":\"alice\"}",
                             &out, &err),
               AM_ERR_PLUGIN, "no secrets in memory");
    CHECK(out == NULL);
    EXPECT_MSG(am_memory_add_batch(m,
                                   "{\"memories\":[{\"content\":\"a\"},{\"content\":\"b\"}]}",
                                   &out, &err),
               AM_ERR_PLUGIN, "no secrets in memory");
    CHECK_INT(count_all(m), before);
    /* The stats count the rejections as calls. */
    if (EXPECT(am_memory_list_plugins(m, &out, &err), AM_OK)) {
        cJSON *all = TAKE(out);
        CHECK(number_at(cJSON_GetArrayItem(all, 0), "stats", "calls") >= 2);
        cJSON_Delete(all);
    }
    /* Unregistered, it no longer runs. */
    EXPECT(am_memory_unregister_plugin(m, "guard", &err), AM_OK);
    EXPECT_MSG(am_memory_unregister_plugin(m, "guard", &err), AM_ERR_NOT_FOUND, "guard");
    ADD(m, "{\"content\":\"the password is hunter2\",\"user_id\":\"alice\"}", id);
    CHECK_STR(content_of(m, id, buf, sizeof buf), "the password is hunter2");
    CHECK_INT(count_all(m), before + 1);
    am_memory_free(m);
}

/* The list in registration order, the info fields, load/unload/reload, unregister. */
static void test_list_and_lifecycle(void) {
    am_memory *m = OPEN();
    am_error *err = NULL;
    char ids[256], hooks[128], *info = NULL;
    Wat w;

    wat_init(&w);
    wat_reply(&w, "after_search", "{}");
    wat_reply(&w, "on_add", "{}");
    wat_echo(&w, "helper");
    cJSON_Delete(REGISTER(m, "{\"id\":\"zeta\",\"name\":\"Zeta\",\"version\":\"1.2.0\"}", &w));
    wat_init(&w);
    wat_echo(&w, "echo");
    cJSON_Delete(REGISTER(
        m,
        "{\"id\":\"alpha\",\"kind\":\"function\",\"capabilities\":[\"logging\",\"search\"],"
        "\"limits\":{\"timeout_ms\":1500,\"fuel\":1000000}}",
        &w));
    wat_init(&w);
    wat_reply(&w, "before_search", "{}");
    cJSON_Delete(REGISTER(m, "{\"id\":\"mid\",\"on_error\":\"skip\"}", &w));
    CHECK_STR(plugin_ids(m, ids, sizeof ids), "zeta alpha mid");

    char *out = NULL;
    if (EXPECT(am_memory_list_plugins(m, &out, &err), AM_OK)) {
        cJSON *all = TAKE(out);
        const cJSON *zeta = cJSON_GetArrayItem(all, 0), *alpha = cJSON_GetArrayItem(all, 1),
                    *mid = cJSON_GetArrayItem(all, 2);
        CHECK_STR(str_field(zeta, "name"), "Zeta");
        CHECK_STR(str_field(zeta, "version"), "1.2.0");
        CHECK_STR(str_field(zeta, "kind"), "hook");
        /* Hooks in pipeline order, whatever the module's order. */
        CHECK_STR(joined(cJSON_GetObjectItemCaseSensitive(zeta, "hooks"), hooks, sizeof hooks),
                  "on_add after_search");
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(zeta, "loaded")));
        CHECK(number_at(zeta, "limits", "memory_pages") == 256);
        CHECK(number_at(zeta, "limits", "timeout_ms") == 1000);
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(zeta, "limits"), "fuel")));
        CHECK_STR(str_field(zeta, "on_error"), "fail");
        CHECK(cJSON_GetObjectItemCaseSensitive(zeta, "path") == NULL);
        CHECK_STR(str_field(alpha, "kind"), "function");
        CHECK_STR(str_field(alpha, "name"), "alpha"); /* defaults to the id */
        CHECK_STR(joined(cJSON_GetObjectItemCaseSensitive(alpha, "capabilities"), hooks,
                         sizeof hooks),
                  "logging search");
        CHECK_STR(joined(cJSON_GetObjectItemCaseSensitive(alpha, "hooks"), hooks, sizeof hooks),
                  "");
        CHECK(number_at(alpha, "limits", "timeout_ms") == 1500);
        CHECK(number_at(alpha, "limits", "fuel") == 1000000);
        CHECK(number_at(alpha, "stats", "loads") == 1);
        CHECK(number_at(alpha, "stats", "calls") == 0);
        CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(alpha, "log")));
        CHECK_STR(str_field(mid, "on_error"), "skip");
        CHECK_STR(joined(cJSON_GetObjectItemCaseSensitive(mid, "hooks"), hooks, sizeof hooks),
                  "before_search");
        cJSON_Delete(all);
    }

    /* Unload, load, reload: the info says so. */
    if (EXPECT(am_memory_unload_plugin(m, "alpha", &info, &err), AM_OK)) {
        cJSON *i = TAKE(info);
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(i, "loaded")));
        cJSON_Delete(i);
    }
    char text[64];
    /* Unloaded, it is compiled again on use. */
    EXPECT(call_text(m, "alpha", "echo", "back", NULL, text, sizeof text, &err), AM_OK);
    CHECK_STR(text, "back");
    EXPECT(am_memory_unload_plugin(m, "alpha", &info, &err), AM_OK);
    am_string_free(info);
    if (EXPECT(am_memory_load_plugin(m, "alpha", &info, &err), AM_OK)) {
        cJSON *i = TAKE(info);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(i, "loaded")));
        CHECK(number_at(i, "stats", "loads") == 3);
        CHECK(number_at(i, "stats", "calls") == 1);
        cJSON_Delete(i);
    }
    if (EXPECT(am_memory_reload_plugin(m, "alpha", &info, &err), AM_OK)) {
        cJSON *i = TAKE(info);
        CHECK(number_at(i, "stats", "reloads") == 1);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(i, "loaded")));
        cJSON_Delete(i);
    }

    /* Unknown ids. */
    EXPECT_MSG(am_memory_load_plugin(m, "nope", &info, &err), AM_ERR_NOT_FOUND, "nope");
    EXPECT(am_memory_unload_plugin(m, "nope", &info, &err), AM_ERR_NOT_FOUND);
    EXPECT(am_memory_reload_plugin(m, "nope", &info, &err), AM_ERR_NOT_FOUND);
    EXPECT(am_memory_unregister_plugin(m, "nope", &err), AM_ERR_NOT_FOUND);
    EXPECT(call_text(m, "nope", "echo", "x", NULL, text, sizeof text, &err), AM_ERR_NOT_FOUND);
    CHECK(info == NULL);
    EXPECT(am_memory_load_plugin(m, "bad\xc3", &info, &err), AM_ERR_INVALID_INPUT);

    /* Unregistered from the middle: the order of the rest stays; the id is free again. */
    EXPECT(am_memory_unregister_plugin(m, "alpha", &err), AM_OK);
    CHECK_STR(plugin_ids(m, ids, sizeof ids), "zeta mid");
    EXPECT(call_text(m, "alpha", "echo", "x", NULL, text, sizeof text, &err), AM_ERR_NOT_FOUND);
    wat_init(&w);
    wat_echo(&w, "echo");
    cJSON_Delete(REGISTER(m, "{\"id\":\"alpha\",\"kind\":\"function\"}", &w));
    CHECK_STR(plugin_ids(m, ids, sizeof ids), "zeta mid alpha");
    am_memory_free(m);
}

/* Direct calls: bytes in are bytes out, NUL bytes and empty input included. */
static void test_call_bytes(void) {
    am_memory *m = OPEN();
    am_error *err = NULL;
    Wat w;
    wat_init(&w);
    wat_echo(&w, "echo");
    wat_reply(&w, "hello", "{\"greeting\":\"hello\"}");
    cJSON_Delete(REGISTER(m, "{\"id\":\"echo\",\"kind\":\"function\"}", &w));

    const uint8_t in[] = {'a', 0, 'b', 0xff, 0, 0x7f};
    uint8_t *out = NULL;
    size_t len = 0;
    if (EXPECT(am_memory_call_plugin(m, "echo", "echo", in, sizeof in, NULL, &out, &len, &err),
               AM_OK)) {
        CHECK_INT(len, sizeof in);
        CHECK(out != NULL && memcmp(out, in, sizeof in) == 0);
        CHECK(out != NULL && out[len] == 0); /* the uncounted NUL after the bytes */
        am_bytes_free(out, len);
    }
    /* Empty input, as NULL or as a pointer with length 0: empty output, never NULL. */
    out = (uint8_t *)&w;
    len = 5;
    if (EXPECT(am_memory_call_plugin(m, "echo", "echo", NULL, 0, NULL, &out, &len, &err), AM_OK)) {
        CHECK_INT(len, 0);
        CHECK(out != NULL && out[0] == 0);
        am_bytes_free(out, len);
    }
    if (EXPECT(am_memory_call_plugin(m, "echo", "echo", in, 0, NULL, &out, &len, &err), AM_OK)) {
        CHECK_INT(len, 0);
        CHECK(out != NULL);
        am_bytes_free(out, len);
    }
    /* A larger input, every byte value. */
    size_t big = 300000;
    uint8_t *data = malloc(big);
    CHECK(data != NULL);
    if (data) {
        for (size_t i = 0; i < big; i++)
            data[i] = (uint8_t)(i * 7 + i / 256);
        if (EXPECT(am_memory_call_plugin(m, "echo", "echo", data, big, NULL, &out, &len, &err),
                   AM_OK)) {
            CHECK_INT(len, big);
            CHECK(memcmp(out, data, big) == 0);
            am_bytes_free(out, len);
        }
        free(data);
    }
    /* Text output reads as a C string. */
    if (EXPECT(am_memory_call_plugin(m, "echo", "hello", NULL, 0, NULL, &out, &len, &err),
               AM_OK)) {
        CHECK_STR((const char *)out, "{\"greeting\":\"hello\"}");
        CHECK_INT(len, strlen("{\"greeting\":\"hello\"}"));
        am_bytes_free(out, len);
    }
    /* Errors. */
    EXPECT_MSG(am_memory_call_plugin(m, "echo", "missing_export", in, 1, NULL, &out, &len, &err),
               AM_ERR_NOT_FOUND, "missing_export");
    CHECK(out == NULL);
    CHECK_INT(len, 0);
    EXPECT_MSG(am_memory_call_plugin(m, "echo", "echo", in, ((size_t)64 << 20) + 1, NULL, &out,
                                     &len, &err),
               AM_ERR_INVALID_INPUT, "input_len");
    EXPECT_MSG(am_memory_call_plugin(m, "echo", "ech\xff", in, 1, NULL, &out, &len, &err),
               AM_ERR_INVALID_INPUT, "function is not valid UTF-8");
    EXPECT_MSG(am_memory_call_plugin(m, "echo", "echo", in, 1, "{\"user_id\":", &out, &len, &err),
               AM_ERR_INVALID_INPUT, "scope_json is not valid JSON");
    EXPECT_MSG(am_memory_call_plugin(m, "echo", "echo", in, 1, "{\"usr_id\":\"a\"}", &out, &len,
                                     &err),
               AM_ERR_INVALID_INPUT, "usr_id");
    EXPECT_MSG(am_memory_call_plugin(m, "echo", "echo", in, 1, "\"alice\"", &out, &len, &err),
               AM_ERR_INVALID_INPUT, "must be a JSON object");
    CHECK(out == NULL);
    am_memory_free(m);
}

/* A function plugin with the search capability sees only the scope it is called with. */
static void test_scope_confinement(void) {
    am_memory *m = OPEN();
    am_error *err = NULL;
    char id[37], text[8192];
    Wat w;
    ADD(m, "{\"content\":\"alice drinks green tea\",\"user_id\":\"alice\"}", id);
    ADD(m, "{\"content\":\"bob drinks green tea\",\"user_id\":\"bob\"}", id);
    ADD(m, "{\"content\":\"everyone drinks green tea\"}", id);
    wat_init(&w);
    wat_host(&w, "find", "am_search");
    cJSON_Delete(
        REGISTER(m, "{\"id\":\"finder\",\"kind\":\"function\",\"capabilities\":[\"search\"]}", &w));

    static const struct {
        const char *scope, *want;
    } cases[] = {
        {"{\"user_id\":\"alice\"}", "alice drinks green tea"},
        {"{\"user_id\":\"bob\"}", "bob drinks green tea"},
        {NULL, "everyone drinks green tea"},
        {"{}", "everyone drinks green tea"},
        {"{\"user_id\":\"carol\"}", ""},
    };
    const char *query = "{\"query\":\"green tea\",\"mode\":\"keyword\",\"limit\":10}";
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (!EXPECT(call_text(m, "finder", "find", query, cases[i].scope, text, sizeof text, &err),
                    AM_OK))
            continue;
        cJSON *r = cJSON_Parse(text);
        const cJSON *hit;
        char got[512] = "";
        CHECK(r != NULL);
        cJSON_ArrayForEach(hit, cJSON_GetObjectItemCaseSensitive(r, "results")) {
            const char *c = str_field(hit, "content");
            append(got, sizeof got, "%s%s", got[0] ? " | " : "", c ? c : "?");
        }
        g_checks++;
        if (strcmp(got, cases[i].want) != 0)
            report(__FILE__, __LINE__, "scope %s: the plugin saw \"%s\", expected \"%s\"",
                   cases[i].scope ? cases[i].scope : "NULL", got, cases[i].want);
        cJSON_Delete(r);
    }
    am_memory_free(m);
}

/* A host function whose capability was not granted: AM_ERR_PERMISSION_DENIED, counted. */
static void test_denied_capability(void) {
    am_memory *m = OPEN();
    am_error *err = NULL;
    char text[256], id[37], *out = NULL;
    Wat w;
    ADD(m, "{\"content\":\"alice drinks green tea\",\"user_id\":\"alice\"}", id);
    wat_init(&w);
    wat_host(&w, "find", "am_search");
    wat_func(&w, "log",
             "(call $am_log (call $input_offset)) "
             "(call $output_set (call $input_offset) (call $input_length)) (i32.const 0)");
    wat_echo(&w, "echo");
    cJSON_Delete(REGISTER(
        m, "{\"id\":\"nosy\",\"kind\":\"function\",\"capabilities\":[\"logging\"]}", &w));
    EXPECT_MSG(call_text(m, "nosy", "find", "{\"query\":\"tea\"}", "{\"user_id\":\"alice\"}", text,
                         sizeof text, &err),
               AM_ERR_PERMISSION_DENIED, "capability 'search' not granted to plugin 'nosy'");
    /* The plugin still works for what it may do. */
    EXPECT(call_text(m, "nosy", "echo", "still here", NULL, text, sizeof text, &err), AM_OK);
    CHECK_STR(text, "still here");
    EXPECT(call_text(m, "nosy", "log", "a line for the log", NULL, text, sizeof text, &err),
           AM_OK);
    if (EXPECT(am_memory_list_plugins(m, &out, &err), AM_OK)) {
        cJSON *all = TAKE(out);
        const cJSON *p = cJSON_GetArrayItem(all, 0);
        CHECK(number_at(p, "stats", "denied") == 1);
        CHECK(number_at(p, "stats", "failures") == 1);
        const char *last = str_field(p, "last_error");
        CHECK(last != NULL && strstr(last, "search") != NULL);
        /* Its log has the granted line and the refusal. */
        const cJSON *line;
        int logged = 0, refused = 0;
        cJSON_ArrayForEach(line, cJSON_GetObjectItemCaseSensitive(p, "log")) {
            const char *msg = str_field(line, "message");
            logged += msg && strstr(msg, "a line for the log") != NULL;
            refused += msg && strstr(msg, "search") != NULL;
        }
        CHECK_INT(logged, 1);
        CHECK(refused >= 1);
        cJSON_Delete(all);
    }
    am_memory_free(m);
}

/* An infinite loop is stopped by limits.timeout_ms; the plugin and the handle keep working. */
static void test_timeout(void) {
    am_memory *m = OPEN();
    am_error *err = NULL;
    char text[64], id[37], *out = NULL;
    struct timespec start;
    Wat w;
    wat_init(&w);
    wat_func(&w, "spin", "(loop $forever (br $forever)) (i32.const 0)");
    wat_reply(&w, "ok", "fine");
    wat_func(&w, "crash", "unreachable");
    cJSON_Delete(REGISTER(
        m, "{\"id\":\"spin\",\"kind\":\"function\",\"limits\":{\"timeout_ms\":200}}", &w));
    clock_gettime(CLOCK_MONOTONIC, &start);
    EXPECT_MSG(call_text(m, "spin", "spin", "", NULL, text, sizeof text, &err), AM_ERR_PLUGIN,
               "timed out");
    double took = seconds_since(&start);
    /* Stopped, not hung: natively it takes 0.2 s, under valgrind 0.5 to 1 s (11 s with
       --track-origins). The precision of the limit is the core's test. */
    g_checks++;
    if (took < 0.15 || took > 30)
        report(__FILE__, __LINE__, "the 200 ms timeout took %.2f s", took);
    EXPECT(call_text(m, "spin", "ok", "", NULL, text, sizeof text, &err), AM_OK);
    CHECK_STR(text, "fine");
    /* A trap (what a panic compiles to) as well. */
    EXPECT_MSG(call_text(m, "spin", "crash", "", NULL, text, sizeof text, &err), AM_ERR_PLUGIN,
               "spin");
    EXPECT(call_text(m, "spin", "ok", "", NULL, text, sizeof text, &err), AM_OK);
    ADD(m, "{\"content\":\"the store still works\",\"user_id\":\"u\"}", id);
    CHECK_INT(count_all(m), 1);
    if (EXPECT(am_memory_list_plugins(m, &out, &err), AM_OK)) {
        cJSON *all = TAKE(out);
        const cJSON *p = cJSON_GetArrayItem(all, 0);
        CHECK(number_at(p, "stats", "calls") == 4);
        CHECK(number_at(p, "stats", "failures") == 2);
        cJSON_Delete(all);
    }
    am_memory_free(m);
}

/* Many threads calling plugins on one handle. */
#define THREADS 4
#define CALLS 10
typedef struct {
    am_memory *m;
    int index, failures;
    char message[256];
} Worker;

static void *worker(void *arg) {
    Worker *wk = arg;
    for (int i = 0; i < CALLS; i++) {
        char in[64];
        uint8_t *out = NULL;
        size_t len = 0;
        am_error *err = NULL;
        int n = snprintf(in, sizeof in, "thread %d call %d", wk->index, i);
        am_status s = am_memory_call_plugin(wk->m, "echo", "echo", (const uint8_t *)in, (size_t)n,
                                            NULL, &out, &len, &err);
        if (s != AM_OK || len != (size_t)n || memcmp(out, in, len) != 0) {
            if (!wk->failures++)
                snprintf(wk->message, sizeof wk->message, "%s: %s", am_status_str(s),
                         am_error_message(err));
        }
        am_bytes_free(out, len);
        am_error_free(err);
    }
    return NULL;
}

static void test_threads(void) {
    am_memory *m = OPEN();
    Wat w;
    wat_init(&w);
    wat_echo(&w, "echo");
    cJSON_Delete(REGISTER(m, "{\"id\":\"echo\",\"kind\":\"function\"}", &w));
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
    am_memory_free(m);
}

/* The Rust example plugin (examples/plugins), registered by path, redacting on add. */
static void test_pii_example(const char *path) {
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f) {
        if (path)
            printf("SKIPPED: the pii_redactor example: %s not found (examples/plugins/build.sh "
                   "builds it when the wasm32-unknown-unknown target is installed)\n",
                   path);
        else
            printf("SKIPPED: the pii_redactor example: no path given\n");
        return;
    }
    fclose(f);
    am_memory *m = OPEN();
    am_error *err = NULL;
    char manifest[1024], id[37], text[256], *info = NULL;
    cJSON *path_json = cJSON_CreateString(path);
    char *quoted = cJSON_PrintUnformatted(path_json);
    snprintf(manifest, sizeof manifest,
             "{\"id\":\"pii\",\"path\":%s,\"capabilities\":[\"config\",\"logging\"]}", quoted);
    cJSON_free(quoted);
    cJSON_Delete(path_json);
    if (EXPECT(am_memory_register_plugin(m, manifest, NULL, 0, &info, &err), AM_OK)) {
        cJSON *i = TAKE(info);
        /* Made absolute. */
        const char *got = str_field(i, "path");
        const char *name = "/pii_redactor.wasm";
        CHECK(got != NULL && got[0] == '/' && strlen(got) >= strlen(name) &&
              strcmp(got + strlen(got) - strlen(name), name) == 0);
        char hooks[128];
        CHECK_STR(joined(cJSON_GetObjectItemCaseSensitive(i, "hooks"), hooks, sizeof hooks),
                  "on_add");
        cJSON_Delete(i);
    }
    ADD(m, "{\"content\":\"Mail bob@example.com\",\"user_id\":\"bob\"}", id);
    CHECK_STR(content_of(m, id, text, sizeof text), "Mail [email]");
    EXPECT(call_text(m, "pii", "redact", "call +44 20 7946 0958", NULL, text, sizeof text, &err),
           AM_OK);
    CHECK_STR(text, "call [phone]");
    /* Reloaded from its file. */
    if (EXPECT(am_memory_reload_plugin(m, "pii", &info, &err), AM_OK)) {
        cJSON *i = TAKE(info);
        CHECK(number_at(i, "stats", "reloads") == 1);
        cJSON_Delete(i);
    }
    ADD(m, "{\"content\":\"write to carol@example.org\",\"user_id\":\"bob\"}", id);
    CHECK_STR(content_of(m, id, text, sizeof text), "write to [email]");
    am_memory_free(m);
}

/* --------------------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    test_null_arguments();
    test_register_errors();
    test_on_add_hooks();
    test_list_and_lifecycle();
    test_call_bytes();
    test_scope_confinement();
    test_denied_capability();
    test_timeout();
    test_threads();
    test_pii_example(argc > 1 ? argv[1] : NULL);
    if (g_failures) {
        fprintf(stderr, "%d of %d checks FAILED\n", g_failures, g_checks);
        return 1;
    }
    printf("test_plugins: all %d checks passed\n", g_checks);
    return 0;
}
