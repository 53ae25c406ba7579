//! The v3 mail/send body (external-apis.md §2), checked the way SendGrid checks it: every problem
//! is reported at once, each naming the field by its JSON path (`personalizations.0.to.1.email`).

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::errors::FieldError;

const MAX_PERSONALIZATIONS: usize = 1000;
const MAX_RECIPIENTS: usize = 1000;
const MAX_CATEGORIES: usize = 10;
const MAX_CUSTOM_ARGS_BYTES: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    pub(crate) email: String,
    pub(crate) name: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Personalization {
    pub(crate) to: Vec<Address>,
    pub(crate) cc: Vec<Address>,
    pub(crate) bcc: Vec<Address>,
    pub(crate) subject: Option<String>,
    pub(crate) custom_args: BTreeMap<String, String>,
    pub(crate) substitutions: Vec<(String, String)>,
    pub(crate) dynamic_template_data: Option<Value>,
}

impl Personalization {
    pub(crate) fn recipients(&self) -> impl Iterator<Item = &Address> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }
}

/// An accepted request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Mail {
    pub(crate) from: Option<Address>,
    pub(crate) subject: Option<String>,
    pub(crate) text: Option<String>,
    pub(crate) html: Option<String>,
    pub(crate) template_id: Option<String>,
    pub(crate) categories: Vec<String>,
    pub(crate) custom_args: BTreeMap<String, String>,
    pub(crate) personalizations: Vec<Personalization>,
    /// `mail_settings.sandbox_mode.enable`: validated, answered 200, never sent.
    pub(crate) sandbox_mode: bool,
}

impl Mail {
    pub(crate) fn recipient_count(&self) -> usize {
        self.personalizations.iter().map(|p| p.recipients().count()).sum()
    }
}

/// Close enough to SendGrid's check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub(crate) fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>(),;:\"[]\\".contains(c))
}

/// Collects errors while walking the body.
struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// A non-empty string, or `None` (absent or null); anything else is an error.
    fn string(&mut self, v: Option<&Value>, field: &str) -> Option<String> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(field, "Invalid type. Expected: string.");
                None
            }
        }
    }

    /// `{email, name?}`; `None` after reporting what is wrong.
    fn address(&mut self, v: &Value, field: &str) -> Option<Address> {
        let Some(obj) = v.as_object() else {
            self.err(
                field,
                "Invalid type. Expected: object, e.g. {\"email\": \"example@example.com\"}.",
            );
            return None;
        };
        let name = self.string(obj.get("name"), &format!("{field}.name"));
        match obj.get("email") {
            Some(Value::String(email)) if valid_email(email) => Some(Address {
                email: email.clone(),
                name,
            }),
            Some(Value::String(_)) => {
                self.err(format!("{field}.email"), "Does not contain a valid address.");
                None
            }
            _ => {
                self.err(
                    format!("{field}.email"),
                    "The email parameter is required and must be a string containing a valid address.",
                );
                None
            }
        }
    }

    fn addresses(&mut self, v: Option<&Value>, field: &str) -> Vec<Address> {
        match v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.address(item, &format!("{field}.{i}")))
                .collect(),
            Some(_) => {
                self.err(field, "Invalid type. Expected: array.");
                Vec::new()
            }
        }
    }

    /// An object of string values (`custom_args`, `substitutions`).
    fn string_map(&mut self, v: Option<&Value>, field: &str) -> Vec<(String, String)> {
        match v {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k.clone(), s.clone())),
                    _ => {
                        self.err(format!("{field}.{k}"), "Invalid type. Expected: string.");
                        None
                    }
                })
                .collect(),
            Some(_) => {
                self.err(field, "Invalid type. Expected: object.");
                Vec::new()
            }
        }
    }

    fn custom_args(&mut self, v: Option<&Value>, field: &str) -> BTreeMap<String, String> {
        let args: BTreeMap<String, String> = self.string_map(v, field).into_iter().collect();
        let size = serde_json::to_string(&args).map_or(0, |s| s.len());
        if size > MAX_CUSTOM_ARGS_BYTES {
            self.err(field, "The custom_args may not exceed 10,000 bytes.");
        }
        args
    }
}

/// Validates a mail/send body.
pub(crate) fn validate(body: &Value) -> Result<Mail, Vec<FieldError>> {
    let mut c = Check { errors: Vec::new() };
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError {
            field: None,
            message: "Bad Request".into(),
        }]);
    };
    let mut mail = Mail {
        template_id: c.string(obj.get("template_id"), "template_id"),
        subject: c.string(obj.get("subject"), "subject"),
        ..Mail::default()
    };

    match obj.get("from") {
        Some(from @ Value::Object(_)) => mail.from = c.address(from, "from"),
        _ => c.err(
            "from.email",
            "The from object must be provided for every email send. It is an object that requires the email \
             parameter, but may also contain a name parameter.  e.g. {\"email\" : \"example@example.com\"}  or \
             {\"email\" : \"example@example.com\", \"name\" : \"Example Recipient\"}.",
        ),
    }
    if let Some(reply_to @ Value::Object(_)) = obj.get("reply_to") {
        c.address(reply_to, "reply_to");
    }
    c.addresses(obj.get("reply_to_list"), "reply_to_list");

    content(&mut c, obj, &mut mail);
    personalizations(&mut c, obj, &mut mail);

    match obj.get("categories") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            if items.len() > MAX_CATEGORIES {
                c.err("categories", "You cannot have more than 10 categories per request.");
            }
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) if !s.is_empty() && s.len() <= 255 => mail.categories.push(s.to_owned()),
                    _ => c.err(
                        format!("categories.{i}"),
                        "A category must be a string of 1 to 255 characters.",
                    ),
                }
            }
        }
        Some(_) => c.err("categories", "Invalid type. Expected: array."),
    }
    mail.custom_args = c.custom_args(obj.get("custom_args"), "custom_args");

    if let Some(attachments) = obj.get("attachments").and_then(Value::as_array) {
        for (i, a) in attachments.iter().enumerate() {
            for key in ["content", "filename"] {
                if a.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                    c.err(
                        format!("attachments.{i}.{key}"),
                        format!("The attachment {key} is required and must be a non-empty string."),
                    );
                }
            }
        }
    }
    mail.sandbox_mode = obj
        .get("mail_settings")
        .and_then(|s| s.get("sandbox_mode"))
        .and_then(|s| s.get("enable"))
        .and_then(Value::as_bool)
        .unwrap_or(false);

    // Subject: at the top, or in every personalization, or supplied by a template.
    let every_personalization_has_one =
        !mail.personalizations.is_empty() && mail.personalizations.iter().all(|p| p.subject.is_some());
    if mail.subject.is_none() && mail.template_id.is_none() && !every_personalization_has_one {
        c.err(
            "subject",
            "The subject is required. You can get around this requirement if you use a template with a subject \
             defined or if every personalization has a subject defined.",
        );
    }

    if c.errors.is_empty() {
        Ok(mail)
    } else {
        Err(c.errors)
    }
}

fn content(c: &mut Check, obj: &Map<String, Value>, mail: &mut Mail) {
    let blocks = match obj.get("content") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => {
            c.err("content", "Invalid type. Expected: array.");
            return;
        }
    };
    if blocks.is_empty() && mail.template_id.is_none() {
        c.err(
            "content",
            "Unless a valid template_id is provided, the content parameter is required. There must be at least one \
             defined content block. We typically suggest both text/plain and text/html blocks are included, but \
             only one block is required.",
        );
    }
    for (i, block) in blocks.iter().enumerate() {
        let kind = block.get("type").and_then(Value::as_str).filter(|s| !s.is_empty());
        let value = block.get("value").and_then(Value::as_str).filter(|s| !s.is_empty());
        if kind.is_none() {
            c.err(
                format!("content.{i}.type"),
                "The content type must be a string at least one character in length.",
            );
        }
        if value.is_none() {
            c.err(
                format!("content.{i}.value"),
                "The content value must be a string at least one character in length.",
            );
        }
        if let (Some(kind), Some(value)) = (kind, value) {
            if kind.eq_ignore_ascii_case("text/plain") && mail.text.is_none() {
                mail.text = Some(value.to_owned());
            } else if kind.eq_ignore_ascii_case("text/html") && mail.html.is_none() {
                mail.html = Some(value.to_owned());
            }
        }
    }
}

fn personalizations(c: &mut Check, obj: &Map<String, Value>, mail: &mut Mail) {
    let items = match obj.get("personalizations") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            c.err(
                "personalizations",
                "The personalizations field is required and must have at least one personalization.",
            );
            return;
        }
    };
    if items.len() > MAX_PERSONALIZATIONS {
        c.err(
            "personalizations",
            "The personalizations field must have no more than 1000 personalizations.",
        );
        return;
    }
    for (i, item) in items.iter().enumerate() {
        let field = format!("personalizations.{i}");
        let Some(p) = item.as_object() else {
            c.err(field, "Invalid type. Expected: object.");
            continue;
        };
        let to_field = format!("{field}.to");
        let to = match p.get("to") {
            Some(Value::Array(items)) if !items.is_empty() => c.addresses(p.get("to"), &to_field),
            _ => {
                c.err(
                    to_field,
                    "The to array is required for all personalization objects, and must have at least one email \
                     object with a valid email address.",
                );
                Vec::new()
            }
        };
        let personalization = Personalization {
            to,
            cc: c.addresses(p.get("cc"), &format!("{field}.cc")),
            bcc: c.addresses(p.get("bcc"), &format!("{field}.bcc")),
            subject: c.string(p.get("subject"), &format!("{field}.subject")),
            custom_args: c.custom_args(p.get("custom_args"), &format!("{field}.custom_args")),
            substitutions: c.string_map(p.get("substitutions"), &format!("{field}.substitutions")),
            dynamic_template_data: p.get("dynamic_template_data").filter(|v| !v.is_null()).cloned(),
        };
        let mut seen = HashSet::new();
        if let Some(dup) = personalization
            .recipients()
            .find(|a| !seen.insert(a.email.to_ascii_lowercase()))
        {
            c.err(
                field,
                format!(
                    "Each email address in the personalization block should be unique between to, cc, and bcc. \
                     We found the first duplicate instance of [{}] in the personalization.",
                    dup.email
                ),
            );
        }
        mail.personalizations.push(personalization);
    }
    if mail.recipient_count() > MAX_RECIPIENTS {
        c.err(
            "personalizations",
            "The total number of recipients must be no more than 1000. This includes all recipients defined within \
             the to, cc, and bcc parameters, across each object that you include in the personalizations array.",
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(body: Value) -> Vec<String> {
        validate(&body)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field.unwrap_or_default())
            .collect()
    }

    #[test]
    fn a_complete_mail_is_accepted() {
        let mail = validate(&json!({
            "personalizations": [{ "to": [{ "email": "ada.example@example.test", "name": "Ada" }],
                                   "custom_args": { "outbox_id": "42" } }],
            "from": { "email": "care@example.test" },
            "subject": "Your code",
            "content": [{ "type": "text/plain", "value": "123456" }, { "type": "text/html", "value": "<b>123456</b>" }],
            "categories": ["login"],
        }))
        .unwrap();
        assert_eq!(mail.text.as_deref(), Some("123456"));
        assert_eq!(mail.html.as_deref(), Some("<b>123456</b>"));
        assert_eq!(mail.personalizations[0].custom_args["outbox_id"], "42");
        assert_eq!(mail.recipient_count(), 1);
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        assert_eq!(
            fields(json!({})),
            vec!["from.email", "content", "personalizations", "subject"]
        );
        assert_eq!(
            fields(json!({
                "personalizations": [{ "to": [] }, { "to": [{ "email": "not-an-email" }], "cc": [{ "email": "a@b.test" }] }],
                "from": { "email": "care@example.test" },
                "subject": "s",
                "content": [{ "type": "text/plain", "value": "" }],
            })),
            vec![
                "content.0.value",
                "personalizations.0.to",
                "personalizations.1.to.0.email"
            ]
        );
    }

    #[test]
    fn a_template_replaces_content_and_subject() {
        assert!(validate(&json!({
            "personalizations": [{ "to": [{ "email": "a@b.test" }], "dynamic_template_data": { "code": "1" } }],
            "from": { "email": "care@example.test" },
            "template_id": "d-123",
        }))
        .is_ok());
    }

    #[test]
    fn recipients_are_capped_and_unique_per_personalization() {
        let to: Vec<Value> = (0..1001)
            .map(|i| json!({ "email": format!("p{i}@example.test") }))
            .collect();
        let body = json!({
            "personalizations": [{ "to": to }],
            "from": { "email": "care@example.test" }, "subject": "s",
            "content": [{ "type": "text/plain", "value": "x" }],
        });
        assert_eq!(fields(body), vec!["personalizations"]);
        let body = json!({
            "personalizations": [{ "to": [{ "email": "a@b.test" }], "bcc": [{ "email": "A@b.test" }] }],
            "from": { "email": "care@example.test" }, "subject": "s",
            "content": [{ "type": "text/plain", "value": "x" }],
        });
        assert_eq!(fields(body), vec!["personalizations.0"]);
    }

    #[test]
    fn emails_must_look_like_emails() {
        for ok in ["a@b.co", "ada.example+tag@example.test"] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a@b.co.", "a b@c.co", "<a@b.co>", "a@b..co",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
