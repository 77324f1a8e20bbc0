//! libpq's `key=value` connection strings (`host=db.example dbname=memories user=agent
//! password='it\'s'`), accepted wherever a store location goes, beside `postgres://` URLs.
//!
//! **Which locations are connection strings.** libpq takes any string holding `=` for one;
//! a file path may hold `=` too, so the rule here is narrower: a location is a connection
//! string when it *starts* with one of libpq's connection keywords followed by `=` (blanks
//! allowed before, around the `=`): `host=…`, `dbname=…`, `user=…`, `port=…`,
//! `service=…`… (the whole list is [`LIBPQ_KEYWORDS`]). Everything after must then parse as
//! libpq's pairs, or opening fails. A file whose name starts that way is named with a
//! directory: `./host=x.db`.
//!
//! **Syntax** (libpq's): pairs `keyword = value` separated by blanks; a value is either a
//! run of non-blank characters, or single-quoted (`'…'`, which may hold blanks or be empty);
//! in both, a backslash takes the next character literally (`\'`, `\\`, `\ `). A keyword
//! given twice takes its last value; an empty value is the same as none (libpq's default).
//! Without `host` or `hostaddr` the connection goes to `localhost` over TCP (libpq would use
//! its Unix socket directory: give `host=/run/postgresql` for that); the database defaults
//! to the user's name, as in libpq.

use crate::error::{Error, ErrorCode, Result};

/// libpq's connection keywords (PostgreSQL 18's `PQconninfoOptions`).
pub(crate) const LIBPQ_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "service",
    "options",
    "application_name",
    "fallback_application_name",
    "client_encoding",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "channel_binding",
    "require_auth",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslkeylogfile",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "replication",
    "target_session_attrs",
    "load_balance_hosts",
    "scram_client_key",
    "scram_server_key",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
];

/// libpq's keywords that this build passes on to the server connection, each with the name
/// the driver knows it by. The others are refused as unsupported, never dropped silently.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
const SUPPORTED: &[(&str, &str)] = &[
    ("host", "host"),
    ("hostaddr", "hostaddr"),
    ("port", "port"),
    ("dbname", "dbname"),
    ("user", "user"),
    ("password", "password"),
    ("options", "options"),
    ("application_name", "application_name"),
    ("connect_timeout", "connect_timeout"),
    ("tcp_user_timeout", "tcp_user_timeout"),
    ("keepalives", "keepalives"),
    ("keepalives_idle", "keepalives_idle"),
    ("keepalives_interval", "keepalives_interval"),
    ("keepalives_count", "keepalives_retries"),
    ("channel_binding", "channel_binding"),
    ("sslmode", "sslmode"),
    ("sslnegotiation", "sslnegotiation"),
    ("target_session_attrs", "target_session_attrs"),
    ("load_balance_hosts", "load_balance_hosts"),
];

/// libpq's blanks (C's `isspace` in the C locale).
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// True when `location` is a connection string: it starts with a libpq keyword and `=`
/// (see the module docs). Says nothing about the rest of the string.
pub(crate) fn is_conninfo(location: &str) -> bool {
    let rest = location.trim_start_matches(is_blank);
    let end = rest.find(|c: char| is_blank(c) || c == '=');
    let Some(end) = end else {
        return false;
    };
    LIBPQ_KEYWORDS.contains(&&rest[..end])
        && rest[end..].trim_start_matches(is_blank).starts_with('=')
}

/// The pairs of a connection string, in order, by libpq's rules. Errors name keywords and
/// byte positions, never values (one may be a password).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn parse(conninfo: &str) -> Result<Vec<(String, String)>> {
    let bad = |what: String| {
        Error::invalid(format!(
            "the PostgreSQL connection string is not libpq's key=value pairs: {what}"
        ))
    };
    let mut pairs = Vec::new();
    let mut chars = conninfo.char_indices().peekable();
    loop {
        while chars.next_if(|&(_, c)| is_blank(c)).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut keyword = String::new();
        while let Some((_, c)) = chars.next_if(|&(_, c)| !is_blank(c) && c != '=') {
            keyword.push(c);
        }
        while chars.next_if(|&(_, c)| is_blank(c)).is_some() {}
        if chars.next_if(|&(_, c)| c == '=').is_none() {
            return Err(bad(format!(
                "missing \"=\" after the keyword at byte {start}"
            )));
        }
        if keyword.is_empty() {
            return Err(bad(format!("a \"=\" without a keyword at byte {start}")));
        }
        while chars.next_if(|&(_, c)| is_blank(c)).is_some() {}
        let mut value = String::new();
        if chars.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(bad(format!(
                            "the quoted value of {} is not terminated",
                            name(&keyword)
                        )))
                    }
                    Some((_, '\'')) => break,
                    Some((_, '\\')) => {
                        if let Some((_, c)) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some((_, c)) => value.push(c),
                }
            }
        } else {
            while let Some((_, c)) = chars.next_if(|&(_, c)| !is_blank(c)) {
                if c == '\\' {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((keyword, value));
    }
    if pairs.is_empty() {
        return Err(bad("it is empty".to_string()));
    }
    Ok(pairs)
}

/// A keyword for a message: quoted when it looks like one, else described (a mistyped
/// string may split a password into "keywords").
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
fn name(keyword: &str) -> String {
    if keyword.len() <= 64
        && keyword
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        format!("{keyword:?}")
    } else {
        "a keyword".to_string()
    }
}

/// The pairs to connect with: each keyword once (its last value), empty values left out,
/// libpq's names turned into the driver's, `host=localhost` when no host is given (libpq
/// would try its Unix socket directory); an unknown or unsupported keyword is an error.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn driver_pairs(pairs: &[(String, String)]) -> Result<Vec<(&'static str, String)>> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut fallback_name = None;
    for (keyword, value) in pairs {
        let supported = SUPPORTED.iter().find(|(k, _)| k == keyword);
        let driver = match supported {
            Some((_, driver)) => *driver,
            None if keyword == "fallback_application_name" => {
                fallback_name = Some(value.clone()).filter(|v| !v.is_empty());
                continue;
            }
            None if LIBPQ_KEYWORDS.contains(&keyword.as_str()) => {
                return Err(Error::new(
                    ErrorCode::Unsupported,
                    format!(
                        "PostgreSQL connection string: {} is not supported by agent_mem's \
                         connections (supported: {})",
                        name(keyword),
                        SUPPORTED
                            .iter()
                            .map(|(k, _)| *k)
                            .chain(["fallback_application_name"])
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
            None => {
                return Err(Error::invalid(format!(
                    "PostgreSQL connection string: unknown keyword {}",
                    name(keyword)
                )))
            }
        };
        out.retain(|(k, _)| *k != driver);
        if !value.is_empty() {
            out.push((driver, value.clone()));
        }
    }
    if let Some(fallback) = fallback_name {
        if !out.iter().any(|(k, _)| *k == "application_name") {
            out.push(("application_name", fallback));
        }
    }
    if !out.iter().any(|(k, _)| matches!(*k, "host" | "hostaddr")) {
        out.push(("host", "localhost".to_string()));
    }
    Ok(out)
}

/// Pairs written back as a connection string, every value quoted (`'…'`, with `\'` and
/// `\\`), which the driver's parser reads back exactly.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn to_text<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The connection string for messages and [`crate::Memory::location`]: the pairs as given,
/// the password (and every other secret) as `***`; values quoted where libpq needs it.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn redact(pairs: &[(String, String)]) -> String {
    const SECRETS: [&str; 5] = [
        "password",
        "sslpassword",
        "oauth_client_secret",
        "scram_client_key",
        "scram_server_key",
    ];
    pairs
        .iter()
        .map(|(k, v)| {
            let shown = if SECRETS.contains(&k.as_str()) {
                "***".to_string()
            } else if v.is_empty() || v.contains(|c: char| is_blank(c) || c == '\'' || c == '\\') {
                format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
            } else {
                v.clone()
            };
            format!("{k}={shown}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn connection_strings_are_told_from_paths() {
        for yes in [
            "host=localhost",
            "dbname=memories user=agent",
            "  user = agent",
            "port\t=5432",
            "service=mine",
            "host=x/data.db",
        ] {
            assert!(is_conninfo(yes), "{yes}");
        }
        for no in [
            "memories.db",
            "./host=x.db",
            "data/host=x.db",
            "backup=2.db",
            "hostname=x",
            "host",
            "host x=1",
            "",
            ":memory:",
            "postgres://h/db",
            "=host",
        ] {
            assert!(!is_conninfo(no), "{no}");
        }
    }

    #[test]
    fn values_plain_quoted_and_escaped() {
        assert_eq!(
            pairs("host=h port=5 dbname=d"),
            owned(&[("host", "h"), ("port", "5"), ("dbname", "d")])
        );
        // Blanks around "=", and leading and trailing blanks.
        assert_eq!(
            pairs("  host = h\t\nuser\t=u  "),
            owned(&[("host", "h"), ("user", "u")])
        );
        // Quotes keep blanks; backslash escapes in and out of quotes.
        assert_eq!(
            pairs(r"password='it\'s \\ x' options='-csearch_path=s,public'"),
            owned(&[
                ("password", r"it's \ x"),
                ("options", "-csearch_path=s,public")
            ])
        );
        assert_eq!(
            pairs(r"password=a\ b\\c\'d user=u"),
            owned(&[("password", r"a b\c'd"), ("user", "u")])
        );
        // An empty value, quoted or at the end; a closing quote needs no blank after it.
        assert_eq!(
            pairs("password='' host='h'port=1 user="),
            owned(&[("password", ""), ("host", "h"), ("port", "1"), ("user", "")])
        );
        // As in libpq, a blank after "=" is skipped: the value is what follows.
        assert_eq!(pairs("host= dbname=d"), owned(&[("host", "dbname=d")]));
        // Values may hold "=" and any character.
        assert_eq!(
            pairs("password=p=w€rd host=/run/postgresql"),
            owned(&[("password", "p=w€rd"), ("host", "/run/postgresql")])
        );
    }

    #[test]
    fn malformed_strings_are_refused_without_their_values() {
        for (text, needle) in [
            ("host=h s3cret", "missing \"=\""),
            ("host=h password='s3cret", "not terminated"),
            ("host=h =s3cret", "without a keyword"),
            ("", "empty"),
            ("   ", "empty"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidInput, "{text}");
            assert!(e.message().contains(needle), "{text}: {}", e.message());
            assert!(!e.message().contains("s3cret"), "{}", e.message());
        }
    }

    #[test]
    fn keywords_map_onto_the_driver() {
        let given = pairs(
            "host=a host=b port='' keepalives_count=3 fallback_application_name=app \
             password='p w'",
        );
        assert_eq!(
            driver_pairs(&given).unwrap(),
            vec![
                ("host", "b".to_string()),
                ("keepalives_retries", "3".to_string()),
                ("password", "p w".to_string()),
                ("application_name", "app".to_string()),
            ]
        );
        let named = pairs("application_name=mine fallback_application_name=app");
        assert_eq!(
            driver_pairs(&named).unwrap(),
            vec![
                ("application_name", "mine".to_string()),
                ("host", "localhost".to_string())
            ]
        );
        let socket = pairs("hostaddr=127.0.0.1 dbname=d");
        assert_eq!(
            driver_pairs(&socket).unwrap(),
            vec![
                ("hostaddr", "127.0.0.1".to_string()),
                ("dbname", "d".to_string())
            ]
        );
        let e = driver_pairs(&pairs("host=h sslcert=/c.pem")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Unsupported);
        assert!(e.message().contains("\"sslcert\""), "{}", e.message());
        let e = driver_pairs(&pairs("host=h colour=blue")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidInput);
        assert!(e.message().contains("\"colour\""), "{}", e.message());
        assert!(!e.message().contains("blue"), "{}", e.message());
    }

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn without_the_feature_a_connection_string_is_unsupported() {
        for location in ["host=localhost dbname=memories", "postgres://h/db"] {
            let e = crate::Memory::builder()
                .path(location)
                .without_embedder()
                .build()
                .unwrap_err();
            assert_eq!(e.code(), ErrorCode::Unsupported, "{location}: {e}");
        }
    }

    #[test]
    fn written_back_and_redacted() {
        let given = pairs(r"host=h password='it\'s \\ x' options='-c a=b' user=''");
        assert_eq!(
            to_text(given.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            r"host='h' password='it\'s \\ x' options='-c a=b' user=''"
        );
        assert_eq!(
            parse(&to_text(
                given.iter().map(|(k, v)| (k.as_str(), v.as_str()))
            ))
            .unwrap(),
            given
        );
        assert_eq!(
            redact(&given),
            "host=h password=*** options='-c a=b' user=''"
        );
    }
}
