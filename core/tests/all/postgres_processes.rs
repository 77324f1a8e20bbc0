//! Several client processes on one PostgreSQL store (feature `postgres`, server from
//! `tests/postgres.sh`):
//!
//! - 4 processes × 2 threads add at once, unique memories and the same shared ones: nothing
//!   is lost, nothing is stored twice, no call fails;
//! - a client killed with SIGKILL in the middle of a batch leaves no part of that batch, and
//!   every batch it was told was stored is there.
//!
//! The children are this test binary run again with `--exact <child test>` and an
//! environment variable naming the store (without it the child tests do nothing).

use crate::support;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use agent_mem::{HashingEmbedder, ListOptions, Memory, NewMemory, Scope};

const WRITER_ENV: &str = "AGENTMEM_PG_WRITER_CHILD";
const WRITER_ID_ENV: &str = "AGENTMEM_PG_WRITER_ID";
const CRASH_ENV: &str = "AGENTMEM_PG_CRASH_CHILD";
/// Processes and threads of the concurrent-writer test.
const PROCESSES: usize = 4;
const THREADS: usize = 2;
/// Unique memories each thread adds (in batches of `BATCH`), and shared ones every thread
/// adds too (the exact-duplicate rule must keep one of each).
const UNIQUE_PER_THREAD: usize = 60;
const BATCH: usize = 5;
const SHARED: usize = 15;
/// Memories per batch of the crash child.
const CRASH_BATCH: usize = 100;

fn open(url: &str) -> Memory {
    Memory::builder()
        .path(url)
        .embedder(Arc::new(HashingEmbedder::new(64)))
        .build()
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

fn spawn_child(test: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        &support::test_name(module_path!(), test),
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

fn everything(memory: &Memory) -> Vec<agent_mem::MemoryRecord> {
    let mut out = Vec::new();
    let mut options = ListOptions::new().limit(10_000);
    options.include_expired = true;
    loop {
        let page = memory.list(&options).unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => options.cursor = Some(c),
            None => return out,
        }
    }
}

fn unique_content(process: usize, thread: usize, i: usize) -> String {
    format!("process {process} thread {thread} remembers item {i}")
}

fn shared_content(i: usize) -> String {
    format!("everyone knows shared fact number {i}")
}

/// The child of [`four_processes_two_threads_add_into_one_store`].
#[test]
fn writer_child() {
    let Ok(url) = std::env::var(WRITER_ENV) else {
        return;
    };
    let process: usize = std::env::var(WRITER_ID_ENV).unwrap().parse().unwrap();
    let memory = Arc::new(open(&url));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread| {
            let memory = memory.clone();
            std::thread::spawn(move || {
                let scope = Scope::user("fleet");
                for start in (0..UNIQUE_PER_THREAD).step_by(BATCH) {
                    let batch = (start..start + BATCH)
                        .map(|i| {
                            NewMemory::new(unique_content(process, thread, i)).scope(scope.clone())
                        })
                        .collect();
                    let outcomes = memory.add_batch(batch).expect("batch add");
                    assert!(outcomes.iter().all(|o| o.added));
                    // Interleave the shared facts, so that processes race on them.
                    let shared = start / BATCH % SHARED;
                    memory
                        .add(NewMemory::new(shared_content(shared)).scope(scope.clone()))
                        .expect("shared add");
                }
                for shared in 0..SHARED {
                    memory
                        .add(NewMemory::new(shared_content(shared)).scope(scope.clone()))
                        .expect("shared add");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    println!("WRITER-DONE {process}");
}

#[test]
fn four_processes_two_threads_add_into_one_store() {
    let _server = support::pg::shared();
    let Some(url) = support::pg::fresh_store_url("four_processes") else {
        return;
    };
    // The schema is created by the first open; the children then race on the rows only.
    let memory = open(&url);
    let children: Vec<Child> = (0..PROCESSES)
        .map(|p| {
            spawn_child(
                "writer_child",
                &[(WRITER_ENV, url.clone()), (WRITER_ID_ENV, p.to_string())],
            )
        })
        .collect();
    for (p, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(&format!("WRITER-DONE {p}")),
            "writer {p} failed: {}\n{stdout}",
            out.status
        );
    }
    let all = everything(&memory);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &all {
        *seen.entry(m.content.clone()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    for p in 0..PROCESSES {
        for t in 0..THREADS {
            for i in 0..UNIQUE_PER_THREAD {
                assert!(
                    seen.contains_key(&unique_content(p, t, i)),
                    "lost {}",
                    unique_content(p, t, i)
                );
            }
        }
    }
    for i in 0..SHARED {
        assert_eq!(seen.get(&shared_content(i)), Some(&1), "shared fact {i}");
    }
    assert_eq!(all.len(), PROCESSES * THREADS * UNIQUE_PER_THREAD + SHARED);
    // One ADD row per memory: a lost race wrote no history.
    for m in all.iter().step_by(7) {
        let history = memory.history(&m.id).unwrap();
        assert_eq!(history.len(), 1, "{}: {history:?}", m.content);
    }
    assert_eq!(memory.indexed_vectors().unwrap(), all.len());
}

fn crash_content(batch: u64, item: usize) -> String {
    format!("batch {batch} item {item} of the crash test")
}

/// The child of [`killed_client_mid_batch_leaves_no_partial_batch`]: adds batches until it
/// is killed, printing `ACK n` after batch n is stored.
#[test]
fn crash_child() {
    let Ok(url) = std::env::var(CRASH_ENV) else {
        return;
    };
    let memory = open(&url);
    for batch in 0u64.. {
        let items = (0..CRASH_BATCH)
            .map(|i| {
                NewMemory::new(crash_content(batch, i))
                    .user("crash")
                    .meta("batch", batch)
            })
            .collect();
        memory.add_batch(items).expect("batch");
        println!("ACK {batch}");
    }
}

#[test]
fn killed_client_mid_batch_leaves_no_partial_batch() {
    let _server = support::pg::shared();
    let Some(url) = support::pg::fresh_store_url("killed_client") else {
        return;
    };
    let memory = open(&url);
    let mut acked = BTreeSet::new();
    for round in 0..3u64 {
        let mut child = spawn_child("crash_child", &[(CRASH_ENV, url.clone())]);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ACK ") {
                    let _ = tx.send(n.parse::<u64>().unwrap());
                }
            }
        });
        // Wait for a few acknowledged batches, then kill at a moment that varies per round,
        // most likely in the middle of the next batch's transaction.
        let mut round_acks = Vec::new();
        while round_acks.len() < 2 {
            round_acks.push(
                rx.recv_timeout(Duration::from_secs(60))
                    .expect("the child acknowledges batches"),
            );
        }
        std::thread::sleep(Duration::from_millis(7 + 23 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        round_acks.extend(rx.try_iter());
        acked.extend(round_acks);
        // Batches of this round restart at 0: contents repeat, so the duplicate rule makes a
        // re-added batch land on the same memories. Check after each round.
        let mut by_batch: HashMap<u64, usize> = HashMap::new();
        for m in everything(&memory) {
            let batch = m.metadata["batch"].as_u64().unwrap();
            *by_batch.entry(batch).or_default() += 1;
        }
        for (batch, n) in &by_batch {
            assert_eq!(
                *n, CRASH_BATCH,
                "round {round}: batch {batch} is partly stored ({n} of {CRASH_BATCH})"
            );
        }
        for batch in &acked {
            assert!(
                by_batch.contains_key(batch),
                "round {round}: acknowledged batch {batch} is missing"
            );
        }
    }
    // The server dropped the killed clients' connections and their open transactions.
    let extra = open(&url);
    let added = extra
        .add(NewMemory::new("written after the crashes").user("crash"))
        .unwrap();
    assert!(added.added);
}
