//! The demo account: two inboxes, an email and a chat channel, two agents, six fictional contacts
//! (`*.example@example.test`-style addresses) and twelve threads, open and closed, with incoming
//! messages, agent replies, internal comments and status changes. Times are relative to `now`, so
//! the demo always looks recent; ids are fixed, so tests and docs can name them.

use chrono::{DateTime, Duration, Utc};

use super::{
    model::{
        Actor, ActorKind, Channel, ChannelAccount, Identifier, Inbox, Participant, Status, Thread, CHAT_CHANNEL,
        EMAIL_CHANNEL, INTEGRATION_ACTOR, SYSTEM_ACTOR,
    },
    Comment, Reply, Stamp, State,
};

pub const PATIENT_CARE_INBOX: u64 = 147_000_101;
pub const PHARMACY_INBOX: u64 = 147_000_102;
/// Patient Care's email account (`care@era-clinic.example.test`).
pub const CARE_EMAIL_ACCOUNT: u64 = 2_900_101;
/// Patient Care's website chat.
pub const CARE_CHAT_ACCOUNT: u64 = 2_900_102;
/// Pharmacy & Billing's email account (`pharmacy@era-clinic.example.test`).
pub const PHARMACY_EMAIL_ACCOUNT: u64 = 2_900_201;
/// The agent the clinic's integration sends as.
pub const CARE_TEAM_AGENT: &str = "A-9100001";
pub const SECOND_AGENT: &str = "A-9100002";
/// Thread ids run from here to `FIRST_THREAD + 11`.
pub const FIRST_THREAD: u64 = 8_100_001;

struct Contact {
    id: &'static str,
    name: &'static str,
    email: &'static str,
}

const CONTACTS: &[Contact] = &[
    Contact {
        id: "5101",
        name: "Ada Example",
        email: "ada.example@example.test",
    },
    Contact {
        id: "5102",
        name: "Grace Sample",
        email: "grace.sample@example.test",
    },
    Contact {
        id: "5103",
        name: "Alan Placeholder",
        email: "alan.placeholder@example.test",
    },
    Contact {
        id: "5104",
        name: "Katherine Demo",
        email: "katherine.demo@example.test",
    },
    Contact {
        id: "5105",
        name: "Linus Fixture",
        email: "linus.fixture@example.test",
    },
    Contact {
        id: "5106",
        name: "Hedy Testcase",
        email: "hedy.testcase@example.test",
    },
];

/// One step of a thread's history, a few minutes after the previous one.
enum Step {
    In(&'static str),
    Out(&'static str, &'static str),
    Note(&'static str, &'static str),
    Close(&'static str),
}

struct Script {
    account: u64,
    contact: usize,
    subject: Option<&'static str>,
    hours_ago: i64,
    assigned_to: Option<&'static str>,
    steps: &'static [Step],
}

use Step::{Close, In, Note, Out};

const SCRIPTS: &[Script] = &[
    Script {
        account: CARE_EMAIL_ACCOUNT,
        contact: 0,
        subject: Some("Question about my refill"),
        hours_ago: 2,
        assigned_to: Some(CARE_TEAM_AGENT),
        steps: &[
            In("Hi, my refill was approved on Monday. When will it ship?"),
            Note(SECOND_AGENT, "Pharmacy queue shows it going out tomorrow morning."),
        ],
    },
    Script {
        account: CARE_CHAT_ACCOUNT,
        contact: 1,
        subject: None,
        hours_ago: 5,
        assigned_to: None,
        steps: &[
            In("Hello! Can I move my follow-up visit?"),
            Out(CARE_TEAM_AGENT, "Of course. Which day works best for you?"),
            In("Thursday afternoon, please."),
        ],
    },
    Script {
        account: CARE_EMAIL_ACCOUNT,
        contact: 2,
        subject: Some("Receipt for my last order"),
        hours_ago: 26,
        assigned_to: Some(CARE_TEAM_AGENT),
        steps: &[
            In("Could you send me a receipt for my last order?"),
            Out(
                CARE_TEAM_AGENT,
                "Here it is: you can also find it in your account under Orders.",
            ),
            Close(CARE_TEAM_AGENT),
        ],
    },
    Script {
        account: CARE_EMAIL_ACCOUNT,
        contact: 3,
        subject: Some("Login code not arriving"),
        hours_ago: 30,
        assigned_to: Some(SECOND_AGENT),
        steps: &[
            In("I asked for a login code twice and nothing came."),
            Note(
                SECOND_AGENT,
                "Sandbox inbox shows both codes were sent; maybe a spam folder.",
            ),
            Out(
                SECOND_AGENT,
                "Both codes went out a minute ago. Could you check your spam folder?",
            ),
            In("Found them in spam, thank you!"),
        ],
    },
    Script {
        account: CARE_CHAT_ACCOUNT,
        contact: 4,
        subject: None,
        hours_ago: 50,
        assigned_to: Some(CARE_TEAM_AGENT),
        steps: &[
            In("Is the clinic open on Saturdays?"),
            Out(CARE_TEAM_AGENT, "Video visits run Saturday 9am to 1pm."),
            In("Great, thanks."),
            Close(CARE_TEAM_AGENT),
        ],
    },
    Script {
        account: CARE_EMAIL_ACCOUNT,
        contact: 5,
        subject: Some("Changing my shipping address"),
        hours_ago: 3,
        assigned_to: None,
        steps: &[In("I moved last week. How do I change where my orders ship?")],
    },
    Script {
        account: CARE_CHAT_ACCOUNT,
        contact: 0,
        subject: None,
        hours_ago: 75,
        assigned_to: Some(SECOND_AGENT),
        steps: &[
            In("Where do I upload my ID?"),
            Out(
                SECOND_AGENT,
                "In the intake form, step 2. I can resend the link if you like.",
            ),
            Close(SECOND_AGENT),
        ],
    },
    Script {
        account: CARE_EMAIL_ACCOUNT,
        contact: 1,
        subject: Some("Paperwork for my employer"),
        hours_ago: 100,
        assigned_to: Some(CARE_TEAM_AGENT),
        steps: &[
            In("My employer needs a visit confirmation. Can you send one?"),
            Out(CARE_TEAM_AGENT, "Yes. Which visit date should it cover?"),
            Note(CARE_TEAM_AGENT, "Waiting on the date before drafting the letter."),
            In("The one on the 3rd, please."),
        ],
    },
    Script {
        account: PHARMACY_EMAIL_ACCOUNT,
        contact: 2,
        subject: Some("Tracking number?"),
        hours_ago: 8,
        assigned_to: None,
        steps: &[
            In("Do you have a tracking number for my order?"),
            Note(SECOND_AGENT, "Label created, carrier has not scanned it yet."),
        ],
    },
    Script {
        account: PHARMACY_EMAIL_ACCOUNT,
        contact: 3,
        subject: Some("Card declined"),
        hours_ago: 120,
        assigned_to: Some(CARE_TEAM_AGENT),
        steps: &[
            In("My card was declined but I have funds. What happened?"),
            Out(
                CARE_TEAM_AGENT,
                "The bank asked for verification. Could you update the card in your account?",
            ),
            In("Done, I added a new card."),
            Out(CARE_TEAM_AGENT, "Thanks, the payment went through."),
            Close(CARE_TEAM_AGENT),
        ],
    },
    Script {
        account: PHARMACY_EMAIL_ACCOUNT,
        contact: 4,
        subject: Some("Refund status"),
        hours_ago: 20,
        assigned_to: Some(SECOND_AGENT),
        steps: &[
            In("I was told I'd get a refund. Has it been issued?"),
            Out(
                SECOND_AGENT,
                "It was issued yesterday; banks take 5 to 10 business days.",
            ),
        ],
    },
    Script {
        account: PHARMACY_EMAIL_ACCOUNT,
        contact: 5,
        subject: Some("Order confirmation"),
        hours_ago: 150,
        assigned_to: Some(CARE_TEAM_AGENT),
        steps: &[
            In("Just confirming you received my order."),
            Out(CARE_TEAM_AGENT, "We did! You'll get an email when it ships."),
            Close(CARE_TEAM_AGENT),
        ],
    },
];

/// Minutes between one step and the next.
const STEP_MINUTES: i64 = 17;

pub(crate) fn state(now: DateTime<Utc>) -> State {
    let created = now - Duration::days(400);
    let mut st = State {
        inboxes: vec![
            Inbox {
                id: PATIENT_CARE_INBOX,
                name: "Patient Care".into(),
                created_at: created,
            },
            Inbox {
                id: PHARMACY_INBOX,
                name: "Pharmacy & Billing".into(),
                created_at: created,
            },
        ],
        channels: vec![
            Channel {
                id: CHAT_CHANNEL,
                name: "Live chat",
            },
            Channel {
                id: EMAIL_CHANNEL,
                name: "Email",
            },
        ],
        accounts: vec![
            ChannelAccount {
                id: CARE_EMAIL_ACCOUNT,
                channel_id: EMAIL_CHANNEL,
                inbox_id: PATIENT_CARE_INBOX,
                name: "care@era-clinic.example.test".into(),
                identifier: Some(Identifier::email("care@era-clinic.example.test")),
                created_at: created,
            },
            ChannelAccount {
                id: CARE_CHAT_ACCOUNT,
                channel_id: CHAT_CHANNEL,
                inbox_id: PATIENT_CARE_INBOX,
                name: "Website chat".into(),
                identifier: None,
                created_at: created,
            },
            ChannelAccount {
                id: PHARMACY_EMAIL_ACCOUNT,
                channel_id: EMAIL_CHANNEL,
                inbox_id: PHARMACY_INBOX,
                name: "pharmacy@era-clinic.example.test".into(),
                identifier: Some(Identifier::email("pharmacy@era-clinic.example.test")),
                created_at: created,
            },
        ],
        actors: vec![
            actor(
                CARE_TEAM_AGENT,
                ActorKind::Agent,
                Some("Sandbox Care Team"),
                Some("care-team@era-clinic.example.test"),
            ),
            actor(
                SECOND_AGENT,
                ActorKind::Agent,
                Some("Riley Example"),
                Some("riley.example@era-clinic.example.test"),
            ),
            actor(
                INTEGRATION_ACTOR,
                ActorKind::Integrator,
                Some("Era clinic integration"),
                None,
            ),
            actor(SYSTEM_ACTOR, ActorKind::System, None, None),
        ],
        threads: Vec::new(),
        next_seq: 0,
    };
    for c in CONTACTS {
        st.actors
            .push(actor(&format!("E-{}", c.email), ActorKind::Email, None, Some(c.email)));
        st.actors.push(actor(
            &format!("V-{}", c.id),
            ActorKind::Visitor,
            Some(c.name),
            Some(c.email),
        ));
    }
    for (i, script) in SCRIPTS.iter().enumerate() {
        thread(&mut st, FIRST_THREAD + i as u64, script, now);
    }
    st
}

fn actor(id: &str, kind: ActorKind, name: Option<&str>, email: Option<&str>) -> Actor {
    Actor {
        id: id.to_owned(),
        kind,
        name: name.map(str::to_owned),
        email: email.map(str::to_owned),
    }
}

fn thread(st: &mut State, id: u64, script: &Script, now: DateTime<Utc>) {
    let account = st
        .accounts
        .iter()
        .find(|a| a.id == script.account)
        .cloned()
        .expect("scripts name seeded accounts");
    let c = &CONTACTS[script.contact];
    let contact = if account.channel_id == EMAIL_CHANNEL {
        Participant {
            actor_id: format!("E-{}", c.email),
            name: c.name.to_owned(),
            identifier: Identifier::email(c.email),
        }
    } else {
        Participant {
            actor_id: format!("V-{}", c.id),
            name: c.name.to_owned(),
            identifier: Identifier {
                kind: "CHANNEL_SPECIFIC_OPAQUE_ID".into(),
                value: format!("visitor-{}", c.id),
            },
        }
    };
    let start = now - Duration::hours(script.hours_ago);
    st.threads.push(Thread {
        id,
        inbox_id: account.inbox_id,
        contact_id: c.id.to_owned(),
        contact,
        channel_id: account.channel_id,
        channel_account_id: account.id,
        status: Status::Open,
        created_at: start,
        closed_at: None,
        assigned_to: script.assigned_to.map(str::to_owned),
        archived: false,
        messages: Vec::new(),
    });
    let subject = script.subject.map(str::to_owned);
    for (n, step) in script.steps.iter().enumerate() {
        let at = start + Duration::minutes(STEP_MINUTES * n as i64);
        // Fixed ids: the thread's and the step's number, as 32 hex digits.
        let stamp = Stamp {
            id: format!("{id:016x}{n:016x}"),
            at,
        };
        match step {
            In(text) => {
                st.receive(id, text, subject.clone(), None, stamp);
            }
            Out(agent, text) => {
                let recipients = st.reply_recipients(id);
                let reply_subject = subject.as_ref().map(|s| format!("Re: {s}"));
                let reply = Reply {
                    agent: agent.to_string(),
                    account_id: account.id,
                    recipients,
                    text: text.to_string(),
                    rich_text: None,
                    subject: reply_subject,
                    attachments: Vec::new(),
                    via_api: false,
                };
                st.reply(id, reply, stamp);
            }
            Note(agent, text) => {
                let note = Comment {
                    by: agent.to_string(),
                    text: text.to_string(),
                    rich_text: None,
                    attachments: Vec::new(),
                    via_api: false,
                };
                st.comment(id, note, stamp);
            }
            Close(agent) => {
                st.set_status(id, Status::Closed, agent, stamp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::model::{Body, Direction};

    #[test]
    fn the_demo_account_mixes_statuses_channels_and_entry_kinds() {
        let st = state(Utc::now());
        assert_eq!(st.inboxes.len(), 2);
        assert_eq!(st.threads.len(), 12);
        let closed = st.threads.iter().filter(|t| t.status == Status::Closed).count();
        assert!(closed > 0 && closed < 12);
        assert!(st.threads.iter().any(|t| t.channel_id == CHAT_CHANNEL));
        assert!(st.threads.iter().any(|t| t.channel_id == EMAIL_CHANNEL));
        for t in &st.threads {
            assert!(t
                .messages
                .iter()
                .any(|m| m.said().is_some_and(|s| s.direction == Direction::Incoming)));
            assert_eq!(t.closed_at.is_some(), t.status == Status::Closed);
            assert!(t.latest_message_at() <= Utc::now());
        }
        let all: Vec<_> = st.threads.iter().flat_map(|t| &t.messages).collect();
        assert!(all.iter().any(|m| matches!(m.body, Body::Comment { .. })));
        assert!(all.iter().any(|m| matches!(m.body, Body::StatusChange(Status::Closed))));
        let mut ids: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "message ids are unique");
    }
}
