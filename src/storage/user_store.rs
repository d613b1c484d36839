//! The `UserStore` trait: what every user store does, with the semantics both implementations
//! (and the conformance checks in `conformance.rs`) hold to. No I/O lives here.
//!
//! The store does no hashing, sealing or policy: it keeps rows and makes the single-use checks
//! (TOTP step, recovery code, invitation) atomic, so they hold across concurrent requests and
//! replicas. `Ok(None)`/`Ok(false)` mean absent; `Err(StoreError::Unavailable)` means fail
//! closed (503).

use std::future::Future;

use super::error::StoreError;
use super::model::{
    AuditEvent, AuditQuery, AuditRecord, EnrollmentInvite, NewUser, RememberedDevice, TotpFactor,
    User,
};

/// The durable store for native users, second factors, recovery codes, remembered devices and
/// the audit log. Hashing of passwords, codes and tokens and sealing of seeds is the caller's job.
pub trait UserStore {
    /// Checks the store answers (readiness).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a native user stamped `created_at = now`; `Conflict` if the name is taken.
    fn create_user(
        &self,
        user: &NewUser,
        now: i64,
    ) -> impl Future<Output = Result<User, StoreError>> + Send;

    /// The user named `username`, if any. Names are compared exactly (callers normalise).
    fn get_user(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Users in username order strictly after `after`, at most `limit` (capped at
    /// [`MAX_PAGE`](super::model::MAX_PAGE)).
    fn list_users(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<User>, StoreError>> + Send;

    /// Disables or enables a user; `false` if there is no such user.
    fn set_disabled(
        &self,
        username: &str,
        disabled: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces a user's password hash (PHC string); `false` if there is no such user.
    fn set_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces a user's roles; `false` if there is no such user.
    fn set_roles(
        &self,
        username: &str,
        roles: &[String],
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The principal's TOTP factor, confirmed or not.
    fn get_totp(
        &self,
        principal: &str,
    ) -> impl Future<Output = Result<Option<TotpFactor>, StoreError>> + Send;

    /// Inserts or replaces the principal's single TOTP factor, clearing its last step.
    fn put_totp(
        &self,
        principal: &str,
        sealed_seed: &[u8],
        confirmed: bool,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores `sealed_seed` as the principal's confirmed factor with `step` used (so the
    /// enrollment code cannot sign in again), only if the principal has no confirmed factor;
    /// `false` otherwise. A confirmed authenticator is replaced only by `put_totp` (the account
    /// page after a fresh factor, an admin), never by an enrollment.
    fn enroll_totp(
        &self,
        principal: &str,
        sealed_seed: &[u8],
        step: i64,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores an enrollment invitation, deleting the user's unused ones.
    fn put_invite(
        &self,
        invite: &EnrollmentInvite,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The unused, unexpired invitation with this token hash.
    fn find_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<EnrollmentInvite>, StoreError>> + Send;

    /// Atomically marks an unused, unexpired invitation used; `true` only for the one caller
    /// that spent it.
    fn spend_invite(
        &self,
        token_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The TOTP replay guard: atomically records `step` as used if it is later than the last
    /// used step of a confirmed factor. `true` only for the one caller that won.
    fn advance_totp_step(
        &self,
        principal: &str,
        step: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the principal's TOTP factor, recovery codes and passkeys; `true` if anything was
    /// deleted.
    fn delete_factors(
        &self,
        principal: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces all of the principal's recovery codes with `code_hashes`, in one transaction.
    fn replace_recovery_codes(
        &self,
        principal: &str,
        code_hashes: &[String],
        now: i64,
        expires_at: Option<i64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Atomically uses an unused, unexpired code. `Some(remaining usable codes)` if this call
    /// used it; `None` if it is unknown, used or expired.
    fn consume_recovery_code(
        &self,
        principal: &str,
        code_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;

    /// How many unused, unexpired recovery codes the principal has.
    fn count_recovery_codes(
        &self,
        principal: &str,
        now: i64,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;

    /// Stores a remembered device (dropping the principal's expired ones, taking
    /// `device.created_at` as now); `Conflict` if the id or token hash exists.
    fn add_device(
        &self,
        device: &RememberedDevice,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether `token_hash` is an unexpired remembered device of `principal`.
    fn device_valid(
        &self,
        principal: &str,
        token_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The principal's unexpired remembered devices, oldest first.
    fn list_devices(
        &self,
        principal: &str,
        now: i64,
    ) -> impl Future<Output = Result<Vec<RememberedDevice>, StoreError>> + Send;

    /// Revokes one remembered device; `false` if the principal has no device with that id.
    fn delete_device(
        &self,
        principal: &str,
        id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Revokes all of the principal's remembered devices; returns how many there were.
    fn delete_devices(
        &self,
        principal: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Appends one event to the audit log; returns its id.
    fn append_audit(
        &self,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Audit records matching all of the query's filters, ascending by id.
    fn query_audit(
        &self,
        query: &AuditQuery,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;

    /// Whether the principal has a usable second factor: a confirmed TOTP factor, a passkey or
    /// at least one unused, unexpired recovery code.
    fn has_second_factor(
        &self,
        principal: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
