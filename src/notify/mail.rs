//! The account-safety mails (DESIGN.md §12): their texts, and a mailer that sends them in the
//! background. Invariants: a mail never delays or fails the request that caused it (it is sent
//! on its own task; a failure is logged and counted in `portcullis_notify_mails_total`, never
//! returned); values from the client (the User-Agent) are reduced to printable ASCII and cut
//! short before they reach a mail.

use crate::clock::{rfc3339, UnixTime};
use crate::metrics::{MailKind, Metrics};
use crate::mfa::email::EmailSender;
use std::net::IpAddr;
use std::sync::Arc;

/// Longest User-Agent shown in a mail.
const MAX_UA_CHARS: usize = 160;

/// Sends notices on background tasks and counts how each went.
#[derive(Clone)]
pub struct Mailer {
    sender: Option<EmailSender>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

/// One message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

impl Mailer {
    pub fn new(sender: Option<EmailSender>, metrics: Arc<Metrics>) -> Mailer {
        Mailer { sender, metrics }
    }

    /// Whether there is a sender at all.
    pub fn configured(&self) -> bool {
        self.sender.is_some()
    }

    /// Sends `mail` to each of `to` on a task of its own; returns at once. Each recipient is
    /// counted as sent or failed.
    pub fn send_later(&self, kind: MailKind, to: Vec<String>, mail: Mail) {
        let Some(sender) = self.sender.clone() else {
            return;
        };
        let metrics = Arc::clone(&self.metrics);
        tokio::spawn(async move {
            for rcpt in to {
                let r = sender.send(&rcpt, &mail.subject, mail.body.clone()).await;
                metrics.notify_mail(kind, r.is_ok());
                if let Err(e) = r {
                    // Logged, never shown: the sign-in or admin action that caused it went on.
                    tracing::warn!(kind = kind.as_str(), error = %e, "notice could not be mailed");
                }
            }
        });
    }
}

/// Where and how a sign-in happened, as a mail shows it.
#[derive(Clone, Debug)]
pub struct SignInFacts<'a> {
    pub issuer: &'a str,
    pub user: &'a str,
    pub at: UnixTime,
    pub ip: IpAddr,
    pub user_agent: Option<&'a str>,
    /// How the person signed in (`native`, `oidc:corp`, …).
    pub method: &'a str,
}

impl SignInFacts<'_> {
    fn lines(&self) -> String {
        format!(
            "  Account: {}\r\n  Time:    {}\r\n  Address: {}\r\n  Browser: {}\r\n  Method:  {}\r\n",
            printable(self.user),
            rfc3339(self.at).replace('T', " ").replace('Z', " UTC"),
            self.ip,
            browser(self.user_agent),
            printable(self.method),
        )
    }
}

/// The notice after a sign-in from a browser not seen before.
pub fn new_device(f: &SignInFacts<'_>, report_url: &str, ttl_days: u64) -> Mail {
    Mail {
        subject: format!("New sign-in to your {} account", f.issuer),
        body: format!(
            "Someone signed in to your {issuer} account from a browser\r\n\
             that has not been used with it before.\r\n\
             \r\n{lines}\r\n\
             If this was you, there is nothing to do.\r\n\
             \r\n\
             If this was not you, open this link to sign out everywhere:\r\n\
             {report_url}\r\n\
             \r\n\
             The link works once, for {ttl_days} days. Then change your password\r\n\
             and tell your administrator.\r\n",
            issuer = f.issuer,
            lines = f.lines(),
        ),
    }
}

/// The notice after a sign-in with a recovery code.
pub fn recovery_code_used(f: &SignInFacts<'_>, left: u32, report_url: &str, ttl_days: u64) -> Mail {
    Mail {
        subject: format!("A recovery code was used for your {} account", f.issuer),
        body: format!(
            "A recovery code was used to sign in to your {issuer} account.\r\n\
             \r\n{lines}  Codes left: {left}\r\n\
             \r\n\
             If this was not you, open this link to sign out everywhere:\r\n\
             {report_url}\r\n\
             \r\n\
             The link works once, for {ttl_days} days. Then tell your administrator.\r\n",
            issuer = f.issuer,
            lines = f.lines(),
        ),
    }
}

/// What happened to a second factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorChange {
    /// An authenticator was set up (first enrollment).
    Added,
    /// The authenticator was replaced (account page).
    Replaced,
    /// An administrator removed every second factor.
    RemovedByAdmin,
    /// A passkey was registered (enrollment or account page).
    PasskeyAdded,
    /// The user removed a passkey (account page).
    PasskeyRemoved,
}

/// The notice after a factor was added or removed.
pub fn factor_changed(issuer: &str, user: &str, at: UnixTime, change: FactorChange) -> Mail {
    let what = match change {
        FactorChange::Added => "An authenticator app was set up for two-step verification",
        FactorChange::Replaced => "The authenticator app for two-step verification was replaced",
        FactorChange::RemovedByAdmin => {
            "An administrator removed your two-step verification factors"
        }
        FactorChange::PasskeyAdded => "A passkey was added for two-step verification",
        FactorChange::PasskeyRemoved => "A passkey was removed from two-step verification",
    };
    Mail {
        subject: format!("Two-step verification changed on your {issuer} account"),
        body: format!(
            "{what}\r\n\
             on your {issuer} account {user}, at {at}.\r\n\
             \r\n\
             If you did not expect this, tell your administrator now.\r\n",
            user = printable(user),
            at = rfc3339(at).replace('T', " ").replace('Z', " UTC"),
        ),
    }
}

/// The mail to the admins after a "this was not me" report.
pub fn reported(issuer: &str, user: &str, principal: &str, at: UnixTime, ended: usize) -> Mail {
    Mail {
        subject: format!(
            "[{issuer}] Sign-in reported as not theirs: {}",
            printable(user)
        ),
        body: format!(
            "{user} ({principal}) reported a sign-in as not theirs,\r\n\
             at {at}.\r\n\
             \r\n\
             The gateway ended {ended} session(s), the pending logins and the\r\n\
             remembered devices of this account. The password (or the IdP\r\n\
             account) may be known to someone else: reset it, and read the\r\n\
             audit log (kind account.reported, login.success) for where from.\r\n",
            user = printable(user),
            principal = printable(principal),
            at = rfc3339(at).replace('T', " ").replace('Z', " UTC"),
        ),
    }
}

/// A break-glass step, for the admins.
pub fn break_glass(issuer: &str, step: &str, detail: &str, at: UnixTime) -> Mail {
    Mail {
        subject: format!("[{issuer}] Break-glass: {step}"),
        body: format!(
            "Break-glass access: {step}\r\n\
             at {at}.\r\n\
             \r\n\
             {detail}\r\n",
            at = rfc3339(at).replace('T', " ").replace('Z', " UTC"),
            detail = printable_lines(detail),
        ),
    }
}

/// A short description of a User-Agent: the browser and system when recognised, and the
/// value itself (printable ASCII, cut short).
pub fn browser(ua: Option<&str>) -> String {
    let Some(ua) = ua.filter(|u| !u.trim().is_empty()) else {
        return "unknown".into();
    };
    let shown: String = printable(ua).chars().take(MAX_UA_CHARS).collect();
    match agent_name(ua) {
        Some(n) => format!("{n} ({shown})"),
        None => shown,
    }
}

/// The browser and system of a User-Agent in words ("Firefox on Windows"), when the browser is
/// recognised; the one table of names, for the mails and the account page.
pub fn agent_name(ua: &str) -> Option<String> {
    let name = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, n)| *n)?;
    let os = [
        ("Windows", "Windows"),
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, n)| *n);
    Some(match os {
        Some(o) => format!("{name} on {o}"),
        None => name.to_owned(),
    })
}

/// Printable ASCII only: anything else (controls, line breaks, non-ASCII) becomes `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// As `printable`, keeping CRLF line breaks of the gateway's own text.
fn printable_lines(s: &str) -> String {
    s.split('\n')
        .map(|l| printable(l.trim_end_matches('\r')))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_user_agent_cannot_add_lines_or_run_long() {
        let ua = format!(
            "Mozilla\r\nBcc: x@evil.example Firefox/1 {}",
            "A".repeat(500)
        );
        let b = browser(Some(&ua));
        assert!(!b.contains('\r') && !b.contains('\n'), "{b}");
        assert!(b.len() < MAX_UA_CHARS + 40, "{}", b.len());
        assert!(b.starts_with("Firefox ("), "{b}");
    }

    #[test]
    fn a_common_browser_is_named_with_its_system() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert!(browser(Some(ua)).starts_with("Firefox on Linux ("));
        assert_eq!(browser(None), "unknown");
    }
}
