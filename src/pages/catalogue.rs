//! Every text of the gateway's pages, once per language: one key per message and one `match`
//! per language, so a key without a translation does not compile. `{n}` and `{to}` are filled
//! in by the caller (`Msg::fill`), after which the text is escaped like any other.

use crate::config::Language;

/// A message of the pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg {
    Footer,
    WaysOnLabel,
    SignInAgain,
    YourAccount,
    SignOut,
    Reference,
    PageNotFound,
    NoPageHere,
    CheckAddress,
    NotAllowedTitle,
    NotAllowedWhat,
    Username,
    Password,
    SignIn,
    SetUpSignIn,
    InviteIntro,
    ChoosePassword,
    TypeItAgain,
    TwoStep,
    RememberOneDay,
    RememberDays,
    RecoveryHint,
    RecoveryCode,
    UseAppCode,
    AppCodeHint,
    VerificationCode,
    UseRecoveryCode,
    EmailCodeTo,
    Verify,
    SetUpTwoStep,
    ScanQr,
    KeyByHand,
    ShowSetupLink,
    EnterAppCode,
    Confirm,
    SaveRecoveryCodes,
    TwoStepOn,
    RecoveryCodesExplain,
    SavedContinue,
    RecoveryCodes,
    Continue,
    SignOutQuestion,
    SignedInAs,
    StaySignedIn,
    YouAreSignedOut,
    SessionEnded,
    SignedOut,
    SignInWithPassword,
    SignInWith,
    ChooseSignIn,
}

impl Msg {
    /// Every key, for the test that each has a text in every language.
    pub const ALL: [Msg; 50] = [
        Msg::Footer,
        Msg::WaysOnLabel,
        Msg::SignInAgain,
        Msg::YourAccount,
        Msg::SignOut,
        Msg::Reference,
        Msg::PageNotFound,
        Msg::NoPageHere,
        Msg::CheckAddress,
        Msg::NotAllowedTitle,
        Msg::NotAllowedWhat,
        Msg::Username,
        Msg::Password,
        Msg::SignIn,
        Msg::SetUpSignIn,
        Msg::InviteIntro,
        Msg::ChoosePassword,
        Msg::TypeItAgain,
        Msg::TwoStep,
        Msg::RememberOneDay,
        Msg::RememberDays,
        Msg::RecoveryHint,
        Msg::RecoveryCode,
        Msg::UseAppCode,
        Msg::AppCodeHint,
        Msg::VerificationCode,
        Msg::UseRecoveryCode,
        Msg::EmailCodeTo,
        Msg::Verify,
        Msg::SetUpTwoStep,
        Msg::ScanQr,
        Msg::KeyByHand,
        Msg::ShowSetupLink,
        Msg::EnterAppCode,
        Msg::Confirm,
        Msg::SaveRecoveryCodes,
        Msg::TwoStepOn,
        Msg::RecoveryCodesExplain,
        Msg::SavedContinue,
        Msg::RecoveryCodes,
        Msg::Continue,
        Msg::SignOutQuestion,
        Msg::SignedInAs,
        Msg::StaySignedIn,
        Msg::YouAreSignedOut,
        Msg::SessionEnded,
        Msg::SignedOut,
        Msg::SignInWithPassword,
        Msg::SignInWith,
        Msg::ChooseSignIn,
    ];

    /// The text in `lang`.
    pub fn text(self, lang: Language) -> &'static str {
        match lang {
            Language::English => english(self),
            Language::German => german(self),
        }
    }

    /// The text with its `{name}` placeholder replaced by `value` (raw: escape the result).
    pub fn fill(self, lang: Language, name: &str, value: &str) -> String {
        self.text(lang).replace(&format!("{{{name}}}"), value)
    }
}

fn english(m: Msg) -> &'static str {
    match m {
        Msg::Footer => "Protected by portcullis",
        Msg::WaysOnLabel => "Where to go next",
        Msg::SignInAgain => "Sign in again",
        Msg::YourAccount => "Your account",
        Msg::SignOut => "Sign out",
        Msg::Reference => "Reference:",
        Msg::PageNotFound => "Page not found",
        Msg::NoPageHere => "There is no page at this address.",
        Msg::CheckAddress => "Check the address, or go on from one of these pages.",
        Msg::NotAllowedTitle => "Not possible here",
        Msg::NotAllowedWhat => "This page cannot be used that way (the request's method is not allowed).",
        Msg::Username => "Username",
        Msg::Password => "Password",
        Msg::SignIn => "Sign in",
        Msg::SetUpSignIn => "Set up your sign-in",
        Msg::InviteIntro => {
            "Sign in to set up two-step verification for your account. This link works once."
        }
        Msg::ChoosePassword => "Choose a password (at least {n} characters)",
        Msg::TypeItAgain => "Type it again",
        Msg::TwoStep => "Two-step verification",
        Msg::RememberOneDay => "Remember this device for 1 day",
        Msg::RememberDays => "Remember this device for {n} days",
        Msg::RecoveryHint => "Enter one of your recovery codes. Spaces and dashes do not matter.",
        Msg::RecoveryCode => "Recovery code",
        Msg::UseAppCode => "Use the code from your authenticator app",
        Msg::AppCodeHint => "Enter the 6-digit code from your authenticator app.",
        Msg::VerificationCode => "Verification code",
        Msg::UseRecoveryCode => "Use a recovery code",
        Msg::EmailCodeTo => "Email a code to {to}",
        Msg::Verify => "Verify",
        Msg::SetUpTwoStep => "Set up two-step verification",
        Msg::ScanQr => "Scan this QR code with an authenticator app (for example Aegis, Google Authenticator, Microsoft Authenticator or 1Password).",
        Msg::KeyByHand => "Or enter this key by hand:",
        Msg::ShowSetupLink => "Show the setup link",
        Msg::EnterAppCode => "Enter the 6-digit code the app shows",
        Msg::Confirm => "Confirm",
        Msg::SaveRecoveryCodes => "Save your recovery codes",
        Msg::TwoStepOn => "Two-step verification is on.",
        Msg::RecoveryCodesExplain => "If you lose your phone, each of these codes lets you sign in once. Store them somewhere safe now: they will not be shown again.",
        Msg::SavedContinue => "I have saved them, continue",
        Msg::RecoveryCodes => "Recovery codes",
        Msg::Continue => "Continue",
        Msg::SignOutQuestion => "Sign out?",
        Msg::SignedInAs => "You are signed in as {user}.",
        Msg::StaySignedIn => "Stay signed in and go to your account",
        Msg::YouAreSignedOut => "You are signed out",
        Msg::SessionEnded => "Your session has ended.",
        Msg::SignedOut => "Signed out",
        Msg::SignInWithPassword => "Sign in with a password",
        Msg::SignInWith => "Sign in with {name}",
        Msg::ChooseSignIn => "Choose how to sign in",
    }
}

fn german(m: Msg) -> &'static str {
    match m {
        Msg::Footer => "Geschützt durch portcullis",
        Msg::WaysOnLabel => "Wie es weitergeht",
        Msg::SignInAgain => "Erneut anmelden",
        Msg::YourAccount => "Ihr Konto",
        Msg::SignOut => "Abmelden",
        Msg::Reference => "Referenz:",
        Msg::PageNotFound => "Seite nicht gefunden",
        Msg::NoPageHere => "Unter dieser Adresse gibt es keine Seite.",
        Msg::CheckAddress => "Prüfen Sie die Adresse oder machen Sie auf einer dieser Seiten weiter.",
        Msg::NotAllowedTitle => "Hier nicht möglich",
        Msg::NotAllowedWhat => "Diese Seite kann so nicht verwendet werden (die Methode der Anfrage ist nicht erlaubt).",
        Msg::Username => "Benutzername",
        Msg::Password => "Passwort",
        Msg::SignIn => "Anmelden",
        Msg::SetUpSignIn => "Anmeldung einrichten",
        Msg::InviteIntro => "Melden Sie sich an, um die Bestätigung in zwei Schritten für Ihr Konto einzurichten. Dieser Link funktioniert nur einmal.",
        Msg::ChoosePassword => "Wählen Sie ein Passwort (mindestens {n} Zeichen)",
        Msg::TypeItAgain => "Noch einmal eingeben",
        Msg::TwoStep => "Bestätigung in zwei Schritten",
        Msg::RememberOneDay => "Dieses Gerät 1 Tag lang merken",
        Msg::RememberDays => "Dieses Gerät {n} Tage lang merken",
        Msg::RecoveryHint => "Geben Sie einen Ihrer Wiederherstellungscodes ein. Leerzeichen und Bindestriche spielen keine Rolle.",
        Msg::RecoveryCode => "Wiederherstellungscode",
        Msg::UseAppCode => "Code aus der Authenticator-App verwenden",
        Msg::AppCodeHint => "Geben Sie den 6-stelligen Code aus Ihrer Authenticator-App ein.",
        Msg::VerificationCode => "Bestätigungscode",
        Msg::UseRecoveryCode => "Wiederherstellungscode verwenden",
        Msg::EmailCodeTo => "Code per E-Mail an {to} senden",
        Msg::Verify => "Überprüfen",
        Msg::SetUpTwoStep => "Bestätigung in zwei Schritten einrichten",
        Msg::ScanQr => "Scannen Sie diesen QR-Code mit einer Authenticator-App (zum Beispiel Aegis, Google Authenticator, Microsoft Authenticator oder 1Password).",
        Msg::KeyByHand => "Oder geben Sie diesen Schlüssel von Hand ein:",
        Msg::ShowSetupLink => "Einrichtungslink anzeigen",
        Msg::EnterAppCode => "Geben Sie den 6-stelligen Code ein, den die App anzeigt",
        Msg::Confirm => "Bestätigen",
        Msg::SaveRecoveryCodes => "Speichern Sie Ihre Wiederherstellungscodes",
        Msg::TwoStepOn => "Die Bestätigung in zwei Schritten ist eingeschaltet.",
        Msg::RecoveryCodesExplain => "Falls Sie Ihr Telefon verlieren, können Sie sich mit jedem dieser Codes einmal anmelden. Bewahren Sie sie jetzt an einem sicheren Ort auf: Sie werden nicht noch einmal angezeigt.",
        Msg::SavedContinue => "Ich habe sie gespeichert, weiter",
        Msg::RecoveryCodes => "Wiederherstellungscodes",
        Msg::Continue => "Weiter",
        Msg::SignOutQuestion => "Abmelden?",
        Msg::SignedInAs => "Sie sind als {user} angemeldet.",
        Msg::StaySignedIn => "Angemeldet bleiben und zu Ihrem Konto gehen",
        Msg::YouAreSignedOut => "Sie sind abgemeldet",
        Msg::SessionEnded => "Ihre Sitzung wurde beendet.",
        Msg::SignedOut => "Abgemeldet",
        Msg::SignInWithPassword => "Mit Passwort anmelden",
        Msg::SignInWith => "Anmelden mit {name}",
        Msg::ChooseSignIn => "Wählen Sie, wie Sie sich anmelden möchten",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_text_in_every_language_with_the_same_placeholders() {
        let placeholders = |s: &str| -> Vec<String> {
            s.split('{')
                .skip(1)
                .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                .collect()
        };
        for m in Msg::ALL {
            let en = m.text(Language::English);
            for lang in Language::ALL {
                let t = m.text(lang);
                assert!(!t.trim().is_empty(), "{m:?} in {lang:?}");
                assert_eq!(placeholders(t), placeholders(en), "{m:?} in {lang:?}");
            }
        }
        // No key listed twice, and none forgotten in `ALL` (its length is the count of keys).
        for (i, m) in Msg::ALL.iter().enumerate() {
            let rest = Msg::ALL.get(i + 1..).unwrap_or_default();
            assert!(!rest.contains(m), "{m:?} twice");
        }
    }
}
