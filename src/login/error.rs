//! The one place a login's refusals and re-shown forms get their status and text:
//! [`LoginError`] (the login cannot go on: a page with a reference, and a log line), [`Shown`]
//! (a form shown again: its status and message), and the SSO refusals ([`Refusal`]). Fixed texts
//! only: IdP, store and library errors go to the log, never to the page.

use crate::accounts::Accounts;
use crate::audit::{self, Event};
use crate::http::{respond, store_error, GatewayError};
use crate::pages::catalogue::Msg;
use crate::pages::Chrome;
use crate::proxy::forward::GatewayBody;
use crate::session::random_id;
use crate::state::Gateway;
use crate::storage::StoreError;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use std::net::IpAddr;

/// Why a login stops here.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The pending login is gone: expired, finished, or never begun.
    #[error("sign-in expired or already completed")]
    Expired,
    /// A form posted from another site (`Origin` not ours, or `null`).
    #[error("form posted from another site")]
    CrossSite,
    /// A form whose CSRF token is missing, wrong or already used.
    #[error("form token missing, wrong or used")]
    FormExpired,
    /// No password-hashing slot within the queue wait.
    #[error("password hashing saturated")]
    Busy,
    /// An enrollment link that is unknown, used, replaced or expired.
    #[error("enrollment link not valid")]
    InvalidLink,
    /// Valid credentials, but no configured role.
    #[error("no role")]
    NoRole,
    /// The login's roles accept no second factor that is offered (`roles.<r>.mfa_methods`).
    #[error("no second factor the roles accept")]
    NoAllowedFactor,
    /// No second factor yet, and enrollment needs the invitation link.
    #[error("enrollment needs the invitation")]
    NeedsInvite,
    /// The account changed while the login was pending (disabled, roles, an admin action).
    #[error("the account changed during the sign-in")]
    Stale,
    /// An identity value cannot be forwarded exactly (DESIGN.md §6).
    #[error("identity value cannot be forwarded")]
    UnusableIdentity,
    /// The IdP of this sign-in is not reachable or not loaded yet.
    #[error("identity provider unavailable")]
    IdpUnavailable,
    /// No such sign-in method.
    #[error("sign-in method not available")]
    MethodUnavailable,
    /// An IdP's answer (a SAMLResponse) over the size limit.
    #[error("identity provider answer too large")]
    AnswerTooLarge,
    /// An IdP's sign-out message that does not verify.
    #[error("logout message refused")]
    LogoutRefused,
    /// Signed out locally; the IdP did not confirm its own sign-out.
    #[error("signed out here only")]
    SignedOutHereOnly,
    /// A method this endpoint does not answer.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// No such endpoint, or the feature is not configured.
    #[error("not found")]
    NotFound,
    /// A "this was not me" link that is not the gateway's or was changed.
    #[error("report link not valid")]
    ReportInvalid,
    /// A "this was not me" link past `[notify] report_ttl`.
    #[error("report link expired")]
    ReportExpired,
    /// A "this was not me" link that was already used.
    #[error("report link already used")]
    ReportUsed,
    /// A break-glass link that is unknown, used, or whose access was disarmed or ended.
    #[error("break-glass link not valid")]
    BreakGlassInvalid,
    /// A store failed: fail closed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The page for a login that cannot go on, with a reference that matches its log line.
pub fn page(gw: &Gateway, e: LoginError) -> Response<GatewayBody> {
    // Fail closed: the proxy path's mapping, so a store outage reads the same everywhere.
    let e = match e {
        LoginError::Store(err) => return store_error(gw, err),
        other => other,
    };
    let start = first_native_path(gw);
    let (status, title, what, next) = match &e {
        LoginError::Expired => (
            StatusCode::BAD_REQUEST,
            gw.chrome.t(Msg::ErrExpiredTitle),
            gw.chrome.t(Msg::ErrExpiredWhat),
            gw.chrome.fill(Msg::ErrStartAgainAt, "start", &start),
        ),
        LoginError::CrossSite => (
            StatusCode::FORBIDDEN,
            gw.chrome.t(Msg::ErrFormRefused),
            gw.chrome.t(Msg::ErrCrossSiteWhat),
            gw.chrome.t(Msg::ErrCrossSiteNext).to_owned(),
        ),
        LoginError::FormExpired => (
            StatusCode::FORBIDDEN,
            gw.chrome.t(Msg::ErrFormExpired),
            gw.chrome.t(Msg::ErrFormExpiredWhat),
            gw.chrome.t(Msg::ErrReloadTryAgain).to_owned(),
        ),
        LoginError::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            gw.chrome.t(Msg::ErrBusy),
            gw.chrome.t(Msg::ErrBusyWhat),
            gw.chrome.t(Msg::ErrWaitTryAgain).to_owned(),
        ),
        LoginError::InvalidLink => (
            StatusCode::BAD_REQUEST,
            gw.chrome.t(Msg::ErrLinkNotValid),
            gw.chrome.t(Msg::ErrEnrollInvalidWhat),
            gw.chrome.t(Msg::ErrAskNewEnrollLink).to_owned(),
        ),
        LoginError::NoRole => (
            StatusCode::FORBIDDEN,
            gw.chrome.t(Msg::ErrNoAccess),
            gw.chrome.t(Msg::ErrNoRoleWhat),
            gw.chrome.t(Msg::ErrAskForRole).to_owned(),
        ),
        LoginError::NoAllowedFactor => (
            StatusCode::FORBIDDEN,
            gw.chrome.t(Msg::ErrNoAccess),
            gw.chrome.t(Msg::ErrNoFactorWhat),
            gw.chrome.t(Msg::ErrAskForRole).to_owned(),
        ),
        LoginError::NeedsInvite => (
            StatusCode::FORBIDDEN,
            gw.chrome.t(Msg::ErrUseEnrollLink),
            gw.chrome.t(Msg::ErrNoMfaWhat),
            gw.chrome.t(Msg::ErrOpenEnrollLink).to_owned(),
        ),
        LoginError::Stale => (
            StatusCode::FORBIDDEN,
            gw.chrome.t(Msg::SignInAgain),
            gw.chrome.t(Msg::ErrChangedWhat),
            gw.chrome.fill(Msg::ErrStartAgainAsk, "start", &start),
        ),
        LoginError::UnusableIdentity => (
            StatusCode::FORBIDDEN,
            gw.chrome.t(Msg::ErrAccountUnusable),
            gw.chrome.t(Msg::ErrUnsafeClaimsWhat),
            gw.chrome.t(Msg::ErrCheckAccountQuote).to_owned(),
        ),
        LoginError::IdpUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            gw.chrome.t(Msg::ErrIdpDownTitle),
            gw.chrome.t(Msg::ErrIdpDownWhat),
            gw.chrome.t(Msg::ErrTryInMinute).to_owned(),
        ),
        LoginError::MethodUnavailable => (
            StatusCode::NOT_FOUND,
            gw.chrome.t(Msg::ErrMethodOffTitle),
            gw.chrome.t(Msg::ErrMethodOffWhat),
            gw.chrome.t(Msg::ErrChooseOther).to_owned(),
        ),
        LoginError::AnswerTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            gw.chrome.t(Msg::ErrSignInFailed),
            gw.chrome.t(Msg::ErrTooLargeWhat),
            gw.chrome.t(Msg::ErrStartAgainTell).to_owned(),
        ),
        LoginError::LogoutRefused => (
            StatusCode::BAD_REQUEST,
            gw.chrome.t(Msg::ErrLogoutRefused),
            gw.chrome.t(Msg::ErrLogoutRefusedWhat),
            gw.chrome.t(Msg::ErrUseSignOutLink).to_owned(),
        ),
        // A success page all the same: the local session did end.
        LoginError::SignedOutHereOnly => (
            StatusCode::OK,
            gw.chrome.t(Msg::ErrSignedOutHere),
            gw.chrome.t(Msg::ErrSignedOutHereWhat),
            gw.chrome.t(Msg::ErrCloseBrowser).to_owned(),
        ),
        LoginError::ReportInvalid => (
            StatusCode::BAD_REQUEST,
            gw.chrome.t(Msg::ErrLinkNotValid),
            gw.chrome.t(Msg::ErrReportInvalidWhat),
            gw.chrome.t(Msg::ErrUseLinkExactly).to_owned(),
        ),
        LoginError::ReportExpired => (
            StatusCode::GONE,
            gw.chrome.t(Msg::ErrLinkExpired),
            gw.chrome.t(Msg::ErrReportExpiredWhat),
            gw.chrome.t(Msg::ErrNotYoursTell).to_owned(),
        ),
        LoginError::ReportUsed => (
            StatusCode::CONFLICT,
            gw.chrome.t(Msg::ErrAlreadyReported),
            gw.chrome.t(Msg::ErrReportUsedWhat),
            gw.chrome.t(Msg::ErrStillNotYours).to_owned(),
        ),
        LoginError::BreakGlassInvalid => (
            StatusCode::FORBIDDEN,
            gw.chrome.t(Msg::ErrBreakGlassTitle),
            gw.chrome.t(Msg::ErrBreakGlassWhat),
            gw.chrome.t(Msg::ErrAskArmer).to_owned(),
        ),
        // A browser gets a page with the ways on, an API client JSON (`lang::scope`).
        LoginError::MethodNotAllowed => {
            return gw.chrome.method_not_allowed(crate::pages::lang::html())
        }
        LoginError::NotFound => return gw.chrome.not_found(crate::pages::lang::html()),
        LoginError::Store(_) => return respond(gw, GatewayError::NoLogin, true),
    };
    let correlation = random_id(9);
    match e {
        LoginError::CrossSite | LoginError::FormExpired => {
            tracing::info!(target: "audit", kind = "csrf.refused", correlation = %correlation, error = %e, "form refused")
        }
        _ => tracing::info!(correlation = %correlation, error = %e, "sign-in stopped"),
    }
    let mut r = gw
        .chrome
        .error_page(status, title, what, &next, &correlation);
    if matches!(e, LoginError::Busy) {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    }
    r
}

/// An OIDC back-channel logout refused (OIDC Back-Channel Logout §2.8: 400 with an
/// OAuth-style error body, for the IdP, not a person).
pub fn backchannel_refused(detail: &'static str) -> Response<GatewayBody> {
    crate::pages::json_error(StatusCode::BAD_REQUEST, "invalid_request", detail)
}

/// The status of a form shown again: refused (`401`) or not.
pub fn form_status(refused: bool) -> StatusCode {
    if refused {
        Shown::Refused(Msg::WrongCode).status()
    } else {
        Shown::Fresh.status()
    }
}

/// The status of a page shown after success (sign-in chooser, signed out, recovery codes).
pub fn ok_status() -> StatusCode {
    Shown::Fresh.status()
}

/// The status of the page that shows the IdP's own refusal (a SAML status that is not Success).
pub fn idp_refused_status() -> StatusCode {
    StatusCode::FORBIDDEN
}

/// Why a form is shown (again): its status and, when refused, the message above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// First display, or a success notice.
    Fresh,
    /// Wrong password, unknown or disabled user (indistinguishable).
    WrongPassword,
    /// Inside a lock period.
    Locked,
    /// A value the user chose that is not acceptable (the message says why).
    Unacceptable(crate::auth::native::PasswordProblem),
    /// A second-factor code that does not match.
    WrongCode,
    /// A TOTP code of a time step already used.
    CodeReused,
    /// Email codes are not offered to this login.
    EmailUnavailable,
    /// An email code was sent a moment ago.
    EmailTooSoon,
    /// The mail server refused or did not answer.
    EmailFailed,
    /// A second factor refused for a reason of its own (the catalogue text says which).
    Refused(Msg),
}

impl Shown {
    pub fn status(self) -> StatusCode {
        match self {
            Shown::Fresh => StatusCode::OK,
            Shown::WrongPassword | Shown::WrongCode | Shown::CodeReused | Shown::Refused(_) => {
                StatusCode::UNAUTHORIZED
            }
            Shown::Locked | Shown::EmailTooSoon => StatusCode::TOO_MANY_REQUESTS,
            Shown::Unacceptable(_) | Shown::EmailUnavailable => StatusCode::BAD_REQUEST,
            Shown::EmailFailed => StatusCode::BAD_GATEWAY,
        }
    }

    /// The message above the form, in the page's language.
    pub fn message(self, chrome: &Chrome) -> Option<&'static str> {
        let key = match self {
            Shown::Fresh => return None,
            Shown::Unacceptable(why) => match why {
                crate::auth::native::PasswordProblem::TooShort => Msg::PwTooShort,
                crate::auth::native::PasswordProblem::TooLong => Msg::PwTooLong,
                crate::auth::native::PasswordProblem::Differ => Msg::PwDiffer,
            },
            Shown::Refused(m) => m,
            Shown::WrongPassword => Msg::WrongPassword,
            Shown::Locked => Msg::Locked,
            Shown::WrongCode => Msg::WrongCode,
            Shown::CodeReused => Msg::CodeReused,
            Shown::EmailUnavailable => Msg::EmailUnavailable,
            Shown::EmailTooSoon => Msg::EmailTooSoon,
            Shown::EmailFailed => Msg::EmailFailed,
        };
        Some(chrome.t(key))
    }
}

/// An SSO login refused: the audit reason and the page's status and texts (catalogue keys,
/// written in the page's language by `page`).
pub struct Refusal {
    pub status: StatusCode,
    pub reason: &'static str,
    pub title: Msg,
    pub what: Msg,
    pub next: Msg,
}

impl Refusal {
    /// The refusal page, with the reference of the log and audit line.
    pub fn page(&self, chrome: &Chrome, correlation: &str) -> Response<GatewayBody> {
        let t = |m: Msg| chrome.t(m);
        chrome.error_page(
            self.status,
            t(self.title),
            t(self.what),
            t(self.next),
            correlation,
        )
    }
}

/// A role mapping that left no role.
pub const SSO_NO_ROLE: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "no_role",
    title: Msg::ErrNoAccess,
    what: Msg::SsoNoRoleWhat,
    next: Msg::SsoAskForGroup,
};

/// `on_missing_mfa = "deny"` and no evidence.
pub const SSO_MFA_DENIED: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "mfa_evidence_missing",
    title: Msg::SsoMfaTitle,
    what: Msg::SsoMfaWhat,
    next: Msg::SsoMfaNext,
};

/// An identity value that cannot be forwarded exactly (DESIGN.md §6).
pub const SSO_UNUSABLE_IDENTITY: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "identity_value",
    title: Msg::ErrAccountUnusable,
    what: Msg::ErrUnsafeClaimsWhat,
    next: Msg::ErrCheckAccountQuote,
};

/// The `login.failure` audit line of a native login.
pub async fn audit_failure(
    gw: &Gateway,
    user: &str,
    outcome: audit::Outcome,
    reason: &str,
    ip: IpAddr,
) {
    audit::record(
        gw,
        Event {
            user: Some(user),
            method: Some("native"),
            reason: Some(reason),
            ip: Some(ip),
            ..Event::new(audit::Kind::LoginFailure, outcome)
        },
    )
    .await;
}

/// The user store, when one is configured (native login and step-up need it).
pub fn accounts(gw: &Gateway) -> Option<&Accounts> {
    gw.accounts.as_deref()
}

/// The first native login path (where "start again" points).
pub fn first_native_path(gw: &Gateway) -> String {
    gw.config
        .native
        .as_ref()
        .and_then(|n| n.paths.first())
        .cloned()
        .unwrap_or_else(|| "/".into())
}

/// OIDC refusal.
pub const OIDC_EXPIRED: Refusal = Refusal {
    status: StatusCode::BAD_REQUEST,
    reason: "state",
    title: Msg::ErrExpiredTitle,
    what: Msg::OidcExpiredWhat,
    next: Msg::StartSignInAgain,
};

/// OIDC refusal.
pub const OIDC_BAD_ANSWER: Refusal = Refusal {
    status: StatusCode::BAD_GATEWAY,
    reason: "id_token",
    title: Msg::ErrSignInFailed,
    what: Msg::IdpAnswerUnverified,
    next: Msg::TryAgainQuote,
};

/// DESIGN.md §6: an identity value that cannot be forwarded exactly refuses the login.
pub const OIDC_UNUSABLE_IDENTITY: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "identity_value",
    title: Msg::ErrAccountUnusable,
    what: Msg::ErrUnsafeClaimsWhat,
    next: Msg::ErrCheckAccountQuote,
};

/// OIDC refusal.
pub const OIDC_MIXED_UP: Refusal = Refusal {
    status: StatusCode::BAD_REQUEST,
    reason: "authorization_response",
    title: Msg::ErrSignInFailed,
    what: Msg::OidcMixedUpWhat,
    next: Msg::StartAgainQuote,
};

/// OIDC refusal: idp_error.
pub const OIDC_IDP_ERROR: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "idp_error",
    title: Msg::NotCompletedTitle,
    what: Msg::IdpRefusedWhat,
    next: Msg::StartAgainOrAsk,
};

/// OIDC refusal: token_timeout.
pub const OIDC_TOKEN_TIMEOUT: Refusal = Refusal {
    status: StatusCode::GATEWAY_TIMEOUT,
    reason: "token_timeout",
    title: Msg::ErrSignInFailed,
    what: Msg::IdpTimeoutWhat,
    next: Msg::ErrTryInMinute,
};

/// OIDC refusal: token_endpoint.
pub const OIDC_TOKEN_ENDPOINT: Refusal = Refusal {
    status: StatusCode::BAD_GATEWAY,
    reason: "token_endpoint",
    title: Msg::ErrSignInFailed,
    what: Msg::IdpIncompleteWhat,
    next: Msg::TryInMinuteQuote,
};

/// SAML refusal.
pub const SAML_BAD_RESPONSE: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "saml_response",
    title: Msg::ErrSignInFailed,
    what: Msg::IdpAnswerUnverified,
    next: Msg::StartAgainQuote,
};

/// SAML refusal.
pub const SAML_MALFORMED: Refusal = Refusal {
    status: StatusCode::BAD_REQUEST,
    reason: "saml_malformed",
    title: Msg::ErrSignInFailed,
    what: Msg::SamlMalformedWhat,
    next: Msg::StartAgainQuote,
};

/// No stable subject (finding 9): a transient or unspecified NameID and no subject attribute.
pub const SAML_NO_STABLE_SUBJECT: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "no_stable_subject",
    title: Msg::ErrSignInFailed,
    what: Msg::NoStableSubjectWhat,
    next: Msg::NoStableSubjectNext,
};

/// SAML refusal.
pub const SAML_EXPIRED: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "in_response_to",
    title: Msg::ErrExpiredTitle,
    what: Msg::SamlExpiredWhat,
    next: Msg::StartSignInAgain,
};

/// SAML refusal: identity_value.
pub const SAML_IDENTITY_VALUE: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "identity_value",
    title: Msg::ErrAccountUnusable,
    what: Msg::SamlUnsafeClaimsWhat,
    next: Msg::ErrCheckAccountQuote,
};

/// SSO refusal: mfa_evidence_missing.
pub const SSO_MFA_EVIDENCE_MISSING: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    reason: "mfa_evidence_missing",
    title: Msg::SsoMfaTitle,
    what: Msg::SsoMfaWhat,
    next: Msg::SsoMfaNext,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Language;

    #[test]
    fn the_too_short_message_names_the_real_minimum_in_every_language() {
        let min = crate::auth::password::MIN_PASSWORD_CHARS.to_string();
        for lang in Language::ALL {
            assert!(Msg::PwTooShort.text(lang).contains(&min), "{lang:?}");
        }
    }
}
