//! Valid time and supersede on PostgreSQL (feature `postgres`, server from
//! `tests/postgres.sh`), compared with SQLite (the reference): the same steps run on both
//! stores, and after each one everything read agrees (get, versions, history with its
//! changes, and search in every mode, list and count at valid times, with superseded
//! memories or without, as of a past moment), ids and change ids named alike. The harness
//! serves `postgres_undo` too.

#![cfg(feature = "postgres")]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use agent_mem::{
    format_time, parse_time, CountOptions, Filter, HashingEmbedder, ListOptions, Memory,
    MemoryKind, MemoryRecord, MemoryUpdate, NewMemory, SearchMode, SearchOptions, Supersede,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::postgres::assert_same_reading;
use crate::support;
use crate::support::pg::shared;

pub(crate) fn embedder() -> Arc<HashingEmbedder> {
    Arc::new(HashingEmbedder::new(64))
}

pub(crate) fn open(url: &str) -> Memory {
    Memory::builder()
        .path(url)
        .embedder(embedder())
        .build()
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

/// A fresh PostgreSQL store of its own (and its URL) and a SQLite reference, or `None`
/// (SKIPPED) without a server.
pub(crate) fn stores(test: &str) -> Option<(String, [Memory; 2])> {
    let url = support::pg::fresh_store_url(test)?;
    let sqlite = Memory::builder().embedder(embedder()).build().unwrap();
    Some((url.clone(), [open(&url), sqlite]))
}

pub(crate) fn t(s: &str) -> DateTime<Utc> {
    parse_time(s).unwrap()
}

/// Names of a scenario's memories, to their ids in one store.
pub(crate) type Names = BTreeMap<String, String>;

/// One store in a scenario: its memory, the names of its memories, the change ids its steps
/// made (in order), and when the scenario started (later times are commit times, which
/// differ between stores).
pub(crate) struct Side {
    pub(crate) m: Memory,
    pub(crate) names: Names,
    pub(crate) changes: Vec<String>,
    pub(crate) start: DateTime<Utc>,
}

impl Side {
    pub(crate) fn new(m: Memory) -> Side {
        Side {
            m,
            names: Names::new(),
            changes: Vec::new(),
            start: Utc::now(),
        }
    }

    pub(crate) fn id(&self, name: &str) -> String {
        self.names[name].clone()
    }

    pub(crate) fn name_of(&self, id: &str) -> String {
        self.names
            .iter()
            .find(|(_, i)| *i == id)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| panic!("unknown id {id}"))
    }

    pub(crate) fn add(&mut self, name: &str, new: NewMemory) {
        let added = self.m.add(new).unwrap();
        assert!(added.added, "{name}");
        self.names.insert(name.into(), added.id);
    }

    /// The change id of the last history row of memory `name`.
    pub(crate) fn last_change(&self, name: &str) -> String {
        let rows = self.m.history(&self.id(name)).unwrap();
        rows.last().unwrap().change_id.clone()
    }

    /// A time as both stores can agree on: the scenario's own, or "a commit".
    fn time(&self, at: Option<DateTime<Utc>>) -> Value {
        match at {
            Some(at) if at >= self.start => json!("a commit"),
            Some(at) => json!(format_time(at)),
            None => Value::Null,
        }
    }

    /// A record, by name, with every field both stores share.
    pub(crate) fn shown(&self, r: &MemoryRecord) -> Value {
        json!({
            "name": self.name_of(&r.id),
            "content": r.content,
            "version": r.version,
            "scope": r.scope,
            "kind": r.kind,
            "metadata": r.metadata,
            "expires_at": self.time(r.expires_at),
            "valid_from": self.time(r.valid_from),
            "valid_to": self.time(r.valid_to),
            "superseded_by": r.superseded_by.as_ref().map(|id| self.name_of(id)),
            "ended": r.valid_to_tx.is_some(),
        })
    }

    pub(crate) fn shown_all(&self, records: &[MemoryRecord]) -> Value {
        json!(records.iter().map(|r| self.shown(r)).collect::<Vec<_>>())
    }

    /// What a call gave: its value, or its error code.
    pub(crate) fn outcome<T>(&self, r: agent_mem::Result<T>, show: impl Fn(&T) -> Value) -> Value {
        match r {
            Ok(v) => show(&v),
            Err(e) => json!({ "error": format!("{:?}", e.code()) }),
        }
    }

    /// Each memory as it is, its versions, and its history with changes named by order of
    /// appearance (and whether a change is its row's own id).
    fn state(&self) -> Value {
        let mut labels: HashMap<String, String> = HashMap::new();
        let mut label = |id: &str| {
            let next = format!("change {}", labels.len());
            labels.entry(id.to_string()).or_insert(next).clone()
        };
        let mut out = serde_json::Map::new();
        for (name, id) in &self.names {
            let now = self.outcome(self.m.get(id), |r| self.shown(r));
            let versions = self.outcome(self.m.versions(id), |v| {
                json!(v.iter().map(|r| self.shown(r)).collect::<Vec<_>>())
            });
            let history: Vec<Value> = self
                .m
                .history(id)
                .unwrap()
                .iter()
                .map(|h| {
                    json!({
                        "event": h.event,
                        "old": h.old_content,
                        "new": h.new_content,
                        "deleted": h.is_deleted,
                        "actor": h.actor,
                        "change": label(&h.change_id),
                        "own change": h.change_id == h.id,
                        "undone_by": h.undone_by.as_deref().map(&mut label),
                    })
                })
                .collect();
            out.insert(
                name.clone(),
                json!({"now": now, "versions": versions, "history": history}),
            );
        }
        Value::Object(out)
    }

    /// Searches (every mode), the list (with its total) and the count, all with these
    /// options of time.
    fn reads(&self, when: &When, queries: &[&str]) -> Value {
        let mut out = serde_json::Map::new();
        let modes = [
            SearchMode::Keyword,
            SearchMode::Phrase,
            SearchMode::Fuzzy,
            SearchMode::Vector,
            SearchMode::Hybrid,
        ];
        for query in queries {
            for mode in modes {
                let mut options = SearchOptions::new().mode(mode).limit(50);
                options.valid_at = when.valid_at;
                options.include_superseded = when.include_superseded;
                options.as_of = when.as_of;
                options.filter = when.filter.clone();
                let mut hits: Vec<(String, Value)> = self
                    .m
                    .search(query, &options)
                    .unwrap()
                    .iter()
                    .map(|h| {
                        let shown = self.shown(&h.memory);
                        (shown.to_string(), json!([shown, h.score]))
                    })
                    .collect();
                hits.sort_by(|a, b| a.0.cmp(&b.0));
                let hits: Vec<Value> = hits.into_iter().map(|(_, h)| h).collect();
                out.insert(format!("{mode:?} {query:?}"), json!(hits));
            }
        }
        let mut list = ListOptions::new().limit(1000).with_total();
        list.valid_at = when.valid_at;
        list.include_superseded = when.include_superseded;
        list.as_of = when.as_of;
        list.filter = when.filter.clone();
        let page = self.m.list(&list).unwrap();
        let mut items: Vec<Value> = page.items.iter().map(|r| self.shown(r)).collect();
        items.sort_by_key(|v| v.to_string());
        out.insert("list".into(), json!({"items": items, "total": page.total}));
        let count = CountOptions {
            valid_at: when.valid_at,
            include_superseded: when.include_superseded,
            as_of: when.as_of,
            filter: when.filter.clone(),
            ..CountOptions::default()
        };
        out.insert("count".into(), json!(self.m.count_with(&count).unwrap()));
        Value::Object(out)
    }
}

/// The options of time a read takes (and a filter).
#[derive(Clone, Default)]
pub(crate) struct When {
    valid_at: Option<DateTime<Utc>>,
    include_superseded: bool,
    as_of: Option<DateTime<Utc>>,
    filter: Option<Filter>,
}

impl When {
    pub(crate) fn valid_at(at: &str) -> When {
        When {
            valid_at: Some(t(at)),
            ..When::default()
        }
    }

    fn superseded_too(mut self) -> When {
        self.include_superseded = true;
        self
    }
}

/// Runs `steps` steps on both sides (PostgreSQL first), each giving a value of its own
/// (results, error codes); after each, these values, [`Side::state`] and the reads of
/// `reads` (the options of time, per side) agree.
pub(crate) fn compare(
    sides: &mut [Side; 2],
    steps: usize,
    step: impl Fn(&mut Side, usize) -> Value,
    reads: impl Fn(&Side, usize) -> Vec<(String, When)>,
    queries: &[&str],
) {
    for n in 0..steps {
        let [pg, sqlite] = sides.each_mut().map(|side| step(side, n));
        assert_same_reading(&pg, &sqlite, &format!("step {n}"));
        let [pg, sqlite] = sides.each_ref().map(Side::state);
        assert_same_reading(&pg, &sqlite, &format!("state after step {n}"));
        let [pg_reads, sqlite_reads] = sides.each_ref().map(|side| reads(side, n));
        for ((what, pg_when), (_, sqlite_when)) in pg_reads.iter().zip(&sqlite_reads) {
            let got = sides[0].reads(pg_when, queries);
            let want = sides[1].reads(sqlite_when, queries);
            assert_same_reading(&got, &want, &format!("step {n}, {what}"));
        }
    }
}

/// Memories with valid times added and changed alike on both backends; at valid moments
/// inside, outside and at the ends of their intervals (the start included, the end not),
/// and through filters on `valid_from` and `valid_to`, search, list and count agree, also
/// as of the moment before the changes.
#[test]
fn valid_time_reads_as_on_sqlite() {
    let _server = shared();
    let Some((_, stores)) = stores("valid_time") else {
        return;
    };
    let mut sides = stores.map(Side::new);
    let step = |side: &mut Side, n: usize| -> Value {
        match n {
            0 => {
                side.add(
                    "paris",
                    NewMemory::new("Alice lives in Paris")
                        .user("alice")
                        .valid_from(t("2019-05-01"))
                        .valid_to(t("2024-03-01")),
                );
                side.add(
                    "berlin",
                    NewMemory::new("Alice lives in Berlin")
                        .user("alice")
                        .valid_from(t("2024-03-01")),
                );
                side.add(
                    "cat",
                    NewMemory::new("Alice lives with a cat").user("alice"),
                );
                side.add(
                    "job",
                    NewMemory::new("Bob works at the harbor office")
                        .user("bob")
                        .valid_to(t("2023-01-01")),
                );
                side.add(
                    "boat",
                    NewMemory::new("Bob sails a small boat on the harbor")
                        .user("bob")
                        .valid_from(t("2021-06-15T12:30:00Z")),
                );
                Value::Null
            }
            1 => {
                let m = &side.m;
                let update = |name: &str, from, to| {
                    let change = MemoryUpdate {
                        valid_from: from,
                        valid_to: to,
                        ..MemoryUpdate::default()
                    };
                    side.outcome(m.update(&side.id(name), change), |r| side.shown(r))
                };
                json!([
                    update("paris", None, Some(Some(t("2024-04-01")))),
                    update("cat", Some(Some(t("2020-01-01"))), None),
                    update("job", None, Some(None)),
                    // Refused, nothing changed: the end before the start.
                    update("boat", None, Some(Some(t("2001-01-01")))),
                ])
            }
            _ => unreachable!(),
        }
    };
    let reads = |side: &Side, n: usize| -> Vec<(String, When)> {
        let mut out: Vec<(String, When)> = [
            "2010-01-01",
            "2019-05-01",
            "2022-06-01",
            "2023-01-01",
            "2024-03-01",
            "2024-03-15",
            "2030-01-01",
        ]
        .iter()
        .map(|at| (format!("valid at {at}"), When::valid_at(at)))
        .collect();
        out.push(("now".into(), When::default()));
        let filters = [
            r#"{"valid_from": {"gte": "2024-01-01"}}"#,
            r#"{"valid_to": {"lt": "2024-03-10"}}"#,
            r#"{"valid_to": {"gte": "2023-01-01T00:00:00Z"}}"#,
            r#"{"valid_from": "*"}"#,
            r#"{"valid_to": null}"#,
            r#"{"valid_to": {"ne": null}}"#,
            r#"{"valid_from": {"ne": "2019-05-01"}}"#,
            r#"{"valid_from": {"in": ["2019-05-01", null]}}"#,
            r#"{"valid_to": {"nin": ["2024-03-01"]}}"#,
            r#"{"$not": {"valid_to": {"gt": "2023-06-01"}}}"#,
            r#"{"$or": [{"valid_from": {"lt": "2020-01-01"}}, {"valid_to": {"lte": "2023-01-01"}}]}"#,
        ];
        for f in filters {
            let when = When {
                filter: Some(Filter::parse(f).unwrap()),
                ..When::default()
            };
            out.push((format!("filter {f}"), when));
        }
        if n == 1 {
            // As of the last add, before the updates: the valid times as they were then.
            let before = side.m.get(&side.id("boat")).unwrap().valid_from_tx;
            for at in ["2023-06-01", "2024-03-15"] {
                let when = When {
                    as_of: Some(before),
                    ..When::valid_at(at)
                };
                out.push((format!("as of the adds, valid at {at}"), when));
            }
        }
        out
    };
    compare(
        &mut sides,
        2,
        step,
        reads,
        &[
            "Alice lives",
            "harbor",
            "lives in",
            "harbr",
            "where does Bob work",
        ],
    );
}

/// Supersedes (with a valid start given, and with the default: the commit time), then the
/// refusals (twice, the same text, an unknown memory, another memory's text), an undo of a
/// supersede, the undo of that undo, and a forced undo over a later change: the same on
/// both backends, which hide superseded facts by default, show them when asked or at a
/// valid moment, and read the moment before a supersede as it was.
#[test]
fn supersede_and_its_undo_read_as_on_sqlite() {
    let _server = shared();
    let Some((_, stores)) = stores("supersede") else {
        return;
    };
    let mut sides = stores.map(Side::new);
    let step = |side: &mut Side, n: usize| -> Value {
        let m = &side.m;
        match n {
            0 => {
                side.add(
                    "paris",
                    NewMemory::new("Alice lives in Paris")
                        .user("alice")
                        .valid_from(t("2019-05-01"))
                        .meta("topic", "home"),
                );
                side.add(
                    "nurse",
                    NewMemory::new("Alice works as a nurse").user("alice"),
                );
                Value::Null
            }
            1 => {
                let mut moved = Supersede::new("Alice lives in Berlin");
                moved.valid_from = Some(t("2024-03-01"));
                let done = m.supersede(&side.id("paris"), moved).unwrap();
                side.names.insert("berlin".into(), done.memory.id.clone());
                side.changes.push(done.change_id.clone());
                json!([side.shown(&done.memory), side.shown(&done.superseded)])
            }
            2 => {
                // The default start is the supersede's commit; kind and metadata given.
                let mut job = Supersede::new("Alice works as a doctor");
                job.kind = Some(MemoryKind::Procedural);
                job.metadata = Some(json!({"topic": "work"}).as_object().unwrap().clone());
                let done = m.supersede(&side.id("nurse"), job).unwrap();
                assert_eq!(done.memory.valid_from, Some(done.memory.created_at));
                assert_eq!(done.superseded.valid_to, done.memory.valid_from);
                side.names.insert("doctor".into(), done.memory.id.clone());
                side.changes.push(done.change_id.clone());
                json!([side.shown(&done.memory), side.shown(&done.superseded)])
            }
            3 => {
                let code = |r: agent_mem::Result<_>| side.outcome(r, |_| Value::Null);
                json!([
                    code(m.supersede(&side.id("paris"), Supersede::new("Alice lives in Rome"))),
                    code(m.supersede(&side.id("berlin"), Supersede::new("Alice lives in Berlin"))),
                    code(m.supersede("nope", Supersede::new("x"))),
                    code(m.supersede(
                        &side.id("berlin"),
                        Supersede::new("Alice works as a doctor")
                    )),
                ])
            }
            4 => {
                let undone = m.undo(&side.changes[0], false).unwrap();
                assert_eq!(undone.removed, [side.id("berlin")]);
                side.changes.push(undone.change_id.clone());
                let again = m.undo(&side.changes[0], false).unwrap_err();
                assert!(again.message().contains("already undone"), "{again}");
                side.shown_all(&undone.restored)
            }
            5 => {
                // Undoing the undo redoes the supersede, the new memory under its id.
                let redone = m.undo(&side.changes[2], false).unwrap();
                side.shown_all(&redone.restored)
            }
            6 => {
                m.update(
                    &side.id("doctor"),
                    MemoryUpdate::content("Alice works as a surgeon"),
                )
                .unwrap();
                let refused = side.outcome(m.undo(&side.changes[1], false), |_| Value::Null);
                let forced = m.undo(&side.changes[1], true).unwrap();
                json!([refused, forced.removed.len(), forced.restored.len()])
            }
            _ => unreachable!(),
        }
    };
    let reads = |side: &Side, n: usize| -> Vec<(String, When)> {
        let mut out = vec![
            ("default".to_string(), When::default()),
            ("with superseded".into(), When::default().superseded_too()),
            ("valid in 2022".into(), When::valid_at("2022-01-01")),
            ("valid in 2025".into(), When::valid_at("2025-01-01")),
            ("valid in 2200".into(), When::valid_at("2200-01-01")),
        ];
        if n >= 1 {
            // Before the first supersede: Paris, not yet superseded.
            let before = side.m.get(&side.id("nurse")).unwrap().created_at;
            let when = When {
                as_of: Some(before),
                ..When::default()
            };
            out.push(("as of before".into(), when.clone()));
            out.push((
                "as of before, with superseded".into(),
                when.superseded_too(),
            ));
        }
        out
    };
    compare(
        &mut sides,
        7,
        step,
        reads,
        &["Alice lives", "Alice works", "Berlin", "nurse doctor"],
    );
}
