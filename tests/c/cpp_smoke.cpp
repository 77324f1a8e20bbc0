// The header used from C++ (extern "C", no C-only constructs): a store held by RAII
// wrappers, one add, one count, one search, one expected failure.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "agentmem.h"

namespace {

struct MemoryFree {
    void operator()(am_memory *m) const { am_memory_free(m); }
};
struct ErrorFree {
    void operator()(am_error *e) const { am_error_free(e); }
};
struct StringFree {
    void operator()(char *s) const { am_string_free(s); }
};
using Memory = std::unique_ptr<am_memory, MemoryFree>;
using Error = std::unique_ptr<am_error, ErrorFree>;
using String = std::unique_ptr<char, StringFree>;

int failures = 0;

void check(bool ok, const char *what) {
    if (!ok) {
        std::fprintf(stderr, "cpp_smoke: FAILED: %s\n", what);
        ++failures;
    }
}

}  // namespace

int main() {
    am_memory *raw = nullptr;
    am_error *raw_err = nullptr;
    am_status s = am_memory_open(
        ":memory:", "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":64}}", &raw, &raw_err);
    Memory memory(raw);
    Error open_err(raw_err);
    check(s == AM_OK && memory != nullptr, "open");
    if (!memory) return 1;

    char *out = nullptr;
    s = am_memory_add(memory.get(), "{\"content\":\"C++ can use agent_mem\",\"user_id\":\"cpp\"}",
                      &out, nullptr);
    String added(out);
    check(s == AM_OK && std::strstr(added.get(), "\"added\":true") != nullptr, "add");

    uint64_t n = 0;
    check(am_memory_count(memory.get(), nullptr, &n, nullptr) == AM_OK && n == 1, "count");

    s = am_memory_search(memory.get(), "{\"query\":\"agent_mem\",\"mode\":\"keyword\"}", &out,
                         nullptr);
    String hits(out);
    check(s == AM_OK && std::string(hits.get()).find("C++ can use agent_mem") != std::string::npos,
          "search");

    s = am_memory_get(memory.get(), "00000000-0000-0000-0000-000000000000", &out, &raw_err);
    Error not_found(raw_err);
    check(s == AM_ERR_NOT_FOUND && out == nullptr, "get of a missing id");
    check(am_error_code(not_found.get()) == AM_ERR_NOT_FOUND, "error code");
    check(std::string(am_status_str(s)) == "AM_ERR_NOT_FOUND", "status name");
    check(std::string(am_version()) == AGENTMEM_VERSION_STRING, "version");

    if (failures) return 1;
    std::printf("cpp_smoke: ok (agent_mem %s)\n", am_version());
    return 0;
}
