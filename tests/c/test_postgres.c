/*
 * The C API on PostgreSQL stores: am_memory_open with a postgres:// URL, the usual calls on
 * it, am_memory_copy_into between SQLite and PostgreSQL both ways, the pool options, and
 * the password kept out of every error message.
 *
 *   test_postgres
 *
 * The server is the one tests/postgres.sh starts (AGENTMEM_TEST_PG_URL). Without it the
 * program says SKIPPED and passes, unless AGENTMEM_REQUIRE_POSTGRES=1: then it fails. Each
 * test works in a PostgreSQL schema of its own, made with psql ($AGENTMEM_TEST_PG_BIN/psql,
 * else psql on PATH), and opens its store with that schema first in the search path.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agentmem.h"
#include "check.h"

static const char *HASHING = "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":64}}";
/* A password no server here has: it must never come back in a message. */
static const char *WRONG_PASSWORD = "wrong-Pw-7f3a9c";

static const char *g_server;  /* AGENTMEM_TEST_PG_URL */
static char g_secret[256];    /* ":<password>@" of that URL */

/* ------------------------------------------------------------------------------- helpers */

/* The userinfo of the server URL as ":<password>@", so that a message may name the user but
   must not hold the password; "" when the URL has none. */
static void find_secret(const char *url) {
    const char *start = strstr(url, "://");
    const char *at, *colon;
    g_secret[0] = '\0';
    if (!start)
        return;
    start += 3;
    at = strchr(start, '@');
    colon = strchr(start, ':');
    if (at && colon && colon < at)
        snprintf(g_secret, sizeof g_secret, "%.*s", (int)(at - colon + 1), colon);
}

/* Fails the check when `text` holds the server's password or `WRONG_PASSWORD`. */
static void check_no_password(const char *file, int line, const char *what, const char *text) {
    g_checks++;
    if (!text)
        return;
    if ((g_secret[0] && strstr(text, g_secret)) || strstr(text, WRONG_PASSWORD))
        report(file, line, "%s shows a password: %s", what, text);
}
#define CHECK_NO_PASSWORD(what, text) check_no_password(__FILE__, __LINE__, (what), (text))

/* Makes an empty schema `name` on the server; 1 on success. */
static int make_schema(const char *name) {
    const char *bin = getenv("AGENTMEM_TEST_PG_BIN");
    char psql[1024], command[4096];
    if (strchr(g_server, '\'')) {
        fprintf(stderr, "AGENTMEM_TEST_PG_URL holds a quote; cannot pass it to psql\n");
        return 0;
    }
    if (bin && *bin)
        snprintf(psql, sizeof psql, "%s/psql", bin);
    else
        snprintf(psql, sizeof psql, "psql");
    snprintf(command, sizeof command,
             "'%s' -X -q -v ON_ERROR_STOP=1 -d '%s' -c 'SET client_min_messages = warning' "
             "-c 'DROP SCHEMA IF EXISTS %s CASCADE' "
             "-c 'CREATE SCHEMA %s' >/dev/null",
             psql, g_server, name, name);
    int status = system(command);
    g_checks++;
    if (status != 0) {
        report(__FILE__, __LINE__, "psql could not make schema %s (status %d)", name, status);
        return 0;
    }
    return 1;
}

/* A URL to a fresh schema of this test: the server URL with search_path=<schema>,public
   (public holds the vector extension). Written into url; 1 on success. */
static int fresh_store_url(const char *test, char *url, size_t size) {
    char schema[128];
    snprintf(schema, sizeof schema, "c_%s_%ld", test, (long)getpid());
    if (!make_schema(schema))
        return 0;
    snprintf(url, size, "%s%soptions=-csearch_path%%3D%s%%2Cpublic", g_server,
             strchr(g_server, '?') ? "&" : "?", schema);
    return 1;
}

static am_memory *open_at(const char *file, int line, const char *where, const char *options) {
    am_memory *m = NULL;
    am_error *err = NULL;
    if (!expect_status(file, line, "am_memory_open", am_memory_open(where, options, &m, &err),
                       AM_OK, &err, NULL))
        return NULL;
    return m;
}
#define OPEN_AT(where, options) open_at(__FILE__, __LINE__, (where), (options))

/* The JSON a call returns, parsed (NULL when the call fails). */
#define CALL_JSON(call, out)                                                                   \
    (expect_status(__FILE__, __LINE__, #call, (call), AM_OK, &err, NULL) ? TAKE(out) : NULL)

/* The ids of a search's hits joined by spaces, into buf. */
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

static double number_field(const cJSON *object, const char *key) {
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(object, key));
}

/* Every memory, expired ones too, oldest first. */
static cJSON *everything(am_memory *m) {
    am_error *err = NULL;
    char *out = NULL;
    cJSON *page = CALL_JSON(am_memory_list(m,
                                           "{\"include_expired\":true,\"order\":\"created_asc\","
                                           "\"limit\":1000}",
                                           &out, &err),
                            out);
    cJSON *items = page ? cJSON_DetachItemFromObject(page, "items") : NULL;
    cJSON_Delete(page);
    return items;
}

/* Two stores hold the same memories (records compared whole: ids, contents, scopes, kinds,
   metadata, times) and the same history for each id in `ids`. */
static void check_same(const char *file, int line, am_memory *a, am_memory *b,
                       const char *const *ids, int n_ids) {
    am_error *err = NULL;
    char *out = NULL;
    cJSON *la = everything(a), *lb = everything(b);
    g_checks++;
    if (!la || !lb || !cJSON_Compare(la, lb, 1)) {
        char *ta = la ? cJSON_PrintUnformatted(la) : NULL, *tb = lb ? cJSON_PrintUnformatted(lb) : NULL;
        report(file, line, "the memories differ:\n  %s\n  %s", ta ? ta : "(none)",
               tb ? tb : "(none)");
        free(ta);
        free(tb);
    }
    cJSON_Delete(la);
    cJSON_Delete(lb);
    for (int i = 0; i < n_ids; i++) {
        cJSON *ha = CALL_JSON(am_memory_history(a, ids[i], &out, &err), out);
        cJSON *hb = CALL_JSON(am_memory_history(b, ids[i], &out, &err), out);
        g_checks++;
        if (!ha || !hb || !cJSON_Compare(ha, hb, 1) || cJSON_GetArraySize(ha) == 0)
            report(file, line, "the history of %s differs", ids[i]);
        cJSON_Delete(ha);
        cJSON_Delete(hb);
    }
}
#define CHECK_SAME(a, b, ids, n) check_same(__FILE__, __LINE__, (a), (b), (ids), (n))

/* ------------------------------------------------------------------------------- tests */

/* A store opened by URL does what a file does: add, get, search, update, history, delete;
   a second handle on the same schema sees the first one's writes. */
static void test_open_add_search(void) {
    char url[2048], a[37], b[37], c[37], buf[512];
    am_error *err = NULL;
    char *out = NULL;
    uint64_t n = 0;
    if (!fresh_store_url("open", url, sizeof url))
        return;
    am_memory *m = OPEN_AT(url, HASHING);
    if (!m)
        return;
    ADD(m, "{\"content\":\"Alice is allergic to peanuts\",\"user_id\":\"alice\","
           "\"metadata\":{\"topic\":\"health\"}}",
        a);
    ADD(m, "{\"content\":\"Bob plays the cello on Sundays\",\"user_id\":\"bob\"}", b);
    ADD(m, "{\"content\":\"Carol runs marathons\",\"agent_id\":\"coach\",\"kind\":\"semantic\"}",
        c);

    cJSON *r = CALL_JSON(am_memory_get(m, a, &out, &err), out);
    CHECK_STR(str_field(r, "content"), "Alice is allergic to peanuts");
    CHECK_STR(str_field(r, "user_id"), "alice");
    cJSON_Delete(r);

    /* An identical memory in the same scope is the same memory. */
    if (EXPECT(am_memory_add(m, "{\"content\":\"Alice is allergic to peanuts\",\"user_id\":"
                                "\"alice\"}",
                             &out, &err),
               AM_OK)) {
        r = TAKE(out);
        CHECK_STR(str_field(r, "id"), a);
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "added")));
        cJSON_Delete(r);
    }

    cJSON *hits = CALL_JSON(
        am_memory_search(m, "{\"query\":\"cello\",\"mode\":\"keyword\"}", &out, &err), out);
    CHECK_STR(ids_of(hits, buf, sizeof buf), b);
    cJSON_Delete(hits);
    hits = CALL_JSON(am_memory_search(m,
                                      "{\"query\":\"Carol runs marathons\",\"mode\":\"vector\","
                                      "\"limit\":1}",
                                      &out, &err),
                     out);
    CHECK_STR(ids_of(hits, buf, sizeof buf), c);
    cJSON_Delete(hits);
    hits = CALL_JSON(am_memory_search(m, "{\"query\":\"peanuts\",\"user_id\":\"alice\"}", &out,
                                      &err),
                     out);
    CHECK_STR(ids_of(hits, buf, sizeof buf), a);
    cJSON_Delete(hits);
    hits = CALL_JSON(am_memory_search(m, "{\"query\":\"marathnos\",\"mode\":\"fuzzy\"}", &out,
                                      &err),
                     out);
    CHECK_STR(ids_of(hits, buf, sizeof buf), c);
    cJSON_Delete(hits);

    EXPECT(am_memory_count(m, "{\"filters\":{\"topic\":\"health\"}}", &n, &err), AM_OK);
    CHECK_INT(n, 1);
    if (EXPECT(am_memory_update(m, b, "{\"content\":\"Bob plays the viola on Sundays\"}", &out,
                                &err),
               AM_OK)) {
        r = TAKE(out);
        CHECK_STR(str_field(r, "content"), "Bob plays the viola on Sundays");
        cJSON_Delete(r);
    }
    EXPECT(am_memory_delete(m, c, &err), AM_OK);
    EXPECT(am_memory_get(m, c, &out, &err), AM_ERR_NOT_FOUND);
    cJSON *h = CALL_JSON(am_memory_history(m, b, &out, &err), out);
    CHECK_INT(cJSON_GetArraySize(h), 2);
    CHECK_STR(str_field(cJSON_GetArrayItem(h, 1), "event"), "UPDATE");
    CHECK_STR(str_field(cJSON_GetArrayItem(h, 1), "old_content"), "Bob plays the cello on Sundays");
    cJSON_Delete(h);
    h = CALL_JSON(am_memory_history(m, c, &out, &err), out);
    CHECK_INT(cJSON_GetArraySize(h), 2);
    CHECK_STR(str_field(cJSON_GetArrayItem(h, 1), "event"), "DELETE");
    cJSON_Delete(h);

    /* Another handle (another pool of connections) on the same store. */
    am_memory *m2 = OPEN_AT(url, HASHING);
    if (m2) {
        EXPECT(am_memory_count(m2, NULL, &n, &err), AM_OK);
        CHECK_INT(n, 2);
        hits = CALL_JSON(
            am_memory_search(m2, "{\"query\":\"viola\",\"mode\":\"keyword\"}", &out, &err), out);
        CHECK_STR(ids_of(hits, buf, sizeof buf), b);
        cJSON_Delete(hits);
        am_memory_free(m2);
    }
    /* NULL arguments are refused as on any store. */
    EXPECT_MSG(am_memory_copy_into(m, NULL, &out, &err), AM_ERR_NULL_ARG, "target");
    EXPECT_MSG(am_memory_copy_into(NULL, m, &out, &err), AM_ERR_NULL_ARG, "source");
    CHECK(out == NULL);
    am_memory_free(m);
}

/* A SQLite file copied into PostgreSQL and from there into a new SQLite store: memories and
   histories (updates, a deleted memory) identical at every step, searches alike. */
static void test_copy_both_ways(void) {
    char url[2048], dir[] = "/tmp/agentmem-c-pg-XXXXXX", path[256], buf[512], buf2[512];
    char ids[4][37];
    const char *all_ids[4];
    am_error *err = NULL;
    char *out = NULL;
    if (!fresh_store_url("copy", url, sizeof url))
        return;
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/source.db", dir);
    am_memory *file = OPEN_AT(path, HASHING);
    am_memory *pg = OPEN_AT(url, HASHING);
    am_memory *back = OPEN_AT(":memory:", HASHING);
    if (!file || !pg || !back)
        goto done;
    ADD(file, "{\"content\":\"Alice is vegetarian\",\"user_id\":\"alice\",\"agent_id\":\"chef\","
              "\"metadata\":{\"topic\":\"food\",\"stars\":5}}",
        ids[0]);
    ADD(file, "{\"content\":\"Bob lives in Lyon\",\"user_id\":\"bob\",\"run_id\":\"r1\","
              "\"org_id\":\"acme\",\"kind\":\"semantic\"}",
        ids[1]);
    ADD(file, "{\"content\":\"a passing thought\",\"expires_at\":\"2001-01-01\"}", ids[2]);
    ADD(file, "{\"content\":\"Dan hates olives\",\"user_id\":\"dan\"}", ids[3]);
    for (int i = 0; i < 4; i++)
        all_ids[i] = ids[i];
    EXPECT(am_memory_update(file, ids[1], "{\"content\":\"Bob lives in Paris\","
                                          "\"metadata\":{\"moved\":true}}",
                            &out, &err),
           AM_OK);
    am_string_free(out);
    out = NULL;
    EXPECT(am_memory_delete(file, ids[3], &err), AM_OK);

    cJSON *copied = CALL_JSON(am_memory_copy_into(file, pg, &out, &err), out);
    CHECK(number_field(copied, "memories") == 3);
    /* Four ADDs, one UPDATE, one DELETE. */
    CHECK(number_field(copied, "history") == 6);
    cJSON_Delete(copied);
    CHECK_SAME(file, pg, all_ids, 4);

    copied = CALL_JSON(am_memory_copy_into(pg, back, &out, &err), out);
    CHECK(number_field(copied, "memories") == 3);
    CHECK(number_field(copied, "history") == 6);
    cJSON_Delete(copied);
    CHECK_SAME(file, back, all_ids, 4);

    /* The copies answer searches as the original does. */
    static const char *const queries[] = {
        "{\"query\":\"Paris\",\"mode\":\"keyword\"}",
        "{\"query\":\"Alice is vegetarian\",\"mode\":\"vector\",\"limit\":2}",
        "{\"query\":\"vegetarain\",\"mode\":\"fuzzy\"}",
        "{\"query\":\"who lives in Paris\",\"user_id\":\"bob\"}",
    };
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        cJSON *want = CALL_JSON(am_memory_search(file, queries[q], &out, &err), out);
        ids_of(want, buf, sizeof buf);
        CHECK(buf[0] != '\0');
        cJSON *got = CALL_JSON(am_memory_search(pg, queries[q], &out, &err), out);
        CHECK_STR(ids_of(got, buf2, sizeof buf2), buf);
        cJSON_Delete(got);
        got = CALL_JSON(am_memory_search(back, queries[q], &out, &err), out);
        CHECK_STR(ids_of(got, buf2, sizeof buf2), buf);
        cJSON_Delete(got);
        cJSON_Delete(want);
    }

    /* The PostgreSQL store is no longer empty: a second copy is refused, and the message,
       which names the store, does not show its password. */
    EXPECT(am_memory_copy_into(file, pg, &out, &err), AM_ERR_ALREADY_EXISTS);
    am_status s = am_memory_copy_into(back, pg, &out, &err);
    CHECK_INT(s, AM_ERR_ALREADY_EXISTS);
    CHECK(strstr(am_error_message(err), "not empty") != NULL);
    CHECK_NO_PASSWORD("the copy error", am_error_message(err));
    am_error_free(err);
    err = NULL;
    CHECK(out == NULL);
done:
    am_memory_free(file);
    am_memory_free(pg);
    am_memory_free(back);
    unlink(path);
    {
        char side[300];
        snprintf(side, sizeof side, "%s.usearch", path);
        unlink(side);
    }
    rmdir(dir);
}

/* A bad password, an unreachable server and bad pool options: clear errors, no password. */
static void test_errors(void) {
    char url[2048];
    const char *rest;
    am_error *err = NULL;
    am_memory *m = NULL;
    /* The server URL with WRONG_PASSWORD in place of its password. */
    const char *at = strchr(strstr(g_server, "://") + 3, '@');
    const char *colon = strchr(strstr(g_server, "://") + 3, ':');
    if (!at || !colon || colon > at) {
        report(__FILE__, __LINE__, "AGENTMEM_TEST_PG_URL has no user:password@");
        return;
    }
    rest = at;
    snprintf(url, sizeof url, "%.*s:%s%s", (int)(colon - g_server), g_server, WRONG_PASSWORD, rest);
    am_status s = am_memory_open(url, HASHING, &m, &err);
    CHECK_INT(s, AM_ERR_STORAGE);
    CHECK(m == NULL);
    CHECK(err != NULL && strstr(am_error_message(err), "password") != NULL);
    CHECK_NO_PASSWORD("the error of a wrong password", am_error_message(err));
    am_error_free(err);
    err = NULL;

    /* Nothing listens on port 1. */
    s = am_memory_open("postgresql://agentmem:wrong-Pw-7f3a9c@127.0.0.1:1/agentmem_test",
                       "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":64},"
                       "\"postgres\":{\"connect_timeout_ms\":2000}}",
                       &m, &err);
    CHECK_INT(s, AM_ERR_STORAGE);
    CHECK(m == NULL);
    CHECK_NO_PASSWORD("the error of an unreachable server", am_error_message(err));
    am_error_free(err);
    err = NULL;

    EXPECT_MSG(am_memory_open(g_server, "{\"postgres\":{\"pool_size\":0}}", &m, &err),
               AM_ERR_INVALID_INPUT, "pool_size");
    EXPECT_MSG(am_memory_open(g_server, "{\"postgres\":{\"pool_sise\":2}}", &m, &err),
               AM_ERR_INVALID_INPUT, "pool_sise");
    CHECK(m == NULL);
}

int main(void) {
    g_server = getenv("AGENTMEM_TEST_PG_URL");
    if (!g_server || !*g_server) {
        const char *require = getenv("AGENTMEM_REQUIRE_POSTGRES");
        if (require && strcmp(require, "1") == 0) {
            fprintf(stderr, "test_postgres: AGENTMEM_REQUIRE_POSTGRES=1 but AGENTMEM_TEST_PG_URL "
                            "is not set (run through tests/postgres.sh)\n");
            return 1;
        }
        printf("test_postgres: SKIPPED (no PostgreSQL server: AGENTMEM_TEST_PG_URL is not set)\n");
        return 0;
    }
    find_secret(g_server);
    test_open_add_search();
    test_copy_both_ways();
    test_errors();
    if (g_failures) {
        fprintf(stderr, "%d of %d checks FAILED\n", g_failures, g_checks);
        return 1;
    }
    printf("test_postgres: all %d checks passed\n", g_checks);
    return 0;
}
