//! The sign-in pages: password form, second-factor challenge, TOTP enrollment, recovery codes.
//! Plain server-rendered HTML (no scripts), labelled fields, errors in `role="alert"` regions.
//! Every value is escaped here; callers pass raw text.

use crate::auth::password::MIN_PASSWORD_CHARS as MIN_PASSWORD;
use crate::pages::{esc, Chrome, Msg};
use crate::proxy::forward::GatewayBody;
use hyper::{Response, StatusCode};

fn error_block(error: Option<&str>) -> String {
    error.map_or_else(String::new, |e| {
        format!(
            "<div class=\"error\" role=\"alert\" id=\"form-error\">{}</div>",
            esc(e)
        )
    })
}

fn notice_block(notice: Option<&str>) -> String {
    notice.map_or_else(String::new, |n| {
        format!("<div class=\"notice\" role=\"status\">{}</div>", esc(n))
    })
}

/// What the native sign-in form shows.
pub struct LoginForm<'a> {
    pub action: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    pub username: &'a str,
    pub error: Option<&'a str>,
    /// Bound to an enrollment invitation: its token, and whether the user has no password yet
    /// (then they choose one here).
    pub invite: Option<(&'a str, bool)>,
    /// `[native] passkey_login`: offer `#passkey-signin`, under this prefix.
    pub passkey: Option<&'a str>,
}

/// The native password form (or, through an enrollment link, the form bound to it).
pub fn login_form(chrome: &Chrome, status: StatusCode, f: &LoginForm<'_>) -> Response<GatewayBody> {
    let described = if f.error.is_some() {
        " aria-describedby=\"form-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    let current = format!(
        "<label for=\"password\">{label}</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required{described}>",
        label = esc(chrome.t(Msg::Password))
    );
    let (title, intro, user_attrs, invite, password) = match f.invite {
        None => (
            chrome.t(Msg::SignIn),
            String::new(),
            " required autofocus",
            String::new(),
            current,
        ),
        Some((token, choose)) => (
            chrome.t(Msg::SetUpSignIn),
            format!("<p>{}</p>", esc(chrome.t(Msg::InviteIntro))),
            " readonly",
            format!(
                "<input type=\"hidden\" name=\"invite\" value=\"{}\">",
                esc(token)
            ),
            if choose {
                format!(
                    "<label for=\"new_password\">{choose}</label>\
<input id=\"new_password\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" minlength=\"{MIN_PASSWORD}\" required autofocus{described}>\
<label for=\"confirm_password\">{again}</label>\
<input id=\"confirm_password\" name=\"confirm_password\" type=\"password\" autocomplete=\"new-password\" required{described}>",
                    choose = esc(&chrome.fill(Msg::ChoosePassword, "n", &MIN_PASSWORD.to_string())),
                    again = esc(chrome.t(Msg::TypeItAgain)),
                )
            } else {
                current
            },
        ),
    };
    let body = format!(
        "<h1>{title}</h1>{intro}{err}\
<form method=\"post\" action=\"{action}\">\
<input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"rd\" value=\"{rd}\">{invite}\
<label for=\"username\">{username}</label>\
<input id=\"username\" name=\"username\" type=\"text\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\"{user_attrs} value=\"{user}\"{described}>\
{password}<button type=\"submit\">{sign_in}</button></form>{passkey}",
        passkey = f.passkey.map_or_else(String::new, |prefix| passkey_block(
            chrome,
            &PasskeyButton {
                kind: "signin",
                id: "passkey-signin",
                label: Msg::PasskeySignIn,
                prefix,
                options_url: f.action,
                options_mode: Some("passkey-options"),
                csrf: f.csrf,
                action: f.action,
                mode: "passkey",
                extra: &format!("<input type=\"hidden\" name=\"rd\" value=\"{}\">", esc(f.rd)),
            },
        )),
        title = esc(title),
        username = esc(chrome.t(Msg::Username)),
        sign_in = esc(chrome.t(Msg::SignIn)),
        err = error_block(f.error),
        action = esc(f.action),
        csrf = esc(f.csrf),
        rd = esc(f.rd),
        user = esc(f.username),
    );
    chrome.page(status, title, &body)
}

/// What the challenge page offers.
pub struct Challenge<'a> {
    pub prefix: &'a str,
    pub csrf: &'a str,
    pub remember_days: Option<u64>,
    pub email_hint: Option<&'a str>,
    pub recovery: bool,
    /// The field takes a recovery code (the "use a recovery code" link was followed).
    pub recovery_mode: bool,
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    /// Offer the user's passkey (`#webauthn-login`).
    pub passkey: bool,
    /// Offer the code field (some code the roles accept: TOTP, email or recovery).
    pub codes: bool,
}

/// The second-factor challenge: a passkey where the user has one, and one `code` field for
/// TOTP, email or recovery codes where the roles accept any.
pub fn challenge(chrome: &Chrome, status: StatusCode, c: &Challenge<'_>) -> Response<GatewayBody> {
    let remember = c.remember_days.map_or_else(String::new, |d| {
        let text = if d == 1 {
            chrome.t(Msg::RememberOneDay).to_owned()
        } else {
            chrome.fill(Msg::RememberDays, "n", &d.to_string())
        };
        format!(
            "<label class=\"check\" for=\"remember\"><input id=\"remember\" name=\"remember\" type=\"checkbox\" value=\"1\"> \
{}</label>",
            esc(&text)
        )
    });
    let p = esc(c.prefix);
    // Recovery codes have letters: their field must not bring up a digits-only keyboard, so the
    // page switches fields by a link (no script: the CSP allows none).
    let recovery_mode = c.recovery && c.recovery_mode;
    let (hint, label, inputmode, autocomplete, switch) = if recovery_mode {
        (
            chrome.t(Msg::RecoveryHint),
            chrome.t(Msg::RecoveryCode),
            "",
            "off",
            format!(
                "<p><a id=\"use-app-code\" href=\"{p}/mfa\">{}</a></p>",
                esc(chrome.t(Msg::UseAppCode))
            ),
        )
    } else {
        (
            chrome.t(Msg::AppCodeHint),
            chrome.t(Msg::VerificationCode),
            " inputmode=\"numeric\"",
            "one-time-code",
            if c.recovery {
                format!(
                    "<p><a id=\"use-recovery-code\" href=\"{p}/mfa?recovery=1\">{}</a></p>",
                    esc(chrome.t(Msg::UseRecoveryCode))
                )
            } else {
                String::new()
            },
        )
    };
    let mode = if recovery_mode {
        "<input type=\"hidden\" name=\"mode\" value=\"recovery\">"
    } else {
        ""
    };
    let email = c.email_hint.map_or_else(String::new, |to| {
        format!(
            "<form method=\"post\" action=\"{p}/mfa/email\"><input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
<button type=\"submit\" class=\"secondary\">{text}</button></form>",
            csrf = esc(c.csrf),
            text = esc(&chrome.fill(Msg::EmailCodeTo, "to", to))
        )
    });
    let described = if c.error.is_some() {
        " aria-describedby=\"form-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    let action = format!("{}/mfa", c.prefix);
    let options = format!("{}/mfa/webauthn", c.prefix);
    let passkey = if c.passkey {
        let block = passkey_block(
            chrome,
            &PasskeyButton {
                kind: "login",
                id: "webauthn-login",
                label: Msg::PasskeyUse,
                prefix: c.prefix,
                options_url: &options,
                options_mode: None,
                csrf: c.csrf,
                action: &action,
                mode: "webauthn",
                extra: "",
            },
        );
        if c.codes {
            format!("{block}<p>{}</p>", esc(chrome.t(Msg::PasskeyOr)))
        } else {
            block
        }
    } else {
        String::new()
    };
    let codes = if c.codes {
        format!(
            "<p id=\"code-hint\">{hint}</p>\
<form method=\"post\" action=\"{p}/mfa\">\
<input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">{mode}\
<label for=\"code\">{label}</label>\
<input id=\"code\" name=\"code\" type=\"text\"{inputmode} autocomplete=\"{autocomplete}\" autocapitalize=\"none\" spellcheck=\"false\" required{autofocus} aria-describedby=\"code-hint\"{described}>\
{remember}<button type=\"submit\">{verify}</button></form>{switch}{email}",
            hint = esc(hint),
            label = esc(label),
            verify = esc(chrome.t(Msg::Verify)),
            csrf = esc(c.csrf),
            autofocus = if c.passkey { "" } else { " autofocus" },
        )
    } else {
        String::new()
    };
    let body = format!(
        "<h1>{title}</h1>{notice}{err}{passkey}{codes}",
        title = esc(chrome.t(Msg::TwoStep)),
        notice = notice_block(c.notice),
        err = error_block(c.error),
    );
    chrome.page(status, chrome.t(Msg::TwoStep), &body)
}

/// What the enrollment page shows.
#[derive(Clone, Copy)]
pub struct Enrollment<'a> {
    /// Where the confirmation form posts.
    pub action: &'a str,
    pub csrf: &'a str,
    pub uri: &'a str,
    pub qr_svg: &'a str,
    pub grouped_secret: &'a str,
    pub error: Option<&'a str>,
    /// The authenticator app is offered (the roles accept TOTP).
    pub totp: bool,
    /// A passkey is offered (`#webauthn-register`), under this prefix.
    pub passkey: Option<&'a str>,
}

/// TOTP enrollment: QR code, the otpauth URI and the secret in groups, then a confirmation code.
pub fn enroll(chrome: &Chrome, status: StatusCode, e: &Enrollment<'_>) -> Response<GatewayBody> {
    let Enrollment {
        action,
        csrf,
        uri,
        qr_svg,
        grouped_secret,
        error,
        totp,
        passkey,
    } = *e;
    let described = if error.is_some() {
        " aria-describedby=\"form-error\" aria-invalid=\"true\""
    } else {
        ""
    };
    let passkey = passkey.map_or_else(String::new, |prefix| {
        let extra = format!(
            "<label for=\"passkey-name\">{}</label><input id=\"passkey-name\" name=\"name\" type=\"text\" maxlength=\"64\" value=\"Passkey\">",
            esc(chrome.t(Msg::PasskeyName))
        );
        let block = passkey_block(
            chrome,
            &PasskeyButton {
                kind: "register",
                id: "webauthn-register",
                label: Msg::PasskeyRegister,
                prefix,
                options_url: &format!("{prefix}/mfa/webauthn"),
                options_mode: None,
                csrf,
                action,
                mode: "webauthn",
                extra: &extra,
            },
        );
        let or_app = if totp {
            format!("<h2>{}</h2>", esc(chrome.t(Msg::PasskeyOrApp)))
        } else {
            String::new()
        };
        format!(
            "<h2>{}</h2><p>{}</p>{block}{or_app}",
            esc(chrome.t(Msg::PasskeyRegister)),
            esc(chrome.t(Msg::PasskeyEnrollIntro))
        )
    });
    if !totp {
        let body = format!(
            "<h1>{title}</h1>{err}{passkey}",
            title = esc(chrome.t(Msg::SetUpTwoStep)),
            err = error_block(error),
        );
        return chrome.page(status, chrome.t(Msg::SetUpTwoStep), &body);
    }
    // `qr_svg` is generated by us from the URI (no user-controlled markup); the rest is escaped.
    let body = format!(
        "<h1>{title}</h1>{err}{passkey}\
<p>{scan}</p>\
<div class=\"qr\">{qr_svg}</div>\
<p>{by_hand}<br><span class=\"secret\" id=\"totp-secret\">{secret}</span></p>\
<details><summary>{show}</summary><p><code id=\"totp-uri\">{uri}</code></p></details>\
<form method=\"post\" action=\"{action}\">\
<input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
<label for=\"code\">{enter}</label>\
<input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required{autofocus}{described}>\
<button type=\"submit\">{confirm}</button></form>",
        autofocus = if passkey.is_empty() { " autofocus" } else { "" },
        title = esc(chrome.t(Msg::SetUpTwoStep)),
        scan = esc(chrome.t(Msg::ScanQr)),
        by_hand = esc(chrome.t(Msg::KeyByHand)),
        show = esc(chrome.t(Msg::ShowSetupLink)),
        enter = esc(chrome.t(Msg::EnterAppCode)),
        confirm = esc(chrome.t(Msg::Confirm)),
        err = error_block(error),
        secret = esc(grouped_secret),
        uri = esc(uri),
        action = esc(action),
        csrf = esc(csrf),
    );
    chrome.page(status, chrome.t(Msg::SetUpTwoStep), &body)
}

/// The recovery codes, shown once, with the way on.
pub fn recovery_codes(chrome: &Chrome, codes: &[String], next_url: &str) -> Response<GatewayBody> {
    let items: String = codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>", esc(c)))
        .collect();
    let body = format!(
        "<h1>{title}</h1>\
<div class=\"notice\" role=\"status\">{on}</div>\
<p>{explain}</p><ol class=\"codes\" id=\"recovery-codes\">{items}</ol>\
<a class=\"button\" href=\"{next}\">{saved}</a>",
        next = esc(next_url),
        title = esc(chrome.t(Msg::SaveRecoveryCodes)),
        on = esc(chrome.t(Msg::TwoStepOn)),
        explain = esc(chrome.t(Msg::RecoveryCodesExplain)),
        saved = esc(chrome.t(Msg::SavedContinue)),
    );
    chrome.page(
        super::error::ok_status(),
        chrome.t(Msg::RecoveryCodes),
        &body,
    )
}

/// A page with a message and a way on.
pub fn notice(
    chrome: &Chrome,
    title: &str,
    message: &str,
    next_url: &str,
    next_label: &str,
) -> Response<GatewayBody> {
    let body = format!(
        "<h1>{}</h1><div class=\"notice\" role=\"status\">{}</div><a class=\"button\" href=\"{}\">{}</a>",
        esc(title),
        esc(message),
        esc(next_url),
        esc(next_label)
    );
    chrome.page(super::error::ok_status(), title, &body)
}

/// A passkey button with everything its script needs (DESIGN.md §10): the options URL, the
/// form its answer is posted in, and the texts of its alert element. Hidden until the script
/// finds WebAuthn; until then the note says what is missing.
pub struct PasskeyButton<'a> {
    /// `register`, `login` or `signin` (the script's ceremony).
    pub kind: &'a str,
    /// The button's element id (`webauthn-register`, `webauthn-login`, `passkey-signin`).
    pub id: &'a str,
    pub label: Msg,
    pub prefix: &'a str,
    pub options_url: &'a str,
    /// Sent with the options request (`passkey-options` on the native path).
    pub options_mode: Option<&'a str>,
    pub csrf: &'a str,
    /// Where the answer is posted, with `mode` and any extra fields (already HTML).
    pub action: &'a str,
    pub mode: &'a str,
    pub extra: &'a str,
}

/// The HTML of a passkey button, its form and its script.
pub fn passkey_block(chrome: &Chrome, b: &PasskeyButton<'_>) -> String {
    let id = esc(b.id);
    let mode = b
        .options_mode
        .map_or_else(String::new, |m| format!(" data-mode=\"{}\"", esc(m)));
    format!(
        "<div class=\"passkey\">\
<p id=\"{id}-note\" class=\"hint\">{unsupported}</p>\
<div class=\"error\" role=\"alert\" id=\"{id}-alert\" hidden></div>\
<form id=\"{id}-form\" method=\"post\" action=\"{action}\">\
<input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\
<input type=\"hidden\" name=\"mode\" value=\"{form_mode}\">\
<input type=\"hidden\" name=\"credential\" value=\"\">{extra}\
<button type=\"button\" id=\"{id}\" data-passkey=\"{kind}\" data-options=\"{options}\"{mode} \
data-csrf=\"{csrf}\" data-form=\"{id}-form\" data-alert=\"{id}-alert\" data-note=\"{id}-note\" \
data-cancelled=\"{cancelled}\" data-failed=\"{failed}\" hidden>{label}</button></form>\
<script src=\"{prefix}/static/webauthn.js\" defer></script></div>",
        unsupported = esc(chrome.t(Msg::PasskeyUnsupported)),
        action = esc(b.action),
        csrf = esc(b.csrf),
        form_mode = esc(b.mode),
        extra = b.extra,
        kind = esc(b.kind),
        options = esc(b.options_url),
        cancelled = esc(chrome.t(Msg::PasskeyCancelled)),
        failed = esc(chrome.t(Msg::PasskeyFailed)),
        label = esc(chrome.t(b.label)),
        prefix = esc(b.prefix),
    )
}
