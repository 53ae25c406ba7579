//! The events the clinic tells people about and what each says on each channel: an email (subject,
//! text and HTML), an SMS and a portal notification. Variables are `{name}` placeholders; values are
//! HTML-escaped in the HTML part. Medication names and other clinical detail stay out of email
//! subjects and SMS, which are read on lock screens and by mail previews.

use std::collections::BTreeMap;

use era_proto::notifications::v1 as pb;

/// A notification type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    PrescriptionApproved,
    PrescriptionDenied,
    PaymentFailed,
    ShipmentCreated,
    ShipmentUpdated,
    AppointmentConfirmed,
    AppointmentReminder,
    AppointmentCancelled,
    RefillDue,
    OneTimeCode,
    MagicLink,
    Welcome,
    RefillOrdered,
    RefillOverdue,
}

/// A way a notification reaches someone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    Email,
    Sms,
    Portal,
}

impl Channel {
    pub fn code(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Portal => "portal",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Email, Self::Sms, Self::Portal]
            .into_iter()
            .find(|c| c.code() == code)
    }

    pub fn from_pb(c: i32) -> Option<Self> {
        match pb::Channel::try_from(c).ok()? {
            pb::Channel::Email => Some(Self::Email),
            pb::Channel::Sms => Some(Self::Sms),
            pb::Channel::Portal => Some(Self::Portal),
            pb::Channel::Unspecified => None,
        }
    }

    pub fn to_pb(self) -> pb::Channel {
        match self {
            Self::Email => pb::Channel::Email,
            Self::Sms => pb::Channel::Sms,
            Self::Portal => pb::Channel::Portal,
        }
    }
}

/// What one event says on every channel.
struct Template {
    kind: Kind,
    code: &'static str,
    pb: pb::NotificationType,
    /// Variables the caller must give (besides `first_name`, which comes from the recipient).
    required: &'static [&'static str],
    channels: &'static [Channel],
    subject: &'static str,
    /// Paragraphs of the email, each a line of the text part and a `<p>` of the HTML part.
    email: &'static [&'static str],
    sms: &'static str,
    portal_title: &'static str,
    portal_body: &'static str,
    portal_link: &'static str,
}

use Channel::{Email, Portal, Sms};

const TEMPLATES: &[Template] = &[
    Template {
        kind: Kind::PrescriptionApproved,
        code: "prescription_approved",
        pb: pb::NotificationType::PrescriptionApproved,
        required: &["medication"],
        channels: &[Email, Sms, Portal],
        subject: "Your prescription was approved",
        email: &[
            "Hi {first_name},",
            "Your provider approved your {medication} prescription. Your pharmacy is preparing it now, and we will let you know when it ships.",
        ],
        sms: "YourEra: your prescription was approved and is being prepared. We'll text you when it ships.",
        portal_title: "Prescription approved",
        portal_body: "Your provider approved your {medication} prescription. It is being prepared.",
        portal_link: "/prescriptions",
    },
    Template {
        kind: Kind::PrescriptionDenied,
        code: "prescription_denied",
        pb: pb::NotificationType::PrescriptionDenied,
        required: &[],
        channels: &[Email, Portal],
        subject: "An update on your YourEra request",
        email: &[
            "Hi {first_name},",
            "After reviewing your intake, your provider could not approve this prescription. You have not been charged. Open your portal to read their note or to message the care team.",
        ],
        sms: "YourEra: there is an update on your request. Please check your portal.",
        portal_title: "An update on your request",
        portal_body: "Your provider could not approve this prescription. You have not been charged.",
        portal_link: "/messages",
    },
    Template {
        kind: Kind::PaymentFailed,
        code: "payment_failed",
        pb: pb::NotificationType::PaymentFailed,
        required: &[],
        channels: &[Email, Sms, Portal],
        subject: "Please update your payment method",
        email: &[
            "Hi {first_name},",
            "We could not charge the card on file for your order. Please update your card in the portal so we can send your medication.",
        ],
        sms: "YourEra: we couldn't charge your card. Please update it in your portal so we can ship your order.",
        portal_title: "Card needs updating",
        portal_body: "We could not charge your card. Update it to continue your order.",
        portal_link: "/billing",
    },
    Template {
        kind: Kind::ShipmentCreated,
        code: "shipment_created",
        pb: pb::NotificationType::ShipmentCreated,
        required: &["tracking_number", "tracking_url"],
        channels: &[Email, Sms, Portal],
        subject: "Your order has shipped",
        email: &[
            "Hi {first_name},",
            "Your order is on its way. Tracking number: {tracking_number}. Follow it at {tracking_url}.",
        ],
        sms: "YourEra: your order shipped. Track it: {tracking_url}",
        portal_title: "Order shipped",
        portal_body: "Your order is on its way. Tracking number {tracking_number}: {tracking_url}",
        portal_link: "/shipments",
    },
    Template {
        kind: Kind::ShipmentUpdated,
        code: "shipment_updated",
        pb: pb::NotificationType::ShipmentUpdated,
        required: &["tracking_number", "status", "tracking_url"],
        channels: &[Email, Sms, Portal],
        subject: "An update on your shipment",
        email: &[
            "Hi {first_name},",
            "Your shipment {tracking_number} is now: {status}. Follow it at {tracking_url}.",
        ],
        sms: "YourEra: your shipment is now {status}. Track it: {tracking_url}",
        portal_title: "Shipment update",
        portal_body: "Shipment {tracking_number}: {status}. {tracking_url}",
        portal_link: "/shipments",
    },
    Template {
        kind: Kind::AppointmentConfirmed,
        code: "appointment_confirmed",
        pb: pb::NotificationType::AppointmentConfirmed,
        required: &["appointment_time", "join_url"],
        channels: &[Email, Sms, Portal],
        subject: "Your appointment is confirmed",
        email: &[
            "Hi {first_name},",
            "Your video visit is confirmed for {appointment_time}.",
            "Join it from this link at that time: {join_url}",
        ],
        sms: "YourEra: your video visit is confirmed for {appointment_time}. Join: {join_url}",
        portal_title: "Appointment confirmed",
        portal_body: "Your video visit is on {appointment_time}.",
        portal_link: "/appointments",
    },
    Template {
        kind: Kind::AppointmentReminder,
        code: "appointment_reminder",
        pb: pb::NotificationType::AppointmentReminder,
        required: &["appointment_time", "join_url"],
        channels: &[Email, Sms],
        subject: "Reminder: your video visit is coming up",
        email: &[
            "Hi {first_name},",
            "A reminder that your video visit is at {appointment_time}.",
            "Join a few minutes early from this link: {join_url}",
        ],
        sms: "YourEra reminder: your video visit is at {appointment_time}. Join: {join_url}",
        portal_title: "Visit coming up",
        portal_body: "Your video visit is at {appointment_time}.",
        portal_link: "/appointments",
    },
    Template {
        kind: Kind::AppointmentCancelled,
        code: "appointment_cancelled",
        pb: pb::NotificationType::AppointmentCancelled,
        required: &["appointment_time"],
        channels: &[Email, Portal],
        subject: "Your appointment was cancelled",
        email: &[
            "Hi {first_name},",
            "Your video visit on {appointment_time} was cancelled. You can book another time in your portal.",
        ],
        sms: "YourEra: your visit on {appointment_time} was cancelled.",
        portal_title: "Appointment cancelled",
        portal_body: "Your visit on {appointment_time} was cancelled.",
        portal_link: "/appointments",
    },
    Template {
        kind: Kind::RefillDue,
        code: "refill_due",
        pb: pb::NotificationType::RefillDue,
        required: &["medication", "due_date"],
        channels: &[Email, Portal],
        subject: "Your refill is coming up",
        email: &[
            "Hi {first_name},",
            "Your {medication} refill will be charged to your card on file and sent to your pharmacy on {due_date}. To change your card, or to ask for a pause, open your portal.",
        ],
        sms: "YourEra: your refill will be charged and sent on {due_date}. Manage it in your portal.",
        portal_title: "Refill coming up",
        portal_body: "Your {medication} refill will be charged and sent on {due_date}.",
        portal_link: "/refills",
    },
    Template {
        kind: Kind::OneTimeCode,
        code: "one_time_code",
        pb: pb::NotificationType::OneTimeCode,
        required: &["code"],
        channels: &[Email],
        subject: "Your YourEra sign-in code",
        email: &[
            "Your sign-in code is {code}.",
            "It works once, for 10 minutes. If you did not ask for it, ignore this email.",
        ],
        sms: "YourEra sign-in code: {code} (valid 10 minutes). Don't share it.",
        portal_title: "Sign-in code",
        portal_body: "A sign-in code was sent.",
        portal_link: "/",
    },
    Template {
        kind: Kind::MagicLink,
        code: "magic_link",
        pb: pb::NotificationType::MagicLink,
        required: &["link"],
        channels: &[Email],
        subject: "Your YourEra sign-in link",
        email: &[
            "Open this link to sign in: {link}",
            "It works once, for 15 minutes. If you did not ask for it, ignore this email.",
        ],
        sms: "YourEra sign-in link: {link}",
        portal_title: "Sign-in link",
        portal_body: "A sign-in link was sent.",
        portal_link: "/",
    },
    Template {
        kind: Kind::RefillOrdered,
        code: "refill_ordered",
        pb: pb::NotificationType::RefillOrdered,
        required: &["medication"],
        channels: &[Email, Sms, Portal],
        subject: "Your refill is on its way to the pharmacy",
        email: &[
            "Hi {first_name},",
            "Your {medication} refill was charged to your card on file and sent to your pharmacy. We will let you know when it ships.",
        ],
        sms: "YourEra: your refill was sent to the pharmacy. We'll text you when it ships.",
        portal_title: "Refill ordered",
        portal_body: "Your {medication} refill was sent to your pharmacy.",
        portal_link: "/refills",
    },
    Template {
        kind: Kind::RefillOverdue,
        code: "refill_overdue",
        pb: pb::NotificationType::RefillOverdue,
        required: &[],
        channels: &[Email, Sms, Portal],
        subject: "Your refill is on hold",
        email: &[
            "Hi {first_name},",
            "We tried several times but could not charge the card on file for your refill, so it is on hold. Please update your card in the portal and we will send it.",
        ],
        sms: "YourEra: your refill is on hold because your card was declined. Please update it in your portal.",
        portal_title: "Refill on hold",
        portal_body: "Your card was declined. Update it to get your refill.",
        portal_link: "/billing",
    },
    Template {
        kind: Kind::Welcome,
        code: "welcome",
        pb: pb::NotificationType::Welcome,
        required: &[],
        channels: &[Email, Portal],
        subject: "Welcome to YourEra",
        email: &[
            "Hi {first_name},",
            "Thank you for your intake. A provider will review it shortly, and we will let you know as soon as they do.",
        ],
        sms: "Welcome to YourEra! A provider will review your intake shortly.",
        portal_title: "Welcome to YourEra",
        portal_body: "A provider will review your intake shortly.",
        portal_link: "/",
    },
];

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::PrescriptionApproved,
        Kind::PrescriptionDenied,
        Kind::PaymentFailed,
        Kind::ShipmentCreated,
        Kind::ShipmentUpdated,
        Kind::AppointmentConfirmed,
        Kind::AppointmentReminder,
        Kind::AppointmentCancelled,
        Kind::RefillDue,
        Kind::OneTimeCode,
        Kind::MagicLink,
        Kind::Welcome,
        Kind::RefillOrdered,
        Kind::RefillOverdue,
    ];

    fn template(self) -> &'static Template {
        TEMPLATES
            .iter()
            .find(|t| t.kind == self)
            .expect("every kind has a template")
    }

    pub fn code(self) -> &'static str {
        self.template().code
    }

    pub fn from_code(code: &str) -> Option<Self> {
        TEMPLATES.iter().find(|t| t.code == code).map(|t| t.kind)
    }

    pub fn from_pb(t: i32) -> Option<Self> {
        let t = pb::NotificationType::try_from(t).ok()?;
        TEMPLATES.iter().find(|x| x.pb == t).map(|x| x.kind)
    }

    pub fn to_pb(self) -> pb::NotificationType {
        self.template().pb
    }

    pub fn default_channels(self) -> &'static [Channel] {
        self.template().channels
    }

    /// Variables the caller must give.
    pub fn required(self) -> &'static [&'static str] {
        self.template().required
    }

    /// Codes and links are credentials: kept out of the portal and never shown to admins.
    pub fn is_secret(self) -> bool {
        matches!(self, Kind::OneTimeCode | Kind::MagicLink)
    }
}

/// One rendered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rendered {
    Email {
        subject: String,
        text: String,
        html: String,
    },
    Sms {
        body: String,
    },
    Portal {
        title: String,
        body: String,
        link: String,
    },
}

/// Fills `{name}` placeholders; `escape` HTML-escapes the values (and makes http(s) links anchors). A
/// placeholder without a value is left out (callers check required variables first).
fn fill(template: &str, vars: &BTreeMap<String, String>, escape: bool) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) if after[..end].bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                let value = vars.get(&after[..end]).map(String::as_str).unwrap_or_default();
                if escape && (value.starts_with("https://") || value.starts_with("http://")) {
                    // A link in the HTML part is one a person can click.
                    let href = html_escape(value);
                    out.push_str(&format!("<a href=\"{href}\">{href}</a>"));
                } else if escape {
                    out.push_str(&html_escape(value));
                } else {
                    out.push_str(value);
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The variables a request lacks.
pub fn missing(kind: Kind, vars: &BTreeMap<String, String>) -> Vec<&'static str> {
    kind.required()
        .iter()
        .copied()
        .filter(|v| vars.get(*v).is_none_or(|s| s.trim().is_empty()))
        .collect()
}

/// What `kind` says on `channel`, with `first_name` defaulting to "there".
pub fn render(kind: Kind, channel: Channel, vars: &BTreeMap<String, String>) -> Rendered {
    let t = kind.template();
    let mut vars = vars.clone();
    if vars.get("first_name").is_none_or(|n| n.trim().is_empty()) {
        vars.insert("first_name".into(), "there".into());
    }
    match channel {
        Channel::Email => {
            let text = t
                .email
                .iter()
                .map(|p| fill(p, &vars, false))
                .collect::<Vec<_>>()
                .join("\n\n");
            let body: String = t
                .email
                .iter()
                .map(|p| format!("<p>{}</p>", fill(p, &vars, true)))
                .collect();
            Rendered::Email {
                subject: fill(t.subject, &vars, false),
                text: format!("{text}\n\nYourEra Care Team"),
                html: format!(
                    "<!doctype html><html><body style=\"font-family:sans-serif\">{body}<p>YourEra Care Team</p></body></html>"
                ),
            }
        }
        Channel::Sms => Rendered::Sms {
            body: fill(t.sms, &vars, false),
        },
        Channel::Portal => Rendered::Portal {
            title: fill(t.portal_title, &vars, false),
            body: fill(t.portal_body, &vars, false),
            link: t.portal_link.into(),
        },
    }
}

/// `+` and 8-15 digits.
pub fn is_e164(s: &str) -> bool {
    s.len() >= 9
        && s.len() <= 16
        && s.starts_with('+')
        && s[1..].bytes().all(|b| b.is_ascii_digit())
        && !s[1..].starts_with('0')
}

/// A plausible email address (the vendor has the last word).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && s.len() <= 254
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

/// `j***@example.com`, `+1******0100`: enough for an admin to tell messages apart, not an address.
pub fn mask(address: &str) -> String {
    if let Some((local, domain)) = address.rsplit_once('@') {
        let first: String = local.chars().take(1).collect();
        return format!("{first}***@{domain}");
    }
    let chars: Vec<char> = address.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn every_kind_renders_on_every_channel_with_its_variables() {
        for kind in Kind::ALL {
            let given = vars(&kind.required().iter().map(|v| (*v, "X")).collect::<Vec<_>>());
            assert!(missing(kind, &given).is_empty());
            for channel in [Channel::Email, Channel::Sms, Channel::Portal] {
                let texts = match render(kind, channel, &given) {
                    Rendered::Email { subject, text, html } => vec![subject, text, html],
                    Rendered::Sms { body } => vec![body],
                    Rendered::Portal { title, body, link } => vec![title, body, link],
                };
                for t in texts {
                    assert!(
                        !t.contains('{') && !t.is_empty(),
                        "{kind:?} {channel:?} left a placeholder: {t}"
                    );
                }
            }
            assert_eq!(Kind::from_code(kind.code()), Some(kind));
            assert_eq!(Kind::from_pb(kind.to_pb() as i32), Some(kind));
        }
    }

    #[test]
    fn values_are_escaped_in_html_only_and_clinical_detail_stays_out_of_subjects_and_sms() {
        let v = vars(&[("medication", "<b>sema</b> & co"), ("first_name", "Ada")]);
        let Rendered::Email { subject, text, html } = render(Kind::PrescriptionApproved, Channel::Email, &v) else {
            panic!()
        };
        assert!(html.contains("&lt;b&gt;sema&lt;/b&gt; &amp; co") && !html.contains("<b>sema"));
        assert!(text.contains("<b>sema</b> & co") && text.starts_with("Hi Ada,"));
        assert!(!subject.contains("sema"));
        let Rendered::Sms { body } = render(Kind::PrescriptionApproved, Channel::Sms, &v) else {
            panic!()
        };
        assert!(!body.contains("sema"));
        assert_eq!(
            missing(Kind::ShipmentUpdated, &vars(&[("tracking_number", "1Z")])),
            ["status", "tracking_url"]
        );
    }

    #[test]
    fn links_are_clickable_in_html_and_plain_in_text() {
        let v = vars(&[("link", "https://edge.example/api/auth/magic-link?token=a&b=\"c")]);
        let Rendered::Email { text, html, .. } = render(Kind::MagicLink, Channel::Email, &v) else {
            panic!()
        };
        let escaped = "https://edge.example/api/auth/magic-link?token=a&amp;b=&quot;c";
        assert!(html.contains(&format!("<a href=\"{escaped}\">{escaped}</a>")), "{html}");
        assert!(text.contains("https://edge.example/api/auth/magic-link?token=a&b=\"c") && !text.contains("<a "));
        // Text that is not a link stays text.
        let plain = vars(&[("medication", "javascript:alert(1)"), ("first_name", "Ada")]);
        let Rendered::Email { html, .. } = render(Kind::PrescriptionApproved, Channel::Email, &plain) else {
            panic!()
        };
        assert!(!html.contains("<a "), "{html}");
    }

    #[test]
    fn addresses_are_masked() {
        assert_eq!(mask("jane.doe@example.com"), "j***@example.com");
        assert_eq!(mask("+15555550100"), "+1******0100");
        assert!(is_e164("+15005550006") && !is_e164("5005550006") && !is_e164("+1555-555"));
        assert!(is_email("a@b.co") && !is_email("a@b") && !is_email("a b@c.de"));
    }
}
