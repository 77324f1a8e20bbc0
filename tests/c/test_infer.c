/*
 * am_memory_add_messages end to end through the C ABI, against a real HTTP server on this
 * machine: tests/fake_llm.py, which answers with the scripted replies of
 * tests/c/infer_script.json in order (OpenAI Chat Completions, Anthropic Messages, OpenAI
 * embeddings, error statuses) and logs every request it receives, one JSON line each.
 *
 *   test_infer http://127.0.0.1:PORT REQUEST_LOG SCRIPT
 *
 * tests/c/run.sh starts the server, runs this under valgrind and stops the server. The tests
 * run in the order of the script: each one consumes its replies, and after each call the
 * number of requests in the log says how many model calls it made.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "agentmem.h"
#include "check.h"
#include "fake_llm_log.h"

#define MODEL_ACTOR "llm:openai:gpt-4.1-nano"

static const char *g_url; /* the server's root, without a path */

/* ------------------------------------------------------------------------------- helpers */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* A field of the n-th logged request ("path", "method"), or one of its headers (`header`
   set, lowercase name), into buf; "" when missing. */
static const char *request_field(int n, const char *header, const char *key, char *buf,
                                 size_t size) {
    cJSON *all = logged_requests();
    const cJSON *r = cJSON_GetArrayItem(all, n);
    if (header)
        r = cJSON_GetObjectItemCaseSensitive(r, "headers");
    const char *v = str_field(r, header ? header : key);
    snprintf(buf, size, "%s", v ? v : "");
    cJSON_Delete(all);
    return buf;
}
#define request_path(n, buf, size) request_field((n), NULL, "path", (buf), (size))
#define request_header(n, name, buf, size) request_field((n), (name), NULL, (buf), (size))

/* Opens a store in memory with the hashing embedder and the fake OpenAI endpoint. */
static am_memory *open_llm(const char *file, int line, const char *extra_llm) {
    char options[1024];
    am_memory *m = NULL;
    am_error *err = NULL;
    snprintf(options, sizeof options,
             "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":64},"
             "\"llm\":{\"provider\":\"openai\",\"model\":\"gpt-4.1-nano\",\"api_key\":\"sk-test\","
             "\"base_url\":\"%s/v1\",\"timeout_ms\":5000,\"max_retries\":0%s}}",
             g_url, extra_llm ? extra_llm : "");
    if (!expect_status(file, line, "am_memory_open", am_memory_open(":memory:", options, &m, &err),
                       AM_OK, &err, NULL) ||
        !m) {
        fprintf(stderr, "cannot continue without a store\n");
        exit(1);
    }
    return m;
}
#define OPEN_LLM(extra) open_llm(__FILE__, __LINE__, (extra))

/* Checks event i of a list and copies its id (37 bytes) into id when given. */
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

/* add_messages that must succeed; its events (the caller deletes them). */
static cJSON *add_messages(const char *file, int line, am_memory *m, const char *request) {
    char *out = NULL;
    am_error *err = NULL;
    if (!expect_status(file, line, request, am_memory_add_messages(m, request, &out, &err), AM_OK,
                       &err, NULL))
        return cJSON_CreateArray();
    cJSON *events = take(file, line, &out);
    g_checks++;
    if (!cJSON_IsArray(events)) {
        report(file, line, "the events are not a list");
        cJSON_Delete(events);
        return cJSON_CreateArray();
    }
    return events;
}
#define ADD_MESSAGES(m, request) add_messages(__FILE__, __LINE__, (m), (request))

static uint64_t count_all(am_memory *m) {
    uint64_t n = 0;
    am_error *err = NULL;
    EXPECT(am_memory_count(m, NULL, &n, &err), AM_OK);
    return n;
}

/* Every memory's content and kind, sorted by id, as one JSON text into buf: what "the
   store is unchanged" compares. */
static const char *snapshot(am_memory *m, char *buf, size_t size) {
    char *out = NULL;
    am_error *err = NULL;
    buf[0] = '\0';
    EXPECT(am_memory_list(m, "{\"order\":\"created_asc\",\"limit\":1000}", &out, &err), AM_OK);
    cJSON *page = TAKE(out);
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(page, "items")) {
        size_t used = strlen(buf);
        snprintf(buf + used, size - used, "%s|%s|%s|%s\n", str_field(item, "id"),
                 str_field(item, "content"), str_field(item, "updated_at"),
                 str_field(item, "kind"));
    }
    cJSON_Delete(page);
    return buf;
}

/* ---------------------------------------------------------------------- the main flow */

/* Extracted facts are added; a later conversation updates the stored one; a repeated fact
   is NONE; the history names the model. Consumes replies 1 to 5. */
static void test_add_update_none(am_memory *m) {
    int before = requests_seen();
    char pizza[37], again[37], updated[37], path[128];

    /* Two facts about bob; nothing is stored yet, so there is no decision call. */
    cJSON *events = ADD_MESSAGES(
        m, "{\"messages\":[{\"role\":\"user\",\"content\":\"I'm a nurse, and my dog Rex waits for "
           "me after my shifts.\"},{\"role\":\"assistant\",\"content\":\"Rex sounds lovely!\"}],"
           "\"user_id\":\"bob\"}");
    CHECK_INT(cJSON_GetArraySize(events), 2);
    EVENT_AT(events, 0, "ADD", "Works as a nurse", NULL);
    EVENT_AT(events, 1, "ADD", "Has a dog called Rex", NULL);
    cJSON_Delete(events);
    CHECK_INT(requests_seen(), before + 1);
    CHECK_STR(request_path(before, path, sizeof path), "/v1/chat/completions");
    CHECK_STR(request_header(before, "authorization", path, sizeof path), "Bearer sk-test");

    /* What the model was sent: the configured model, JSON mode, the conversation. */
    cJSON *body = request_body(before);
    CHECK_STR(str_field(body, "model"), "gpt-4.1-nano");
    CHECK_STR(str_field(cJSON_GetObjectItemCaseSensitive(body, "response_format"), "type"),
              "json_object");
    const char *said =
        str_field(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(body, "messages"), 1),
                  "content");
    CHECK(said && strstr(said, "user: I'm a nurse"));
    CHECK(said && strstr(said, "assistant: Rex sounds lovely!"));
    cJSON_Delete(body);

    /* Alice's scope is empty: bob's memories are not hers to compare with. */
    events = ADD_MESSAGES(m, "{\"messages\":\"Hi! My favourite dinner is pepperoni pizza.\","
                             "\"user_id\":\"alice\"}");
    CHECK_INT(cJSON_GetArraySize(events), 1);
    EVENT_AT(events, 0, "ADD", "Loves pepperoni pizza", pizza);
    cJSON_Delete(events);
    CHECK_INT(requests_seen(), before + 2);

    /* A change of diet: one extraction, then one decision call that sees alice's single
       memory as "0" and updates it: the new wording supersedes the old memory, which is
       kept, closed and linked. */
    events = ADD_MESSAGES(m, "{\"messages\":[{\"role\":\"user\",\"content\":\"I'm vegetarian now,"
                             " so no more pepperoni. Still love pizza though!\"}],"
                             "\"user_id\":\"alice\"}");
    CHECK_INT(requests_seen(), before + 4);
    CHECK_INT(cJSON_GetArraySize(events), 1);
    EVENT_AT(events, 0, "UPDATE", "Loves pizza, vegetarian toppings only", updated);
    CHECK_STR(str_field(cJSON_GetArrayItem(events, 0), "supersedes"), pizza);
    CHECK(str_field(cJSON_GetArrayItem(events, 0), "change_id") != NULL);
    CHECK_STR(str_field(cJSON_GetArrayItem(events, 0), "previous_memory"), "Loves pepperoni pizza");
    cJSON_Delete(events);

    body = request_body(before + 3);
    said = str_field(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(body, "messages"), 1),
                     "content");
    cJSON *question = said ? cJSON_Parse(said) : NULL;
    const cJSON *shown =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(question, "stored_memories"), 0);
    CHECK_STR(str_field(shown, "id"), "0");
    CHECK_STR(str_field(shown, "text"), "Loves pepperoni pizza");
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(question, "stored_memories")), 1);
    CHECK(said && !strstr(said, pizza)); /* the model never sees the store's ids */
    cJSON_Delete(question);
    cJSON_Delete(body);

    /* The history: added, then closed, by the model. */
    char *out = NULL;
    am_error *err = NULL;
    EXPECT(am_memory_history(m, pizza, &out, &err), AM_OK);
    cJSON *history = TAKE(out);
    CHECK_INT(cJSON_GetArraySize(history), 2);
    const cJSON *added = cJSON_GetArrayItem(history, 0), *changed = cJSON_GetArrayItem(history, 1);
    CHECK_STR(str_field(added, "event"), "ADD");
    CHECK_STR(str_field(added, "actor"), MODEL_ACTOR);
    CHECK_STR(str_field(changed, "event"), "UPDATE");
    CHECK_STR(str_field(changed, "old_content"), "Loves pepperoni pizza");
    CHECK_STR(str_field(changed, "new_content"), "Loves pepperoni pizza");
    CHECK_STR(str_field(changed, "actor"), MODEL_ACTOR);
    cJSON_Delete(history);
    EXPECT(am_memory_get(m, pizza, &out, &err), AM_OK);
    cJSON *old = TAKE(out);
    CHECK_STR(str_field(old, "superseded_by"), updated);
    cJSON_Delete(old);

    /* The new record: kind semantic (extracted facts), alice's. */
    EXPECT(am_memory_get(m, updated, &out, &err), AM_OK);
    cJSON *record = TAKE(out);
    CHECK_STR(str_field(record, "content"), "Loves pizza, vegetarian toppings only");
    CHECK_STR(str_field(record, "kind"), "semantic");
    CHECK_STR(str_field(record, "user_id"), "alice");
    cJSON_Delete(record);

    /* The same fact again: NONE, and no decision call is needed. */
    events = ADD_MESSAGES(m, "{\"messages\":\"As I said: pizza, but vegetarian.\","
                             "\"user_id\":\"alice\"}");
    CHECK_INT(requests_seen(), before + 5);
    CHECK_INT(cJSON_GetArraySize(events), 1);
    if (EVENT_AT(events, 0, "NONE", "Loves pizza, vegetarian toppings only", again))
        CHECK_STR(again, updated);
    cJSON_Delete(events);
    CHECK_INT(count_all(m), 3);
}

/* ------------------------------------------------------------------------------ failures */

/* An answer that is not JSON, at extraction and at the decision, and a provider error:
   AM_ERR_LLM each time and nothing written. Consumes replies 6 to 9. */
static void test_model_failures(am_memory *m) {
    static char before_state[8192], after_state[8192];
    int before = requests_seen();
    char *out = NULL;
    am_error *err = NULL;
    snapshot(m, before_state, sizeof before_state);

    EXPECT_MSG(am_memory_add_messages(m, "{\"messages\":\"I'm a cellist\",\"user_id\":\"alice\"}",
                                      &out, &err),
               AM_ERR_LLM, "fact extraction");
    CHECK(out == NULL);
    CHECK_INT(requests_seen(), before + 1);
    CHECK_STR(snapshot(m, after_state, sizeof after_state), before_state);

    /* A good extraction, then an answer to the decision that is prose. */
    err = NULL;
    CHECK_INT(am_memory_add_messages(m, "{\"messages\":\"I play the cello\",\"user_id\":\"alice\"}",
                                     &out, &err),
              AM_ERR_LLM);
    CHECK_INT(am_error_code(err), AM_ERR_LLM);
    CHECK(strstr(am_error_message(err), "memory decisions") != NULL);
    CHECK(strstr(am_error_message(err), "not valid JSON") != NULL ||
          strstr(am_error_message(err), "JSON") != NULL);
    am_error_free(err);
    err = NULL;
    CHECK(out == NULL);
    CHECK_INT(requests_seen(), before + 3);
    CHECK_STR(snapshot(m, after_state, sizeof after_state), before_state);

    /* The provider refuses: its message is passed on, the key never. */
    CHECK_INT(am_memory_add_messages(m, "{\"messages\":\"I play the cello\",\"user_id\":\"alice\"}",
                                     &out, &err),
              AM_ERR_LLM);
    CHECK(strstr(am_error_message(err), "Incorrect API key provided") != NULL);
    CHECK(strstr(am_error_message(err), "sk-test") == NULL);
    CHECK_STR(am_status_str(am_error_code(err)), "AM_ERR_LLM");
    am_error_free(err);
    err = NULL;
    CHECK_INT(requests_seen(), before + 4);
    CHECK_STR(snapshot(m, after_state, sizeof after_state), before_state);
}

/* Refused before any model call: no scope, bad JSON, unknown keys, an empty prompt. */
static void test_refused_requests(am_memory *m) {
    static char before_state[8192], after_state[8192];
    int before = requests_seen();
    char *out = NULL;
    am_error *err = NULL;
    snapshot(m, before_state, sizeof before_state);

    EXPECT_MSG(am_memory_add_messages(m, "{\"messages\":\"I like tea\"}", &out, &err),
               AM_ERR_INVALID_INPUT, "scope");
    EXPECT_MSG(am_memory_add_messages(m, "{\"messages\":\"I like tea\",", &out, &err),
               AM_ERR_INVALID_INPUT, "JSON");
    EXPECT_MSG(am_memory_add_messages(m, "{\"messages\":\"I like tea\",\"user\":\"alice\"}", &out,
                                      &err),
               AM_ERR_INVALID_INPUT, "user");
    EXPECT(am_memory_add_messages(m, "{\"messages\":\"I like tea\",\"user_id\":\"alice\","
                                     "\"prompt\":\"  \"}",
                                  &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT_MSG(am_memory_add_messages(m, "{\"messages\":\"x\",\"user_id\":\"alice\",\"infer\":\"no\"}",
                                      &out, &err),
               AM_ERR_INVALID_INPUT, "expected a boolean");
    EXPECT(am_memory_add_messages(NULL, "{\"messages\":\"x\",\"user_id\":\"alice\"}", &out, &err),
           AM_ERR_NULL_ARG);
    EXPECT(am_memory_add_messages(m, NULL, &out, &err), AM_ERR_NULL_ARG);
    EXPECT(am_memory_add_messages(m, "{\"messages\":\"x\",\"user_id\":\"alice\"}", NULL, &err),
           AM_ERR_NULL_ARG);
    CHECK(out == NULL);
    CHECK_INT(requests_seen(), before);
    CHECK_STR(snapshot(m, after_state, sizeof after_state), before_state);
}

/* infer: false stores each non-system message as it is, with no model call. */
static void test_without_inference(am_memory *m) {
    int before = requests_seen();
    char id[37];
    cJSON *events = ADD_MESSAGES(
        m, "{\"messages\":[{\"role\":\"system\",\"content\":\"You are a helpful assistant\"},"
           "{\"role\":\"user\",\"content\":\"I'm vegetarian\"},"
           "{\"role\":\"assistant\",\"content\":\"Noted, no meat.\",\"name\":\"chef-bot\"}],"
           "\"user_id\":\"carol\",\"infer\":false}");
    CHECK_INT(cJSON_GetArraySize(events), 2);
    EVENT_AT(events, 0, "ADD", "I'm vegetarian", NULL);
    EVENT_AT(events, 1, "ADD", "Noted, no meat.", id);
    cJSON_Delete(events);
    CHECK_INT(requests_seen(), before);

    char *out = NULL;
    am_error *err = NULL;
    EXPECT(am_memory_get(m, id, &out, &err), AM_OK);
    cJSON *record = TAKE(out);
    CHECK_STR(str_field(record, "kind"), "episodic");
    CHECK_STR(str_field(record, "user_id"), "carol");
    CHECK_STR(str_field(cJSON_GetObjectItemCaseSensitive(record, "metadata"), "role"),
              "assistant");
    cJSON_Delete(record);
    EXPECT(am_memory_history(m, id, &out, &err), AM_OK);
    cJSON *history = TAKE(out);
    CHECK_STR(str_field(cJSON_GetArrayItem(history, 0), "actor"), "user");
    cJSON_Delete(history);
}

/* ------------------------------------------------------------------- other configurations */

/* A rate limit with Retry-After is waited out when retries are allowed. Replies 10, 11. */
static void test_rate_limit_retried(void) {
    am_memory *m = OPEN_LLM(",\"max_retries\":1");
    int before = requests_seen();
    double started = now_ms();
    cJSON *events =
        ADD_MESSAGES(m, "{\"messages\":\"\xe7\xa7\x81\xe3\x81\xaf\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"
                        "\xe3\x82\x92\xe8\xa9\xb1\xe3\x81\x97\xe3\x81\xbe\xe3\x81\x99\","
                        "\"user_id\":\"kenji\"}");
    CHECK(now_ms() - started >= 1000.0);
    CHECK_INT(cJSON_GetArraySize(events), 1);
    EVENT_AT(events, 0, "ADD", "Speaks Japanese", NULL);
    cJSON_Delete(events);
    CHECK_INT(requests_seen(), before + 2);
    am_memory_free(m);
}

/* The Anthropic Messages API drives the same pipeline. Reply 12. */
static void test_anthropic(void) {
    char options[1024], path[128];
    am_memory *m = NULL;
    am_error *err = NULL;
    snprintf(options, sizeof options,
             "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":64},"
             "\"llm\":{\"provider\":\"anthropic\",\"model\":\"claude-haiku-4-5\","
             "\"api_key\":\"sk-ant-test\",\"base_url\":\"%s\",\"max_retries\":0}}",
             g_url);
    EXPECT(am_memory_open(":memory:", options, &m, &err), AM_OK);
    if (!m)
        return;
    int before = requests_seen();
    char id[37];
    cJSON *events = ADD_MESSAGES(m, "{\"messages\":\"I moved to Berlin\",\"user_id\":\"alice\"}");
    CHECK_INT(cJSON_GetArraySize(events), 1);
    EVENT_AT(events, 0, "ADD", "Lives in Berlin", id);
    cJSON_Delete(events);
    CHECK_INT(requests_seen(), before + 1);
    CHECK_STR(request_path(before, path, sizeof path), "/v1/messages");
    CHECK_STR(request_header(before, "x-api-key", path, sizeof path), "sk-ant-test");
    char *out = NULL;
    EXPECT(am_memory_history(m, id, &out, &err), AM_OK);
    cJSON *history = TAKE(out);
    CHECK_STR(str_field(cJSON_GetArrayItem(history, 0), "actor"), "llm:anthropic:claude-haiku-4-5");
    cJSON_Delete(history);
    am_memory_free(m);
}

/* A remote OpenAI-compatible embedder serves adds. Reply 13. */
static void test_remote_embedder(void) {
    char options[1024], path[128];
    am_memory *m = NULL;
    am_error *err = NULL;
    snprintf(options, sizeof options,
             "{\"embedder\":{\"provider\":\"openai\",\"model\":\"text-embedding-3-small\","
             "\"api_key\":\"sk-emb\",\"base_url\":\"%s/v1\",\"dimensions\":4,\"max_retries\":0}}",
             g_url);
    EXPECT(am_memory_open(":memory:", options, &m, &err), AM_OK);
    if (!m)
        return;
    int before = requests_seen();
    char *out = NULL;
    EXPECT(am_memory_add(m, "{\"content\":\"Likes tea\",\"user_id\":\"u\"}", &out, &err), AM_OK);
    cJSON *added = TAKE(out);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(added, "added")));
    cJSON_Delete(added);
    CHECK_INT(requests_seen(), before + 1);
    CHECK_STR(request_path(before, path, sizeof path), "/v1/embeddings");
    cJSON *body = request_body(before);
    CHECK_STR(str_field(body, "model"), "text-embedding-3-small");
    cJSON_Delete(body);
    /* Keyword search needs no embedding: no further request. */
    EXPECT(am_memory_search(m, "{\"query\":\"tea\",\"mode\":\"keyword\",\"user_id\":\"u\"}", &out,
                            &err),
           AM_OK);
    cJSON *hits = TAKE(out);
    CHECK_STR(str_field(cJSON_GetArrayItem(hits, 0), "content"), "Likes tea");
    cJSON_Delete(hits);
    CHECK_INT(requests_seen(), before + 1);
    am_memory_free(m);
}

/* A model slower than timeout_ms fails fast with AM_ERR_LLM, the store unchanged. Reply 14
   (delayed by 3 s; the last, so that the server's sleeping does not hold up anything). */
static void test_timeout(void) {
    am_memory *m = OPEN_LLM(",\"timeout_ms\":300");
    am_error *err = NULL;
    char *out = NULL;
    double started = now_ms();
    EXPECT_MSG(am_memory_add_messages(m, "{\"messages\":\"I moved to Berlin\",\"user_id\":\"alice\"}",
                                      &out, &err),
               AM_ERR_LLM, "timed out");
    double took = now_ms() - started;
    g_checks++;
    if (took >= 2500.0)
        report(__FILE__, __LINE__, "the timeout took %.0f ms", took);
    CHECK(out == NULL);
    CHECK_INT(count_all(m), 0);
    am_memory_free(m);
}

/* --------------------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s http://127.0.0.1:PORT REQUEST_LOG SCRIPT\n", argv[0]);
        return 2;
    }
    g_url = argv[1];
    g_log = argv[2];
    int scripted = script_length(argv[3]);

    am_memory *m = OPEN_LLM(NULL);
    test_add_update_none(m);
    test_model_failures(m);
    test_refused_requests(m);
    test_without_inference(m);
    am_memory_free(m);
    test_rate_limit_retried();
    test_anthropic();
    test_remote_embedder();
    test_timeout();

    /* Every scripted reply was asked for, and nothing more. */
    CHECK_INT(requests_seen(), scripted);
    if (g_failures) {
        fprintf(stderr, "%d of %d checks FAILED\n", g_failures, g_checks);
        return 1;
    }
    printf("test_infer: all %d checks passed\n", g_checks);
    return 0;
}
