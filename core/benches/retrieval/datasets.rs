//! Loaders for the public conversational dev sets: each turns into conversations of turns
//! (stored one memory per turn, in the conversation's scope) and questions with the turns
//! (or sessions) that hold their evidence. The data is read from a checkout of each
//! repository; nothing of it is committed here.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A stored turn.
pub struct Turn {
    /// What a relevance judgement names: the turn's own id, or its session's.
    pub group: String,
    /// The memory's content, as a user would store it (speaker: text).
    pub text: String,
    /// When it was said, as the data gives it.
    pub date: String,
    /// Position of its session in the conversation (0-based).
    pub session: usize,
}

/// A question with its evidence.
pub struct Question {
    pub text: String,
    /// Groups (turn or session ids) that hold the answer.
    pub evidence: Vec<String>,
    pub category: String,
    /// Only turns of earlier sessions may be searched (the question is asked later on).
    pub before_session: Option<usize>,
}

/// One conversation: its own scope.
pub struct Conversation {
    pub id: String,
    pub turns: Vec<Turn>,
    pub questions: Vec<Question>,
}

/// A loaded dev set.
pub struct Corpus {
    pub name: String,
    pub conversations: Vec<Conversation>,
    /// Questions dropped because none of their evidence resolves to a stored turn.
    pub unresolved_questions: usize,
    /// Evidence ids that name no stored turn.
    pub unresolved_evidence: usize,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn read(path: &Path) -> Res<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

fn files(dir: &Path, keep: impl Fn(&str) -> bool) -> Res<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&keep))
        .collect();
    out.sort();
    Ok(out)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Drops evidence that names no stored turn and questions left with none.
fn resolve(corpus: &mut Corpus) {
    for conv in &mut corpus.conversations {
        let groups: HashSet<&str> = conv.turns.iter().map(|t| t.group.as_str()).collect();
        let mut unresolved = 0;
        let before = conv.questions.len();
        conv.questions.retain_mut(|q| {
            let n = q.evidence.len();
            q.evidence.retain(|e| groups.contains(e.as_str()));
            q.evidence.dedup();
            unresolved += n - q.evidence.len();
            !q.evidence.is_empty()
        });
        corpus.unresolved_evidence += unresolved;
        corpus.unresolved_questions += before - conv.questions.len();
    }
}

/// Loads `name` from a checkout of its repository at `root`.
pub fn load(name: &str, root: &Path, max_conversations: usize) -> Res<Corpus> {
    let mut corpus = Corpus {
        name: name.to_string(),
        conversations: Vec::new(),
        unresolved_questions: 0,
        unresolved_evidence: 0,
    };
    match name {
        "realtalk" => realtalk(&mut corpus, root, max_conversations)?,
        "beam" => beam(&mut corpus, root, max_conversations)?,
        "memdaily" => memdaily(&mut corpus, root, max_conversations)?,
        "realmem" => realmem(&mut corpus, root, max_conversations)?,
        other => {
            return Err(
                format!("unknown dataset {other:?} (realtalk, beam, memdaily, realmem)").into(),
            )
        }
    }
    resolve(&mut corpus);
    Ok(corpus)
}

/// REALTALK (`data/Chat_*.json`): two people over many sessions; evidence by turn id.
fn realtalk(corpus: &mut Corpus, root: &Path, max: usize) -> Res<()> {
    for path in files(&root.join("data"), |n| {
        n.starts_with("Chat_") && n.ends_with(".json")
    })?
    .into_iter()
    .take(max)
    {
        let data = read(&path)?;
        let mut sessions: Vec<(usize, &Vec<Value>)> = data
            .as_object()
            .ok_or("a chat is an object")?
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix("session_")?.parse().ok()?;
                Some((n, v.as_array()?))
            })
            .collect();
        sessions.sort_by_key(|(n, _)| *n);
        let mut turns = Vec::new();
        for (i, (_, session)) in sessions.iter().enumerate() {
            for turn in session.iter() {
                let said = text(&turn["clean_text"]);
                if said.trim().is_empty() {
                    continue;
                }
                turns.push(Turn {
                    group: text(&turn["dia_id"]),
                    text: format!("{}: {}", text(&turn["speaker"]), said),
                    date: text(&turn["date_time"]),
                    session: i,
                });
            }
        }
        let questions = data["qa"]
            .as_array()
            .map(|qa| {
                qa.iter()
                    .map(|q| Question {
                        text: text(&q["question"]),
                        evidence: q["evidence"]
                            .as_array()
                            .map(|e| e.iter().map(text).collect())
                            .unwrap_or_default(),
                        category: format!("cat{}", text(&q["category"])),
                        before_session: None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        corpus.conversations.push(Conversation {
            id: path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into(),
            turns,
            questions,
        });
    }
    Ok(())
}

/// Message ids in a BEAM `source_chat_ids` value: a list, or an object of lists.
fn beam_ids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| beam_ids(i, out)),
        Value::Object(map) => map.values().for_each(|i| beam_ids(i, out)),
        Value::Number(n) => out.push(n.to_string()),
        _ => {}
    }
}

/// BEAM (`chats/100K/*`, `chats/500K/*`): user–assistant chats; evidence by message id.
fn beam(corpus: &mut Corpus, root: &Path, max: usize) -> Res<()> {
    let mut dirs = Vec::new();
    for size in ["100K", "500K"] {
        let base = root.join("chats").join(size);
        let mut these: Vec<(usize, PathBuf)> = files(&base, |n| n.parse::<usize>().is_ok())?
            .into_iter()
            .filter_map(|p| Some((p.file_name()?.to_str()?.parse().ok()?, p)))
            .collect();
        these.sort();
        dirs.extend(these.into_iter().map(|(_, p)| (size, p)).take(max));
    }
    for (size, dir) in dirs {
        let chat = read(&dir.join("chat.json"))?;
        let mut turns = Vec::new();
        for (b, batch) in chat.as_array().into_iter().flatten().enumerate() {
            let anchor = text(&batch["time_anchor"]);
            for group in batch["turns"].as_array().into_iter().flatten() {
                for msg in group.as_array().into_iter().flatten() {
                    let said = text(&msg["content"]);
                    if said.trim().is_empty() {
                        continue;
                    }
                    turns.push(Turn {
                        group: text(&msg["id"]),
                        text: format!("{}: {}", text(&msg["role"]), said),
                        date: anchor.clone(),
                        session: b,
                    });
                }
            }
        }
        let probing = read(&dir.join("probing_questions/probing_questions.json"))?;
        let mut questions = Vec::new();
        for (category, qs) in probing.as_object().into_iter().flatten() {
            for q in qs.as_array().into_iter().flatten() {
                let mut evidence = Vec::new();
                beam_ids(&q["source_chat_ids"], &mut evidence);
                if evidence.is_empty() {
                    continue; // abstention: nothing to find
                }
                questions.push(Question {
                    text: text(&q["question"]),
                    evidence,
                    category: category.clone(),
                    before_session: None,
                });
            }
        }
        corpus.conversations.push(Conversation {
            id: format!(
                "{size}-{}",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ),
            turns,
            questions,
        });
    }
    Ok(())
}

/// MemDaily (`data_generation/final_dataset/messages_and_QAs/*.json`, Chinese): short
/// histories, pooled per file into one store scope so that retrieval is hard; evidence by
/// (history, message) id.
fn memdaily(corpus: &mut Corpus, root: &Path, max: usize) -> Res<()> {
    let dir = root.join("data_generation/final_dataset/messages_and_QAs");
    for path in files(&dir, |n| n.ends_with(".json"))?.into_iter().take(max) {
        let data = read(&path)?;
        let mut turns = Vec::new();
        let mut questions = Vec::new();
        for history in data.as_array().into_iter().flatten() {
            let tid = text(&history["tid"]);
            for msg in history["message_list"].as_array().into_iter().flatten() {
                turns.push(Turn {
                    group: format!("{tid}:{}", text(&msg["mid"])),
                    text: text(&msg["message"]),
                    date: text(&msg["time"]),
                    session: 0,
                });
            }
            for q in history["question_list"].as_array().into_iter().flatten() {
                let evidence = match &q["target_step_id"] {
                    Value::Array(ids) => ids.iter().map(|i| format!("{tid}:{}", text(i))).collect(),
                    other => vec![format!("{tid}:{}", text(other))],
                };
                questions.push(Question {
                    text: text(&q["question"]),
                    evidence,
                    category: path
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .split_once('_')
                        .map(|(_, rest)| rest.to_string())
                        .unwrap_or_default(),
                    before_session: None,
                });
            }
        }
        corpus.conversations.push(Conversation {
            id: path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into(),
            turns,
            questions,
        });
    }
    Ok(())
}

/// RealMem (`dataset/*_dialogues_256k.json`): a persona's sessions with an assistant; a
/// query turn's evidence is the earlier sessions its answer drew on, so a question searches
/// only the sessions before its own.
fn realmem(corpus: &mut Corpus, root: &Path, max: usize) -> Res<()> {
    let dir = root.join("dataset");
    for path in files(&dir, |n| n.ends_with("_dialogues_256k.json"))?
        .into_iter()
        .take(max)
    {
        let data = read(&path)?;
        let sessions = data["dialogues"].as_array().ok_or("dialogues")?;
        let index: HashMap<String, usize> = sessions
            .iter()
            .enumerate()
            .map(|(i, s)| (text(&s["session_uuid"]), i))
            .collect();
        let mut turns = Vec::new();
        let mut questions = Vec::new();
        for (i, session) in sessions.iter().enumerate() {
            let uuid = text(&session["session_uuid"]);
            let date = text(&session["current_time"]);
            let said: Vec<&Value> = session["dialogue_turns"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            for (t, turn) in said.iter().enumerate() {
                let content = text(&turn["content"]);
                if !content.trim().is_empty() {
                    turns.push(Turn {
                        group: uuid.clone(),
                        text: format!("{}: {}", text(&turn["speaker"]), content),
                        date: date.clone(),
                        session: i,
                    });
                }
                let is_query = matches!(&turn["is_query"], Value::Bool(true))
                    || turn["is_query"].as_str() == Some("True");
                if !is_query {
                    continue;
                }
                // The judgement sits on the query turn or on the answer after it.
                let answer = said.get(t + 1).copied().unwrap_or(&Value::Null);
                let mut evidence: Vec<String> = [*turn, answer]
                    .iter()
                    .flat_map(|v| {
                        v["memory_session_uuids"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                    })
                    .map(|v| text(&v))
                    .filter(|u| index.get(u).is_some_and(|&s| s < i))
                    .collect();
                evidence.sort();
                evidence.dedup();
                questions.push(Question {
                    text: content,
                    evidence,
                    category: text(&turn["category_name"]),
                    before_session: Some(i),
                });
            }
        }
        corpus.conversations.push(Conversation {
            id: path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into(),
            turns,
            questions,
        });
    }
    Ok(())
}
