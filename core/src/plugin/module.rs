//! Checks of a module before extism instantiates it: its initial memory against
//! `limits.memory_pages`, and its start code against `limits.timeout_ms`.
//!
//! extism runs a module's start code (the `start` function, and `_initialize` of a WASI
//! reactor) while it links a new instance, outside the call timer and before its memory
//! limit is installed: a start that never returns would hang registration, and a memory
//! above the limit would only fail on the first call. So a module with start code is first
//! started here in a store of its own under the plugin's limits, interrupted when its time is
//! up; its imports answer zeros (the real host functions need a call).

use std::sync::mpsc;

use wasmparser::{ExternalKind, Parser, Payload};

use super::PluginManifest;
use crate::error::{Error, ErrorCode, Result};

/// Bytes in a wasm page (the default page size).
const PAGE: u64 = 64 * 1024;

/// What the checks need to know of a module.
struct Shape {
    /// Initial bytes of the memories it defines.
    initial_memory: u64,
    /// Whether instantiating it runs code: a `start` function, or an `_initialize` export
    /// without `_start` (a reactor, initialised by the linker).
    runs_at_start: bool,
}

fn refuse(id: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::Plugin,
        format!("plugin {id:?} cannot be loaded: {why}"),
    )
}

fn shape(binary: &[u8]) -> std::result::Result<Shape, wasmparser::BinaryReaderError> {
    let mut initial_memory = 0u64;
    let (mut start, mut initialize, mut command) = (false, false, false);
    for payload in Parser::new(0).parse_all(binary) {
        match payload? {
            Payload::MemorySection(memories) => {
                for memory in memories {
                    let memory = memory?;
                    let page = memory
                        .page_size_log2
                        .map_or(PAGE, |log2| 1u64 << log2.min(16));
                    initial_memory =
                        initial_memory.saturating_add(memory.initial.saturating_mul(page));
                }
            }
            Payload::StartSection { .. } => start = true,
            Payload::ExportSection(exports) => {
                for export in exports {
                    let export = export?;
                    if matches!(export.kind, ExternalKind::Func | ExternalKind::FuncExact) {
                        initialize |= export.name == "_initialize";
                        command |= export.name == "_start";
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Shape {
        initial_memory,
        runs_at_start: start || (initialize && !command),
    })
}

/// Refuses a module whose memories start above `limits.memory_pages`, or whose start code
/// does not finish within `limits.timeout_ms`. `bytes` is a binary or text module extism
/// has compiled already (so it is valid).
pub(crate) fn check(manifest: &PluginManifest, bytes: &[u8]) -> Result<()> {
    let id = &manifest.id;
    let binary = wat::parse_bytes(bytes).map_err(|e| refuse(id, e))?;
    let shape = shape(&binary).map_err(|e| refuse(id, e))?;
    let pages = manifest.limits.memory_pages;
    let limit = u64::from(pages) * PAGE;
    if shape.initial_memory > limit {
        return Err(refuse(
            id,
            format!(
                "its memory starts at {} pages of 64 KiB, more than limits.memory_pages ({pages})",
                shape.initial_memory.div_ceil(PAGE)
            ),
        ));
    }
    if shape.runs_at_start {
        start_in_time(manifest, &binary, limit as usize)?;
    }
    Ok(())
}

/// Instantiates the module in a store of its own with the plugin's memory limit, its
/// imports answering zeros, and interrupts it when `limits.timeout_ms` is up. Only running
/// out of time is an error here: whatever else goes wrong with stand-in imports is for the
/// real instance to report.
fn start_in_time(manifest: &PluginManifest, binary: &[u8], memory_limit: usize) -> Result<()> {
    use wasmtime::{Config, Engine, Linker, Module, Store, StoreLimits, StoreLimitsBuilder, Trap};
    let id = &manifest.id;
    let mut config = Config::new();
    // The proposals extism enables, so that every module it compiled compiles here.
    config
        .epoch_interruption(true)
        .wasm_tail_call(true)
        .wasm_function_references(true)
        .wasm_gc(true);
    let engine = Engine::new(&config).map_err(|e| refuse(id, e))?;
    let Ok(module) = Module::new(&engine, binary) else {
        return Ok(());
    };
    let limits = StoreLimitsBuilder::new().memory_size(memory_limit).build();
    let mut store: Store<StoreLimits> = Store::new(&engine, limits);
    store.limiter(|limits| limits);
    store.set_epoch_deadline(1);
    let mut linker = Linker::new(&engine);
    if linker
        .define_unknown_imports_as_default_values(&mut store, &module)
        .is_err()
    {
        return Ok(());
    }
    // The watchdog ends the start when the time is up, or leaves when the start is over
    // (the sender is dropped): it never outlives this function.
    let (done, wait) = mpsc::channel::<()>();
    let watchdog = {
        let engine = engine.clone();
        let timeout = manifest.limits.timeout();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(timeout) {
                engine.increment_epoch();
            }
        })
    };
    let outcome = linker
        .instantiate(&mut store, &module)
        .and_then(|instance| {
            let reactor = instance.get_func(&mut store, "_start").is_none();
            match instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
                Ok(init) if reactor => init.call(&mut store, ()),
                _ => Ok(()),
            }
        });
    drop(done);
    let _ = watchdog.join();
    match outcome {
        Err(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => Err(refuse(
            id,
            format!(
                "its start code did not finish within {} ms (limits.timeout_ms)",
                manifest.limits.timeout_ms
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_of_modules() {
        let s = shape(&wat::parse_str("(module (memory 3) (memory 2))").unwrap()).unwrap();
        assert_eq!(s.initial_memory, 5 * PAGE);
        assert!(!s.runs_at_start);
        let s = shape(&wat::parse_str("(module (func $f) (start $f))").unwrap()).unwrap();
        assert!(s.runs_at_start);
        let reactor = "(module (func (export \"_initialize\")))";
        assert!(
            shape(&wat::parse_str(reactor).unwrap())
                .unwrap()
                .runs_at_start
        );
        let command = "(module (func (export \"_initialize\")) (func (export \"_start\")))";
        assert!(
            !shape(&wat::parse_str(command).unwrap())
                .unwrap()
                .runs_at_start
        );
    }
}
