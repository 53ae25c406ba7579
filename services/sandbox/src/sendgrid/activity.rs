//! The Email Activity API's `query` (`GET /v3/messages?query=...`), which the mesh uses to find
//! out whether a send whose answer was lost went out: clauses joined by `AND`, each
//! `field = "value"` or `field LIKE 'pattern%'`. Fields: `msg_id`, `to_email`, `from_email`,
//! `subject`, `status`, and `unique_args['KEY']` (the mail's `custom_args`).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// One recipient's copy of an accepted mail, as the Activity API reports it.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    /// `<X-Message-Id>.<n>`: like SendGrid's per-recipient `sg_message_id`, it extends the
    /// request's `X-Message-Id`, so `msg_id LIKE '<X-Message-Id>%'` finds every copy.
    pub(crate) msg_id: String,
    pub(crate) from_email: String,
    pub(crate) to_email: String,
    pub(crate) subject: Option<String>,
    /// The request's `custom_args` overlaid with the personalization's.
    pub(crate) custom_args: BTreeMap<String, String>,
    pub(crate) at: DateTime<Utc>,
}

impl Sent {
    pub(crate) fn json(&self) -> Value {
        json!({
            "from_email": self.from_email,
            "msg_id": self.msg_id,
            "subject": self.subject,
            "to_email": self.to_email,
            "status": "delivered",
            "opens_count": 0,
            "clicks_count": 0,
            "last_event_time": self.at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    MsgId,
    ToEmail,
    FromEmail,
    Subject,
    Status,
    UniqueArg(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    Like,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Clause {
    field: Field,
    op: Op,
    value: String,
}

/// Parses a query; the error says what could not be read.
pub(crate) fn parse(query: &str) -> Result<Vec<Clause>, String> {
    let mut p = Parser {
        chars: query.chars().collect(),
        at: 0,
    };
    let mut clauses = Vec::new();
    p.skip_ws();
    if p.done() {
        return Ok(clauses);
    }
    loop {
        clauses.push(p.clause()?);
        p.skip_ws();
        if p.done() {
            return Ok(clauses);
        }
        let word = p.word();
        if !word.eq_ignore_ascii_case("AND") {
            return Err(format!(
                "expected AND between conditions, found '{word}' (OR is not supported)"
            ));
        }
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn done(&self) -> bool {
        self.at >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn word(&mut self) -> String {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    fn quoted(&mut self) -> Result<String, String> {
        let quote = match self.peek() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err("expected a quoted value".into()),
        };
        self.at += 1;
        let start = self.at;
        while self.peek().is_some_and(|c| c != quote) {
            self.at += 1;
        }
        if self.done() {
            return Err("unterminated quoted value".into());
        }
        let value = self.chars[start..self.at].iter().collect();
        self.at += 1;
        Ok(value)
    }

    fn clause(&mut self) -> Result<Clause, String> {
        self.skip_ws();
        let name = self.word();
        let field = match name.to_ascii_lowercase().as_str() {
            "msg_id" => Field::MsgId,
            "to_email" => Field::ToEmail,
            "from_email" => Field::FromEmail,
            "subject" => Field::Subject,
            "status" => Field::Status,
            "unique_args" => {
                if self.peek() != Some('[') {
                    return Err("unique_args needs a key: unique_args['KEY']".into());
                }
                self.at += 1;
                let key = self.quoted()?;
                if self.peek() != Some(']') {
                    return Err("expected ] after the unique_args key".into());
                }
                self.at += 1;
                Field::UniqueArg(key)
            }
            "" => return Err("expected a field name".into()),
            other => return Err(format!("unsupported field '{other}'")),
        };
        self.skip_ws();
        let op = if self.peek() == Some('=') {
            self.at += 1;
            Op::Eq
        } else if self.peek() == Some('!') && self.chars.get(self.at + 1) == Some(&'=') {
            self.at += 2;
            Op::NotEq
        } else {
            let word = self.word();
            if !word.eq_ignore_ascii_case("LIKE") {
                return Err(format!("unsupported operator after {name}: use =, != or LIKE"));
            }
            Op::Like
        };
        self.skip_ws();
        let value = self.quoted()?;
        Ok(Clause { field, op, value })
    }
}

/// SQL `LIKE` with `%` (any run) and `_` (any one character), case-insensitive as SendGrid's is.
fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    // Classic wildcard matching with one backtrack point.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '_' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '%' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '%')
}

/// True when `sent` satisfies every clause.
pub(crate) fn matches(clauses: &[Clause], sent: &Sent) -> bool {
    clauses.iter().all(|c| {
        let actual = match &c.field {
            Field::MsgId => Some(sent.msg_id.as_str()),
            Field::ToEmail => Some(sent.to_email.as_str()),
            Field::FromEmail => Some(sent.from_email.as_str()),
            Field::Subject => sent.subject.as_deref(),
            Field::Status => Some("delivered"),
            Field::UniqueArg(key) => sent.custom_args.get(key).map(String::as_str),
        };
        match (&c.op, actual) {
            (Op::Eq, Some(a)) => a == c.value,
            (Op::NotEq, a) => a != Some(c.value.as_str()),
            (Op::Like, Some(a)) => like(a, &c.value),
            (_, None) => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent() -> Sent {
        Sent {
            msg_id: "AbC123.0".into(),
            from_email: "care@example.test".into(),
            to_email: "ada.example@example.test".into(),
            subject: Some("Your code".into()),
            custom_args: [("outbox_id".to_owned(), "ob_42".to_owned())].into_iter().collect(),
            at: Utc::now(),
        }
    }

    #[test]
    fn unique_args_and_msg_id_queries_match() {
        let s = sent();
        for q in [
            "unique_args['outbox_id']=\"ob_42\"",
            "unique_args[\"outbox_id\"] = 'ob_42' AND to_email=\"ada.example@example.test\"",
            "msg_id LIKE 'AbC123%'",
            "msg_id like 'abc123%' and status = \"delivered\"",
            "",
        ] {
            assert!(matches(&parse(q).unwrap(), &s), "{q}");
        }
        for q in [
            "unique_args['outbox_id']=\"ob_43\"",
            "unique_args['other']=\"ob_42\"",
            "msg_id LIKE 'X%'",
        ] {
            assert!(!matches(&parse(q).unwrap(), &s), "{q}");
        }
    }

    #[test]
    fn unreadable_queries_say_why() {
        assert!(parse("unique_args=\"x\"").unwrap_err().contains("needs a key"));
        assert!(parse("msg_id=\"a\" OR msg_id=\"b\"").unwrap_err().contains("OR"));
        assert!(parse("clicks > 1").unwrap_err().contains("unsupported field"));
        assert!(parse("msg_id=\"a").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn like_handles_wildcards() {
        assert!(like("abc.0", "abc%"));
        assert!(like("abc.0", "%.0"));
        assert!(like("abc.0", "a_c%"));
        assert!(!like("abc.0", "abd%"));
        assert!(like("", "%"));
    }
}
