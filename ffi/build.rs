//! Generates the C header from `src/lib.rs` with cbindgen into `$OUT_DIR/agentmem.h`, adding
//! the version macros from Cargo.toml. The committed copy is `include/agentmem.h`; a unit test
//! fails when the two differ, and `AGENTMEM_UPDATE_HEADER=1` rewrites the committed copy.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=AGENTMEM_UPDATE_HEADER");

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("ffi/cbindgen.toml is readable and valid");
    let version = |part: &str| env::var(format!("CARGO_PKG_VERSION_{part}")).expect("set by cargo");
    config.after_includes = Some(format!(
        "\n/* The version of this header; am_version() gives the library's. */\n\
         #define AGENTMEM_VERSION_MAJOR {}\n\
         #define AGENTMEM_VERSION_MINOR {}\n\
         #define AGENTMEM_VERSION_PATCH {}\n\
         #define AGENTMEM_VERSION_STRING \"{}\"",
        version("MAJOR"),
        version("MINOR"),
        version("PATCH"),
        env::var("CARGO_PKG_VERSION").expect("set by cargo"),
    ));

    let header = out_dir.join("agentmem.h");
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header")
        .write_to_file(&header);

    if env::var_os("AGENTMEM_UPDATE_HEADER").is_some_and(|v| v == "1") {
        let committed = crate_dir.join("../include/agentmem.h");
        std::fs::copy(&header, &committed).expect("include/agentmem.h is writable");
    }
}
