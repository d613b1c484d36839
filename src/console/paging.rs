//! Paging of the console's two lists: the page size, where each list stands (the audit log by
//! cursor, the sessions by page number), the links that keep the filters, and the reads of one
//! page through the same store calls the admin API pages with. No HTML but the link targets.
//!
//! Why two schemes: the audit log is read newest first while events keep arriving (the console's
//! own actions add them), so a page is named by the id it continues from, and a new event never
//! pushes a row onto the next page twice; the store reads both ways from an id. Sessions are
//! listed by id, an order that means nothing to a reader and that the store reads forwards
//! only, so a page number (walked from the start) is what lets "previous" exist at all.

use crate::http::query_param;
use crate::session::{Session, SessionId, SessionStore};
use crate::state::{enc, Gateway};
use crate::storage::{AuditQuery, AuditRecord, StoreError, UserStore};
use std::sync::Arc;

/// The most rows of one list on one page; a larger `per_page` is clamped to it.
pub const MAX_PER_PAGE: usize = 50;

/// Sessions read per store call while walking to a later page.
const WALK: usize = 500;

/// Where the audit list stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AuditAt {
    /// The newest events.
    Newest,
    /// The page of events older than this id.
    Before(i64),
    /// The page of events newer than this id.
    After(i64),
}

/// A page position or size in the address that is no number (or page 0): answered with a 400
/// page, as the admin API answers a bad cursor, rather than page 1 shown as if it were the one
/// asked for, which an admin reading the audit log for an incident could take for it.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPage;

/// The console's query: filters, page size and where each list stands.
#[derive(Debug, PartialEq, Eq)]
pub struct Paging {
    pub user: Option<String>,
    pub event: Option<String>,
    pub per_page: usize,
    /// Given in the address (kept in links and filter forms); else the default.
    pub per_page_asked: bool,
    /// 1-based.
    pub sessions_page: usize,
    pub audit: AuditAt,
}

fn number<T: std::str::FromStr>(q: Option<&str>, name: &str) -> Result<Option<T>, BadPage> {
    match query_param(q, name) {
        None => Ok(None),
        Some(v) => v.parse::<T>().map(Some).map_err(|_| BadPage),
    }
}

impl Paging {
    pub fn parse(q: Option<&str>) -> Result<Paging, BadPage> {
        let text = |name: &str| query_param(q, name).filter(|v| !v.is_empty());
        // Clamped both ways: 0 shows one row, anything above the bound the bound.
        let per_page = number::<usize>(q, "per_page")?;
        let sessions_page = match number::<usize>(q, "sessions_page")? {
            Some(0) => return Err(BadPage),
            Some(n) => n,
            None => 1,
        };
        let audit = match (
            number::<i64>(q, "audit_before")?,
            number::<i64>(q, "audit_after")?,
        ) {
            (None, None) => AuditAt::Newest,
            (Some(id), None) => AuditAt::Before(id),
            (None, Some(id)) => AuditAt::After(id),
            (Some(_), Some(_)) => return Err(BadPage),
        };
        Ok(Paging {
            user: text("user"),
            event: text("event"),
            per_page: per_page.unwrap_or(MAX_PER_PAGE).clamp(1, MAX_PER_PAGE),
            per_page_asked: per_page.is_some(),
            sessions_page,
            audit,
        })
    }

    /// The console's address with these filters and the lists at `sessions` and `audit`
    /// (percent-encoded, not yet HTML-escaped).
    pub fn link(&self, prefix: &str, sessions: usize, audit: AuditAt) -> String {
        let mut parts = Vec::new();
        if let Some(u) = &self.user {
            parts.push(format!("user={}", enc(u)));
        }
        if let Some(e) = &self.event {
            parts.push(format!("event={}", enc(e)));
        }
        if self.per_page_asked {
            parts.push(format!("per_page={}", self.per_page));
        }
        if sessions > 1 {
            parts.push(format!("sessions_page={sessions}"));
        }
        match audit {
            AuditAt::Newest => {}
            AuditAt::Before(id) => parts.push(format!("audit_before={id}")),
            AuditAt::After(id) => parts.push(format!("audit_after={id}")),
        }
        if parts.is_empty() {
            format!("{prefix}/admin")
        } else {
            format!("{prefix}/admin?{}", parts.join("&"))
        }
    }
}

/// One page of sessions and whether a next one exists.
pub struct SessionsPage {
    pub rows: Vec<Arc<Session>>,
    pub more: bool,
}

/// The sessions of page `p.sessions_page`, of `owner` only when given: the pages before it are
/// walked with the store's cursor, since the store has no offset.
pub async fn sessions(
    gw: &Gateway,
    owner: Option<&str>,
    p: &Paging,
) -> Result<SessionsPage, StoreError> {
    let mut skip = p.sessions_page.saturating_sub(1).saturating_mul(p.per_page);
    let mut cursor: Option<SessionId> = None;
    while skip > 0 {
        let want = skip.min(WALK);
        let batch = gw.store.list(owner, cursor.as_ref(), want).await?;
        let Some(last) = batch.last() else {
            // Past the end: an empty page.
            return Ok(SessionsPage {
                rows: Vec::new(),
                more: false,
            });
        };
        cursor = Some(last.id.clone());
        if batch.len() < want {
            return Ok(SessionsPage {
                rows: Vec::new(),
                more: false,
            });
        }
        skip -= batch.len();
    }
    let mut rows = gw
        .store
        .list(owner, cursor.as_ref(), p.per_page.saturating_add(1))
        .await?;
    let more = rows.len() > p.per_page;
    rows.truncate(p.per_page);
    Ok(SessionsPage { rows, more })
}

/// One page of audit events, newest first, and the ids the neighbouring pages continue from.
pub struct AuditPage {
    pub rows: Vec<AuditRecord>,
    /// `audit_before` of the older page, when there are older events.
    pub older: Option<i64>,
    /// `audit_after` of the newer page, when there are newer events.
    pub newer: Option<i64>,
}

fn limit(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The audit page at `p.audit`, filtered by user and event kind, through `query_audit`.
pub async fn audit<S: UserStore>(users: &S, p: &Paging) -> Result<AuditPage, StoreError> {
    let query = |newest_first: bool, after_id: Option<i64>, n: usize| AuditQuery {
        newest_first,
        since: None,
        user: p.user.clone(),
        kind: p.event.clone(),
        after_id,
        limit: limit(n),
    };
    // Whether any event lies beyond `id` that way (older: newest first below it).
    let beyond = |older: bool, id: i64| {
        let q = query(older, Some(id), 1);
        async move { users.query_audit(&q).await.map(|r| !r.is_empty()) }
    };
    let per = p.per_page;
    let page = if let AuditAt::After(id) = p.audit {
        // Oldest first upwards from the cursor, then turned to read newest first.
        let mut rows = users.query_audit(&query(false, Some(id), per + 1)).await?;
        let more = rows.len() > per;
        rows.truncate(per);
        rows.reverse();
        let newer = more.then(|| rows.first().map(|r| r.id)).flatten();
        let older = match rows.last().map(|r| r.id) {
            Some(last) => beyond(true, last).await?.then_some(last),
            None => None,
        };
        AuditPage { rows, older, newer }
    } else {
        let from = match p.audit {
            AuditAt::Before(id) => Some(id),
            AuditAt::Newest | AuditAt::After(_) => None,
        };
        let mut rows = users.query_audit(&query(true, from, per + 1)).await?;
        let more = rows.len() > per;
        rows.truncate(per);
        let older = more.then(|| rows.last().map(|r| r.id)).flatten();
        // The newest page has nothing newer by definition; a later one asks.
        let newer = match (from, rows.first().map(|r| r.id)) {
            (Some(_), Some(first)) => beyond(false, first).await?.then_some(first),
            _ => None,
        };
        AuditPage { rows, older, newer }
    };
    Ok(page)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails loudly on a value it did not expect
mod tests {
    use super::*;

    #[test]
    fn a_page_size_over_the_bound_is_clamped_and_a_word_is_a_bad_page() {
        let p = Paging::parse(Some("per_page=500&user=ann&sessions_page=3")).unwrap();
        assert_eq!(p.per_page, MAX_PER_PAGE);
        assert_eq!(p.sessions_page, 3);
        assert_eq!(p.user.as_deref(), Some("ann"));
        assert_eq!(Paging::parse(Some("per_page=0")).unwrap().per_page, 1);
        assert_eq!(Paging::parse(None).unwrap().per_page, MAX_PER_PAGE);
        for bad in [
            "per_page=ten",
            "sessions_page=0",
            "sessions_page=-1",
            "audit_before=x",
            "audit_before=1&audit_after=2",
        ] {
            assert_eq!(Paging::parse(Some(bad)), Err(BadPage), "{bad}");
        }
    }

    #[test]
    fn a_link_keeps_the_filters_and_the_page_size_asked_for() {
        let p = Paging::parse(Some("user=a%20b&event=x&per_page=10")).unwrap();
        assert_eq!(
            p.link("/_p", 2, AuditAt::Before(7)),
            "/_p/admin?user=a%20b&event=x&per_page=10&sessions_page=2&audit_before=7"
        );
        let p = Paging::parse(None).unwrap();
        assert_eq!(p.link("/_p", 1, AuditAt::Newest), "/_p/admin");
    }
}
