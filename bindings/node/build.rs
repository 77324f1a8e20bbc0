//! Link settings for a Node addon (on macOS the N-API symbols are resolved at load time).

fn main() {
    napi_build::setup();
}
