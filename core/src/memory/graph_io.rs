//! The graph in and out: triples imported in one transaction, and a scope's graph exported
//! as a JSON document (which an import takes back), GraphML or Graphviz DOT.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::Utc;

use super::graph::{
    add_relation_counted, at, resolve_or_add, CheckedEntity, CheckedRelation, Graph,
};
use crate::error::{Error, Result};
use crate::graph::{
    Entity, EntityInput, ExportFormat, GraphDocument, GraphExport, ImportReport, Relation,
    RelationTime, Triple, TripleEnd, MAX_IMPORT,
};
use crate::store;
use crate::types::{format_time, Scope};

impl Graph<'_> {
    /// Imports triples into `scope` in one transaction: all of them or none (a bad triple,
    /// an unknown entity id or source, an entity of another scope fails the whole call and
    /// the graph stays as it was). Ends named are found or created as
    /// [`Graph::add_relation`] does; a relation already held gains the triple's sources;
    /// functional predicates close as they do there. At most [`MAX_IMPORT`] triples.
    pub fn import_triples(&self, triples: Vec<Triple>, scope: &Scope) -> Result<ImportReport> {
        self.import(
            GraphDocument {
                entities: Vec::new(),
                triples,
            },
            scope,
        )
    }

    /// Imports a document (its entities first, with their aliases and summaries, then its
    /// triples) into `scope`, in one transaction, as [`Graph::import_triples`] does. A JSON
    /// export is such a document: exported from one scope or store, it imports into
    /// another (its triples' `sources` name memories, which must exist there).
    pub fn import(&self, document: GraphDocument, scope: &Scope) -> Result<ImportReport> {
        scope.validate()?;
        for (field, n) in [
            ("triples", document.triples.len()),
            ("entities", document.entities.len()),
        ] {
            if n > MAX_IMPORT {
                return Err(Error::invalid(format!(
                    "{n} {field}; one import takes at most {MAX_IMPORT}: split it into \
                     several calls"
                )));
            }
        }
        let entities = document
            .entities
            .into_iter()
            .enumerate()
            .map(|(i, e)| CheckedEntity::of(&e.in_scope(scope)).map_err(at("entities", i)))
            .collect::<Result<Vec<_>>>()?;
        let relations = document
            .triples
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let relation = t
                    .into_relation(scope)
                    .and_then(CheckedRelation::of)
                    .map_err(at("triples", i))?;
                let functional = self.memory.shared.functional.contains(&relation.predicate);
                Ok((relation, functional))
            })
            .collect::<Result<Vec<_>>>()?;
        store::write(&*self.memory.shared.store, |tx| {
            let now = tx.now()?;
            let mut report = ImportReport::default();
            for (i, entity) in entities.iter().enumerate() {
                resolve_or_add(tx.graph()?, entity, now, &mut report.entities_created)
                    .map_err(at("entities", i))?;
            }
            for (i, (relation, functional)) in relations.iter().enumerate() {
                let added =
                    add_relation_counted(tx, relation, *functional, &mut report.entities_created)
                        .map_err(at("triples", i))?;
                if added.created {
                    report.relations_created += 1;
                } else {
                    report.relations_held += 1;
                }
                report.closed.extend(added.closed);
            }
            Ok(report)
        })
    }

    /// The graph of exactly `scope` (never another's): its entities and the relations that
    /// hold now, or every relation with `include_closed`, as a [`GraphDocument`] (JSON),
    /// GraphML or DOT (see [`ExportFormat`]).
    pub fn export(
        &self,
        scope: &Scope,
        format: ExportFormat,
        include_closed: bool,
    ) -> Result<GraphExport> {
        scope.validate()?;
        let time = RelationTime {
            valid_at: None,
            include_closed,
            as_of: None,
        };
        let now = Utc::now();
        let (entities, relations) = self.read(|g| {
            let entities = g.entities_matching(scope, "", None, usize::MAX)?;
            let relations: Vec<Relation> = g
                .relations_in(scope, None, None)?
                .into_iter()
                .map(|r| r.relation)
                .filter(|r| time.admits(r.valid_from, r.valid_to, now))
                .collect();
            Ok((entities, relations))
        })?;
        Ok(match format {
            ExportFormat::Json => GraphExport::Json(document(&entities, &relations)),
            ExportFormat::Graphml => GraphExport::Graphml(graphml(&entities, &relations)),
            ExportFormat::Dot => GraphExport::Dot(dot(&entities, &relations)),
        })
    }
}

/// The entities and relations as an import document: entities with their names, types,
/// aliases and summaries; relations as triples naming their ends.
fn document(entities: &[Entity], relations: &[Relation]) -> GraphDocument {
    let types: HashMap<&str, &str> = entities
        .iter()
        .map(|e| (e.id.as_str(), e.entity_type.as_str()))
        .collect();
    let type_of = |id: &str| types.get(id).map(|t| t.to_string());
    GraphDocument {
        entities: entities
            .iter()
            .map(|e| EntityInput {
                name: e.name.clone(),
                entity_type: Some(e.entity_type.clone()),
                aliases: e.aliases.clone(),
                summary: e.summary.clone(),
            })
            .collect(),
        triples: relations
            .iter()
            .map(|r| Triple {
                subject: TripleEnd::Name(r.subject_name.clone()),
                subject_type: type_of(&r.subject),
                predicate: r.predicate.clone(),
                object: r
                    .object
                    .as_ref()
                    .map(|_| TripleEnd::Name(r.object_name.clone())),
                object_type: r.object.as_deref().and_then(type_of),
                value: r.literal.then(|| r.object_name.clone()),
                valid_from: r.valid_from,
                valid_to: r.valid_to,
                confidence: Some(r.confidence),
                sources: r.sources.clone(),
            })
            .collect(),
    }
}

/// Text for XML content or an attribute: the five special characters as entities, a
/// carriage return as a reference (so that it survives line-end normalisation), and the
/// control characters XML 1.0 cannot carry as U+FFFD.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The GraphML node id of a relation's literal value.
fn value_node(relation: &Relation) -> String {
    format!("value:{}", relation.id)
}

/// GraphML: entities are nodes (`kind` `entity`, `name`, `type`, `aliases` as a JSON list,
/// `summary`); a literal value is a node of its own (`kind` `value`, `name` the value), one
/// per relation; relations are directed edges (`predicate`, `valid_from`, `valid_to`,
/// `confidence`, `sources` as a JSON list, `closed_by`).
fn graphml(entities: &[Entity], relations: &[Relation]) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"http://graphml.graphdrawing.org/xmlns \
         http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd\">\n",
    );
    let keys = [
        ("kind", "node", "string"),
        ("name", "node", "string"),
        ("type", "node", "string"),
        ("aliases", "node", "string"),
        ("summary", "node", "string"),
        ("predicate", "edge", "string"),
        ("valid_from", "edge", "string"),
        ("valid_to", "edge", "string"),
        ("confidence", "edge", "double"),
        ("sources", "edge", "string"),
        ("closed_by", "edge", "string"),
    ];
    for (id, of, kind) in keys {
        let _ = writeln!(
            out,
            "  <key id=\"{id}\" for=\"{of}\" attr.name=\"{id}\" attr.type=\"{kind}\"/>"
        );
    }
    out.push_str("  <graph id=\"G\" edgedefault=\"directed\">\n");
    let data = |out: &mut String, key: &str, value: &str| {
        let _ = writeln!(out, "      <data key=\"{key}\">{}</data>", xml(value));
    };
    for e in entities {
        let _ = writeln!(out, "    <node id=\"{}\">", xml(&e.id));
        data(&mut out, "kind", "entity");
        data(&mut out, "name", &e.name);
        data(&mut out, "type", &e.entity_type);
        if !e.aliases.is_empty() {
            let aliases = serde_json::to_string(&e.aliases).unwrap_or_default();
            data(&mut out, "aliases", &aliases);
        }
        if let Some(summary) = &e.summary {
            data(&mut out, "summary", summary);
        }
        out.push_str("    </node>\n");
    }
    for r in relations.iter().filter(|r| r.literal) {
        let _ = writeln!(out, "    <node id=\"{}\">", xml(&value_node(r)));
        data(&mut out, "kind", "value");
        data(&mut out, "name", &r.object_name);
        out.push_str("    </node>\n");
    }
    for r in relations {
        let target = match &r.object {
            Some(id) => id.clone(),
            None => value_node(r),
        };
        let _ = writeln!(
            out,
            "    <edge id=\"{}\" source=\"{}\" target=\"{}\">",
            xml(&r.id),
            xml(&r.subject),
            xml(&target)
        );
        data(&mut out, "predicate", &r.predicate);
        if let Some(t) = r.valid_from {
            data(&mut out, "valid_from", &format_time(t));
        }
        if let Some(t) = r.valid_to {
            data(&mut out, "valid_to", &format_time(t));
        }
        data(&mut out, "confidence", &r.confidence.to_string());
        if !r.sources.is_empty() {
            let sources = serde_json::to_string(&r.sources).unwrap_or_default();
            data(&mut out, "sources", &sources);
        }
        if let Some(by) = &r.closed_by {
            data(&mut out, "closed_by", by);
        }
        out.push_str("    </edge>\n");
    }
    out.push_str("  </graph>\n</graphml>\n");
    out
}

/// A DOT double-quoted string: backslashes and quotes escaped, line ends as `\n`, other
/// control characters as spaces.
fn dot_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Graphviz DOT: entities are boxes labelled with their names (their type as tooltip), a
/// literal value a note of its own per relation, relations edges labelled with their
/// predicate; a relation that has ended is dashed.
fn dot(entities: &[Entity], relations: &[Relation]) -> String {
    let mut out = String::from("digraph agent_mem {\n  node [shape=box];\n");
    for e in entities {
        let _ = writeln!(
            out,
            "  {} [label={}, tooltip={}];",
            dot_quoted(&e.id),
            dot_quoted(&e.name),
            dot_quoted(&e.entity_type)
        );
    }
    for r in relations.iter().filter(|r| r.literal) {
        let _ = writeln!(
            out,
            "  {} [label={}, shape=note];",
            dot_quoted(&value_node(r)),
            dot_quoted(&r.object_name)
        );
    }
    for r in relations {
        let target = match &r.object {
            Some(id) => id.clone(),
            None => value_node(r),
        };
        let style = if r.valid_to.is_some() {
            ", style=dashed"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} -> {} [label={}{style}];",
            dot_quoted(&r.subject),
            dot_quoted(&target),
            dot_quoted(&r.predicate)
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_and_dot_text_is_escaped() {
        assert_eq!(
            xml("a<b>&\"c\" 'd'\r\n\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&quot; &apos;d&apos;&#13;\n\u{FFFD}"
        );
        assert_eq!(dot_quoted("say \"hi\"\r\nC:\\x"), r#""say \"hi\"\nC:\\x""#);
    }
}
