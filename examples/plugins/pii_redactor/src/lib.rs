//! # pii_redactor: an agent_mem hook plugin
//!
//! Removes personal data from a memory before it is stored:
//!
//! - `email` → `[email]`: e-mail addresses (`alice.smith+tag@mail.example.co.uk`).
//! - `phone` → `[phone]`: 9–15 digits, in `+` international form or a common national form
//!   grouped by spaces, dashes, dots or parentheses (`+1 (555) 123-4567`,
//!   `+44 (0)20 7946 0958`, `06 12 34 56 78`, `555.123.4567`, `138-0013-8000`); a bare run
//!   of digits only when it is a Chinese mobile number (`13812345678`) or a national number
//!   with the trunk prefix 0 (10–11 digits, `0301234567`).
//! - `card` → `[card]`: payment card numbers, 13–19 digits optionally grouped by single
//!   spaces or dashes, passing the Luhn check (`4111 1111 1111 1111`, `3782 822463 10005`).
//! - `ip` → `[ip]`: IPv4 addresses (`192.168.1.20`; not `1.2.3.4.5` nor `v1.2.3.4`).
//!
//! The scanners are hand-written (no regex crate, to keep the module small) and heuristic:
//! they prefer redacting a number that merely looks like a phone number to storing a real
//! one. Every pattern is pure ASCII, so matches start and end on ASCII bytes and text in
//! any other script (Chinese, Japanese, …) around them is copied unchanged.
//!
//! ## Exports
//! - `on_add` (hook): input `{"content": "…", "metadata": {…}, …}`. When something was
//!   redacted the output is `{"content": "<redacted>", "metadata": {<input metadata>,
//!   "pii_redacted": {"email": 1, "phone": 2}}}` (only the kinds found); when nothing was
//!   found, `{}`. With config `reject` naming a kind that was found, the output is
//!   `{"reject": "contains a payment card number"}` instead, and nothing is stored.
//! - `redact` (plain function for the application): input the text, output the redacted text.
//!
//! ## Capabilities
//! - `config` to read the config keys below (without it the defaults apply);
//! - `logging` only when config `log` is `true`.
//!
//! ## Config keys
//! - `reject` (optional): comma-separated kinds among `email`, `phone`, `card`, `ip`
//!   (e.g. `card` or `card,email`); a memory containing one of them is refused.
//! - `log` (optional, `true`/`false`): after redacting (or refusing), call the host's
//!   `am_log` with a summary such as `pii_redactor: redacted 1 email, 1 phone`.

use extism_pdk::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[host_fn("extism:host/user")]
extern "ExtismHost" {
    fn am_log(message: String);
}

/// A kind of personal data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Email,
    Phone,
    Card,
    Ip,
}

const KINDS: [Kind; 4] = [Kind::Email, Kind::Phone, Kind::Card, Kind::Ip];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Card => "card",
            Kind::Ip => "ip",
        }
    }

    fn placeholder(self) -> &'static str {
        match self {
            Kind::Email => "[email]",
            Kind::Phone => "[phone]",
            Kind::Card => "[card]",
            Kind::Ip => "[ip]",
        }
    }

    /// Noun phrase for a refusal reason.
    fn described(self) -> &'static str {
        match self {
            Kind::Email => "an e-mail address",
            Kind::Phone => "a phone number",
            Kind::Card => "a payment card number",
            Kind::Ip => "an IP address",
        }
    }

    /// "1 email", "2 phones", "1 IP address" for the log line.
    fn counted(self, n: usize) -> String {
        let (one, many) = match self {
            Kind::Email => ("email", "emails"),
            Kind::Phone => ("phone", "phones"),
            Kind::Card => ("card", "cards"),
            Kind::Ip => ("IP address", "IP addresses"),
        };
        format!("{n} {}", if n == 1 { one } else { many })
    }

    fn parse(s: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.name().eq_ignore_ascii_case(s))
    }
}

/// One match: byte range `start..end` of the text (both on ASCII bytes, hence on char
/// boundaries).
#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    end: usize,
    kind: Kind,
}

/// Finds every piece of personal data, in text order, without overlaps. The scanners run
/// from the most to the least specific: e-mail, IP, card, phone.
fn find_pii(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    scan_emails(b, &mut spans);
    scan_ips(b, &mut spans);
    scan_cards(b, &mut spans);
    scan_phones(b, &mut spans);
    spans.sort_by_key(|s| s.start);
    spans
}

/// The redacted text and the number of matches per kind (in `KINDS` order).
fn redact_text(text: &str) -> (String, [usize; 4]) {
    let spans = find_pii(text);
    let mut counts = [0usize; 4];
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for s in &spans {
        out.push_str(&text[last..s.start]);
        out.push_str(s.kind.placeholder());
        last = s.end;
        counts[KINDS.iter().position(|k| *k == s.kind).unwrap_or(0)] += 1;
    }
    out.push_str(&text[last..]);
    (out, counts)
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn free(spans: &[Span], start: usize, end: usize) -> bool {
    spans.iter().all(|s| end <= s.start || start >= s.end)
}

fn scan_emails(b: &[u8], spans: &mut Vec<Span>) {
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain = |c: u8| c.is_ascii_alphanumeric() || c == b'-' || c == b'.';
    for at in 0..b.len() {
        if b[at] != b'@' {
            continue;
        }
        let mut start = at;
        while start > 0 && local(b[start - 1]) {
            start -= 1;
        }
        while start < at && b[start] == b'.' {
            start += 1;
        }
        if start == at {
            continue;
        }
        let mut end = at + 1;
        while end < b.len() && domain(b[end]) {
            end += 1;
        }
        while end > at + 1 && (b[end - 1] == b'.' || b[end - 1] == b'-') {
            end -= 1;
        }
        let labels: Vec<&[u8]> = b[at + 1..end].split(|c| *c == b'.').collect();
        let tld = labels[labels.len() - 1];
        let ok = labels.len() >= 2
            && labels
                .iter()
                .all(|l| !l.is_empty() && l[0] != b'-' && l[l.len() - 1] != b'-')
            && tld.len() >= 2
            && tld.iter().all(u8::is_ascii_alphabetic);
        if ok && free(spans, start, end) {
            spans.push(Span {
                start,
                end,
                kind: Kind::Email,
            });
        }
    }
}

/// Reads up to `max` ASCII digits from `i`; returns the end position (== i when none).
fn digits(b: &[u8], i: usize, max: usize) -> usize {
    let mut j = i;
    while j < b.len() && j - i < max && b[j].is_ascii_digit() {
        j += 1;
    }
    j
}

fn scan_ips(b: &[u8], spans: &mut Vec<Span>) {
    let mut i = 0;
    while i < b.len() {
        let starts = b[i].is_ascii_digit() && (i == 0 || !(is_word(b[i - 1]) || b[i - 1] == b'.'));
        if starts {
            if let Some(end) = ipv4_at(b, i) {
                if free(spans, i, end) {
                    spans.push(Span {
                        start: i,
                        end,
                        kind: Kind::Ip,
                    });
                    i = end;
                    continue;
                }
            }
        }
        i += 1;
    }
}

/// An IPv4 address starting at `i`: four octets 0–255 and no digit, letter or `.digit`
/// right after (so `1.2.3.4.5` and version strings are not addresses).
fn ipv4_at(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    for octet in 0..4 {
        let end = digits(b, j, 3);
        if end == j || (end < b.len() && b[end].is_ascii_digit()) {
            return None;
        }
        let value: u32 = b[j..end]
            .iter()
            .fold(0, |v, c| v * 10 + u32::from(c - b'0'));
        if value > 255 {
            return None;
        }
        j = end;
        if octet < 3 {
            if j >= b.len() || b[j] != b'.' {
                return None;
            }
            j += 1;
        }
    }
    let after_ok = j == b.len()
        || !(is_word(b[j]) || (b[j] == b'.' && j + 1 < b.len() && b[j + 1].is_ascii_digit()));
    after_ok.then_some(j)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let v = u32::from(*d);
            if i % 2 == 1 {
                let v = v * 2;
                if v > 9 {
                    v - 9
                } else {
                    v
                }
            } else {
                v
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn scan_cards(b: &[u8], spans: &mut Vec<Span>) {
    let mut i = 0;
    'outer: while i < b.len() {
        let starts = b[i].is_ascii_digit()
            && (i == 0 || !(is_word(b[i - 1]) || b[i - 1] == b'+' || b[i - 1] == b'.'));
        if !starts {
            i += 1;
            continue;
        }
        // Groups of digits joined by single spaces or dashes; remember where each group ends.
        let mut ds: Vec<u8> = Vec::new();
        let mut group_ends: Vec<(usize, usize)> = Vec::new(); // (byte end, digits so far)
        let mut j = i;
        loop {
            while j < b.len() && b[j].is_ascii_digit() {
                ds.push(b[j] - b'0');
                j += 1;
            }
            group_ends.push((j, ds.len()));
            if ds.len() > 19 {
                break;
            }
            if j + 1 < b.len() && (b[j] == b' ' || b[j] == b'-') && b[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        // The longest prefix ending at a group end that is a valid card number.
        for &(end, n) in group_ends.iter().rev() {
            if !(13..=19).contains(&n) {
                continue;
            }
            if end < b.len() && is_word(b[end]) {
                continue;
            }
            let number = &ds[..n];
            if luhn(number) && number.iter().any(|d| *d != 0) && free(spans, i, end) {
                spans.push(Span {
                    start: i,
                    end,
                    kind: Kind::Card,
                });
                i = end;
                continue 'outer;
            }
        }
        i += 1;
    }
}

fn scan_phones(b: &[u8], spans: &mut Vec<Span>) {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next_digit = i + 1 < b.len() && b[i + 1].is_ascii_digit();
        // Not inside a longer run of digit groups (`4111 1111 1111 1112` is no phone
        // number, and neither is its tail `1111 1111 1112`).
        let continuation = i >= 2
            && matches!(b[i - 1], b' ' | b'-' | b'.')
            && (b[i - 2].is_ascii_digit() || b[i - 2] == b')');
        let starts = (c.is_ascii_digit() || ((c == b'+' || c == b'(') && next_digit))
            && (i == 0 || !(is_word(b[i - 1]) || b[i - 1] == b'.' || b[i - 1] == b'+'))
            && !(c.is_ascii_digit() && continuation);
        if starts {
            if let Some(end) = phone_at(b, i) {
                if free(spans, i, end) {
                    spans.push(Span {
                        start: i,
                        end,
                        kind: Kind::Phone,
                    });
                    i = end;
                    continue;
                }
            }
        }
        i += 1;
    }
}

/// A phone number starting at `i` (on `+`, `(` or a digit): its end, or None.
fn phone_at(b: &[u8], i: usize) -> Option<usize> {
    let at = |k: usize| b.get(k).copied().unwrap_or(0);
    let mut j = i;
    let plus = at(j) == b'+';
    if plus {
        j += 1;
    }
    let mut groups: Vec<&[u8]> = Vec::new();
    let mut seps: Vec<u8> = Vec::new();
    let mut parens = false;
    let end;
    loop {
        let open = at(j) == b'(';
        if open {
            j += 1;
            parens = true;
        }
        let gend = digits(b, j, usize::MAX);
        if gend == j {
            return None;
        }
        groups.push(&b[j..gend]);
        j = gend;
        if open {
            if at(j) != b')' {
                return None;
            }
            j += 1;
        }
        // A separator (one of ` -.`, or none right after a closing parenthesis), then either
        // digits or an opening parenthesis.
        let mut k = j;
        let sep = at(k);
        if matches!(sep, b' ' | b'-' | b'.') {
            k += 1;
        }
        let continues = (at(k).is_ascii_digit() && (k > j || open))
            || (at(k) == b'(' && at(k + 1).is_ascii_digit());
        if !continues || groups.len() > 6 {
            end = j;
            break;
        }
        seps.push(if k > j { sep } else { b')' });
        j = k;
    }
    if end < b.len() && is_word(b[end]) {
        return None;
    }
    let n: usize = groups.iter().map(|g| g.len()).sum();
    if !(9..=15).contains(&n) || groups.len() > 6 {
        return None;
    }
    let value = |g: &[u8]| {
        g.iter().fold(0u32, |v, c| {
            v.saturating_mul(10).saturating_add(u32::from(c - b'0'))
        })
    };
    // Dotted numbers: all separators dots, at least three groups (555.123.4567), which
    // leaves out decimals such as 3.14159265.
    if seps.contains(&b'.') && (seps.iter().any(|s| *s != b'.') || groups.len() < 3 || parens) {
        return None;
    }
    // Dates followed by a time (2024-01-15 10:30) or a list of years are not phones.
    let year = |g: &[u8]| g.len() == 4 && (1900..=2099).contains(&value(g));
    if !plus
        && groups.len() >= 3
        && year(groups[0])
        && groups[1].len() <= 2
        && (1..=12).contains(&value(groups[1]))
        && groups[2].len() <= 2
        && (1..=31).contains(&value(groups[2]))
    {
        return None;
    }
    if !plus && groups.len() >= 2 && groups.iter().all(|g| year(g)) {
        return None;
    }
    if !plus && !parens && groups.len() == 1 {
        // A bare run of digits: only the shapes that are almost surely phone numbers.
        let g = groups[0];
        let cn_mobile = g.len() == 11 && g[0] == b'1' && (b'3'..=b'9').contains(&g[1]);
        let trunk = (10..=11).contains(&g.len()) && g[0] == b'0';
        if !(cn_mobile || trunk) {
            return None;
        }
    }
    Some(end)
}

fn flag(value: Option<String>) -> bool {
    value.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on"
        )
    })
}

fn reject_kinds() -> Result<Vec<Kind>, Error> {
    let Some(list) = config::get("reject")? else {
        return Ok(Vec::new());
    };
    let mut kinds = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let kind = Kind::parse(item).ok_or_else(|| {
            Error::msg(format!(
                "pii_redactor: unknown kind '{item}' in config 'reject' (expected a comma-separated list of: email, phone, card, ip)"
            ))
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

fn log(message: String) -> Result<(), Error> {
    unsafe { am_log(message) }
}

#[derive(Deserialize)]
struct AddInput {
    content: String,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
}

/// Hook: redact the content of a memory about to be stored (or refuse it).
#[plugin_fn]
pub fn on_add(input: String) -> FnResult<Json<Value>> {
    let input: AddInput = serde_json::from_str(&input)
        .map_err(|e| Error::msg(format!("pii_redactor on_add: malformed input: {e}")))?;
    let reject = reject_kinds()?;
    let logging = flag(config::get("log")?);

    let (content, counts) = redact_text(&input.content);
    let found: Vec<(Kind, usize)> = KINDS
        .into_iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .collect();
    if found.is_empty() {
        return Ok(Json(json!({})));
    }

    let refused: Vec<Kind> = found
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| reject.contains(k))
        .collect();
    if !refused.is_empty() {
        let what: Vec<&str> = refused.iter().map(|k| k.described()).collect();
        let reason = match what.as_slice() {
            [one] => format!("contains {one}"),
            [init @ .., last] => format!("contains {} and {last}", init.join(", ")),
            [] => unreachable!(),
        };
        if logging {
            log(format!("pii_redactor: refused a memory: {reason}"))?;
        }
        return Ok(Json(json!({ "reject": reason })));
    }

    let mut metadata = input.metadata.unwrap_or_default();
    let summary: Map<String, Value> = found
        .iter()
        .map(|(k, n)| (k.name().to_string(), json!(n)))
        .collect();
    metadata.insert("pii_redacted".to_string(), Value::Object(summary));
    if logging {
        let parts: Vec<String> = found.iter().map(|(k, n)| k.counted(*n)).collect();
        log(format!("pii_redactor: redacted {}", parts.join(", ")))?;
    }
    Ok(Json(json!({ "content": content, "metadata": metadata })))
}

/// Plain function for the application: text in, redacted text out.
#[plugin_fn]
pub fn redact(text: String) -> FnResult<String> {
    Ok(redact_text(&text).0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        redact_text(s).0
    }

    #[test]
    fn redacts() {
        assert_eq!(r("mail alice.smith+x@mail.example.co.uk."), "mail [email].");
        assert_eq!(r("call +1 (555) 123-4567 now"), "call [phone] now");
        assert_eq!(
            r("电话13812345678，邮箱bob@example.cn谢谢"),
            "电话[phone]，邮箱[email]谢谢"
        );
        assert_eq!(
            r("card 4111 1111 1111 1111 exp 12/25"),
            "card [card] exp 12/25"
        );
        assert_eq!(r("card 4111 1111 1111 1112"), "card 4111 1111 1111 1112");
        assert_eq!(
            r("server 10.0.0.1:8080, v1.2.3.4, 1.2.3.4.5"),
            "server [ip]:8080, v1.2.3.4, 1.2.3.4.5"
        );
        assert_eq!(
            r("pi is 3.14159265 and 2024-01-15 10:30"),
            "pi is 3.14159265 and 2024-01-15 10:30"
        );
        assert_eq!(r("+44 (0)20 7946 0958"), "[phone]");
        assert_eq!(r("06 12 34 56 78 / 555.123.4567"), "[phone] / [phone]");
        assert_eq!(r("order 1234567890"), "order 1234567890");
    }

    #[test]
    fn more_shapes() {
        assert_eq!(
            r("メール：taro@example.jp、電話：090-1234-5678です"),
            "メール：[email]、電話：[phone]です"
        );
        assert_eq!(
            r("+86 138 0013 8000 或 (555)123-4567"),
            "[phone] 或 [phone]"
        );
        assert_eq!(
            r("amex 3782 822463 10005, visa 4111-1111-1111-1111"),
            "amex [card], visa [card]"
        );
        assert_eq!(r("zeros 0000 0000 0000 0000"), "zeros 0000 0000 0000 0000");
        assert_eq!(r("years 2019 2020 2021 2022"), "years 2019 2020 2021 2022");
        assert_eq!(r("ip 256.1.1.1 and 8.8.8.8."), "ip 256.1.1.1 and [ip].");
        assert_eq!(r("user@localhost or a@b.c"), "user@localhost or a@b.c");
        assert_eq!(
            r("x4111111111111111 4111111111111111y"),
            "x4111111111111111 4111111111111111y"
        );
        assert_eq!(r("卡号4111111111111111。"), "卡号[card]。");
        assert_eq!(
            r("tel +49 30 1234567, fax 0301234567"),
            "tel [phone], fax [phone]"
        );
    }
}
