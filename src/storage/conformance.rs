//! Behaviour checks every `UserStore` must pass, written once against `&impl UserStore` and
//! run by each implementation's tests as one named test per check ([`conformance_tests!`]:
//! SQLite in memory, PostgreSQL when `DATABASE_URL` is set). Each check expects a fresh, empty
//! store. Implementation-specific behaviour (files, schemas, corrupt rows, outages) is tested
//! beside each implementation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)] // test code: a failure aborts the test

use futures_util::future::join_all;

use super::error::StoreError;
use super::model::{
    AuditEvent, AuditQuery, AuditRecord, EnrollmentInvite, NewUser, RememberedDevice, TotpFactor,
    User, MAX_PAGE,
};
use super::user_store::UserStore;

/// One `#[tokio::test]` per check, named after it, so a failure names the check and both
/// implementations run the same list. The caller writes the body once, with `$check` bound to
/// the check (an `async fn(&impl UserStore)`) and its own fresh, empty store:
///
/// ```ignore
/// conformance_tests!(|check| {
///     let store = SqliteUserStore::open_in_memory().await.unwrap();
///     check(&store).await;
/// });
/// ```
macro_rules! conformance_tests {
    (|$check:ident| $body:block) => {
        $crate::storage::conformance::conformance_tests!(@each |$check| $body;
            users_are_created_read_listed_and_disabled,
            users_are_listed_in_byte_order,
            creating_an_existing_user_is_a_conflict,
            totp_code_is_rejected_when_its_step_is_the_same_or_older,
            concurrent_totp_step_advances_with_the_same_step_have_exactly_one_winner,
            recovery_code_works_once_and_not_after_expiry_or_replacement,
            concurrent_uses_of_one_recovery_code_have_exactly_one_winner,
            concurrent_recovery_code_replacements_leave_exactly_one_set,
            second_factor_presence_counts_confirmed_totp_and_usable_codes,
            concurrent_enrollments_have_exactly_one_winner_and_never_replace_a_confirmed_factor,
            invites_are_single_use_expire_and_are_replaced_by_the_next,
            remembered_devices_are_valid_until_expiry_or_revocation,
            audit_queries_filter_and_paginate_by_id,
            audit_limit_is_capped_at_max_page,
        );
    };
    (@each |$check:ident| $body:block; $($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let $check = $crate::storage::conformance::$name;
            $body
        }
    )*};
}
pub(crate) use conformance_tests;

pub(crate) fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        email: Some(format!("{name}@example.com")),
        roles: vec!["agent".into(), "end_user".into()],
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        disabled: false,
    }
}

fn event(at: i64, kind: &str, user: Option<&str>) -> AuditEvent {
    AuditEvent {
        at,
        kind: kind.into(),
        user: user.map(Into::into),
        method: Some("native".into()),
        outcome: "success".into(),
        reason: None,
        ip: Some("192.0.2.1".into()),
        session: Some("s-1".into()),
        detail: None,
    }
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

fn device(
    id: &str,
    principal: &str,
    token_hash: &str,
    created_at: i64,
    expires_at: i64,
) -> RememberedDevice {
    RememberedDevice {
        id: id.into(),
        principal: principal.into(),
        token_hash: token_hash.into(),
        created_at,
        expires_at,
        user_agent: Some("Firefox".into()),
    }
}

pub(crate) async fn users_are_created_read_listed_and_disabled(store: &impl UserStore) {
    store.ping().await.unwrap();
    assert_eq!(store.get_user("ann").await.unwrap(), None);

    let created = store
        .create_user(&new_user("ann"), 1_700_000_000)
        .await
        .unwrap();
    let expected = User {
        username: "ann".into(),
        email: Some("ann@example.com".into()),
        roles: vec!["agent".into(), "end_user".into()],
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        disabled: false,
        created_at: 1_700_000_000,
    };
    assert_eq!(created, expected);
    assert_eq!(store.get_user("ann").await.unwrap(), Some(expected.clone()));

    let bare = NewUser {
        username: "bob".into(),
        email: None,
        roles: vec![],
        password_hash: None,
        disabled: true,
    };
    store.create_user(&bare, 5).await.unwrap();
    for name in ["dan", "cat", "eve"] {
        store.create_user(&new_user(name), 6).await.unwrap();
    }

    let page = store.list_users(None, 2).await.unwrap();
    assert_eq!(names(&page), ["ann", "bob"]);
    let page = store.list_users(Some("bob"), 2).await.unwrap();
    assert_eq!(names(&page), ["cat", "dan"]);
    let page = store.list_users(Some("dan"), 2).await.unwrap();
    assert_eq!(names(&page), ["eve"]);
    assert!(store.list_users(Some("eve"), 2).await.unwrap().is_empty());
    assert!(store.list_users(None, 0).await.unwrap().is_empty());
    assert_eq!(store.list_users(None, u32::MAX).await.unwrap().len(), 5);
    let bob = store.get_user("bob").await.unwrap().unwrap();
    assert_eq!(
        (bob.email, bob.roles, bob.password_hash, bob.disabled),
        (None, vec![], None, true)
    );

    assert!(store.set_disabled("ann", true).await.unwrap());
    assert!(store.get_user("ann").await.unwrap().unwrap().disabled);
    assert!(store.set_disabled("ann", false).await.unwrap());
    assert!(!store.get_user("ann").await.unwrap().unwrap().disabled);
    assert!(!store.set_disabled("nobody", true).await.unwrap());

    assert!(store.set_password("ann", "$argon2id$new").await.unwrap());
    assert!(!store.set_password("nobody", "$argon2id$new").await.unwrap());
    assert!(store.set_roles("ann", &["admin".into()]).await.unwrap());
    assert!(!store.set_roles("nobody", &[]).await.unwrap());
    let ann = store.get_user("ann").await.unwrap().unwrap();
    assert_eq!(
        ann,
        User {
            password_hash: Some("$argon2id$new".into()),
            roles: vec!["admin".into()],
            ..expected
        }
    );
}

/// Byte order, not a locale's: a locale collation would ignore the punctuation and give
/// `a_b, ab, a.c, a-d`.
pub(crate) async fn users_are_listed_in_byte_order(store: &impl UserStore) {
    for name in ["ab", "a.c", "a_b", "a-d"] {
        store.create_user(&new_user(name), 1).await.unwrap();
    }
    let all = store.list_users(None, 10).await.unwrap();
    assert_eq!(names(&all), ["a-d", "a.c", "a_b", "ab"]);
    let page = store.list_users(Some("a.c"), 10).await.unwrap();
    assert_eq!(names(&page), ["a_b", "ab"]);
}

pub(crate) async fn creating_an_existing_user_is_a_conflict(store: &impl UserStore) {
    store.create_user(&new_user("ann"), 1).await.unwrap();
    let again = store.create_user(&new_user("ann"), 2).await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    assert_eq!(store.get_user("ann").await.unwrap().unwrap().created_at, 1);
}

pub(crate) async fn totp_code_is_rejected_when_its_step_is_the_same_or_older(
    store: &impl UserStore,
) {
    let p = "oidc:https://idp.example.com#sub-1";
    assert_eq!(store.get_totp(p).await.unwrap(), None);
    assert!(!store.advance_totp_step(p, 100).await.unwrap(), "no factor");

    store.put_totp(p, b"sealed-1", false, 10).await.unwrap();
    assert!(
        !store.advance_totp_step(p, 100).await.unwrap(),
        "unconfirmed factor"
    );
    assert!(store.enroll_totp(p, b"sealed-1", 100, 10).await.unwrap());
    assert!(
        !store.enroll_totp(p, b"sealed-x", 101, 11).await.unwrap(),
        "a confirmed factor is never replaced by an enrollment"
    );
    assert_eq!(
        store.get_totp(p).await.unwrap(),
        Some(TotpFactor {
            principal: p.into(),
            sealed_seed: b"sealed-1".to_vec(),
            confirmed: true,
            last_step: Some(100),
            created_at: 10,
        })
    );

    assert!(
        !store.advance_totp_step(p, 100).await.unwrap(),
        "enrollment step reused"
    );
    assert!(!store.advance_totp_step(p, 99).await.unwrap(), "older step");
    assert!(store.advance_totp_step(p, 101).await.unwrap(), "newer step");
    assert!(
        !store.advance_totp_step(p, 101).await.unwrap(),
        "same step twice"
    );
    assert!(store.advance_totp_step(p, 105).await.unwrap());
    assert!(!store.advance_totp_step(p, 103).await.unwrap());
    assert!(!store.advance_totp_step("native:other", 200).await.unwrap());

    // Replacing the factor resets it: unconfirmed, no step history.
    store.put_totp(p, b"sealed-2", false, 20).await.unwrap();
    let t = store.get_totp(p).await.unwrap().unwrap();
    assert_eq!(
        (t.sealed_seed, t.confirmed, t.last_step, t.created_at),
        (b"sealed-2".to_vec(), false, None, 20)
    );
    store.put_totp(p, b"sealed-3", true, 30).await.unwrap();
    assert!(store.advance_totp_step(p, 1).await.unwrap());
}

/// The racers share the store, so they race for real only where its pool has several
/// connections; implementations add their own multi-task, multi-pool races.
pub(crate) async fn concurrent_totp_step_advances_with_the_same_step_have_exactly_one_winner(
    store: &impl UserStore,
) {
    let p = "native:ann";
    store.put_totp(p, b"sealed", true, 0).await.unwrap();
    for step in 1..=10_i64 {
        let results = join_all((0..8).map(|_| store.advance_totp_step(p, step))).await;
        let wins = results.into_iter().filter(|r| *r.as_ref().unwrap()).count();
        assert_eq!(wins, 1, "step {step}");
    }
    assert_eq!(
        store.get_totp(p).await.unwrap().unwrap().last_step,
        Some(10)
    );
}

pub(crate) async fn recovery_code_works_once_and_not_after_expiry_or_replacement(
    store: &impl UserStore,
) {
    let p = "native:ann";
    let codes: Vec<String> = ["h-a", "h-b", "h-c"].map(String::from).to_vec();
    store
        .replace_recovery_codes(p, &codes, 10, Some(1_000))
        .await
        .unwrap();
    assert_eq!(store.count_recovery_codes(p, 10).await.unwrap(), 3);

    assert_eq!(
        store.consume_recovery_code(p, "h-a", 20).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        store.consume_recovery_code(p, "h-a", 21).await.unwrap(),
        None,
        "reused"
    );
    assert_eq!(
        store.consume_recovery_code(p, "h-x", 21).await.unwrap(),
        None,
        "unknown"
    );
    assert_eq!(
        store
            .consume_recovery_code("native:bob", "h-b", 21)
            .await
            .unwrap(),
        None,
        "other principal"
    );
    assert_eq!(store.count_recovery_codes(p, 21).await.unwrap(), 2);

    assert_eq!(
        store.consume_recovery_code(p, "h-b", 1_000).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(store.count_recovery_codes(p, 1_000).await.unwrap(), 0);
    assert_eq!(store.count_recovery_codes(p, 999).await.unwrap(), 2);

    store
        .replace_recovery_codes(p, &["h-d".into(), "h-e".into()], 30, None)
        .await
        .unwrap();
    assert_eq!(
        store.consume_recovery_code(p, "h-c", 31).await.unwrap(),
        None,
        "replaced"
    );
    assert_eq!(
        store
            .consume_recovery_code(p, "h-d", i64::MAX)
            .await
            .unwrap(),
        Some(1),
        "no expiry"
    );
    assert_eq!(store.count_recovery_codes(p, 31).await.unwrap(), 1);

    // A duplicate in the new set fails the whole replacement; the old set stays.
    let dup = store
        .replace_recovery_codes(p, &["h-f".into(), "h-f".into()], 40, None)
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict)), "{dup:?}");
    assert_eq!(
        store.consume_recovery_code(p, "h-e", 41).await.unwrap(),
        Some(0)
    );
}

pub(crate) async fn concurrent_uses_of_one_recovery_code_have_exactly_one_winner(
    store: &impl UserStore,
) {
    let p = "native:ann";
    let codes: Vec<String> = (0..10).map(|i| format!("h-{i}")).collect();
    store
        .replace_recovery_codes(p, &codes, 0, None)
        .await
        .unwrap();
    for (used, code) in codes.iter().enumerate() {
        let results = join_all((0..8).map(|_| store.consume_recovery_code(p, code, 1))).await;
        let wins: Vec<u32> = results.into_iter().filter_map(|r| r.unwrap()).collect();
        let left = u32::try_from(codes.len() - used - 1).unwrap();
        assert_eq!(wins, [left], "code {code}");
    }
}

/// A replacement replaces: after two concurrent ones, exactly one of the two sets is usable.
pub(crate) async fn concurrent_recovery_code_replacements_leave_exactly_one_set(
    store: &impl UserStore,
) {
    let p = "native:ann";
    for round in 0..10 {
        let sets: Vec<Vec<String>> = ["a", "b", "c"]
            .iter()
            .map(|s| (0..4).map(|i| format!("{s}-{round}-{i}")).collect())
            .collect();
        let results = join_all(
            sets.iter()
                .map(|set| store.replace_recovery_codes(p, set, 0, None)),
        )
        .await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(
            store.count_recovery_codes(p, 1).await.unwrap(),
            4,
            "round {round}"
        );
        let mut usable = Vec::new();
        for set in &sets {
            let first = store.consume_recovery_code(p, &set[0], 1).await.unwrap();
            usable.push(first.is_some());
        }
        assert_eq!(usable.iter().filter(|u| **u).count(), 1, "round {round}");
    }
}

pub(crate) async fn second_factor_presence_counts_confirmed_totp_and_usable_codes(
    store: &impl UserStore,
) {
    let p = "saml:corp#ann@example.com";
    assert!(!store.has_second_factor(p, 0).await.unwrap());
    store.put_totp(p, b"s", false, 0).await.unwrap();
    assert!(
        !store.has_second_factor(p, 0).await.unwrap(),
        "unconfirmed totp"
    );
    assert!(store.enroll_totp(p, b"s", 1, 0).await.unwrap());
    assert!(store.has_second_factor(p, 0).await.unwrap());

    store
        .replace_recovery_codes(p, &["h".into()], 0, Some(100))
        .await
        .unwrap();
    assert!(store.delete_factors(p).await.unwrap());
    assert!(!store.delete_factors(p).await.unwrap());
    assert_eq!(store.get_totp(p).await.unwrap(), None);
    assert_eq!(store.count_recovery_codes(p, 0).await.unwrap(), 0);
    assert!(!store.has_second_factor(p, 0).await.unwrap());

    store
        .replace_recovery_codes(p, &["h".into()], 0, Some(100))
        .await
        .unwrap();
    assert!(store.has_second_factor(p, 99).await.unwrap(), "unused code");
    assert!(
        !store.has_second_factor(p, 100).await.unwrap(),
        "expired code"
    );
    store.consume_recovery_code(p, "h", 50).await.unwrap();
    assert!(!store.has_second_factor(p, 50).await.unwrap(), "used code");
}

pub(crate) async fn remembered_devices_are_valid_until_expiry_or_revocation(
    store: &impl UserStore,
) {
    let p = "native:ann";
    let d1 = device("d1", p, "t1", 100, 200);
    let d2 = device("d2", p, "t2", 110, 300);
    store.add_device(&d1).await.unwrap();
    store.add_device(&d2).await.unwrap();
    store
        .add_device(&device("d3", "native:bob", "t3", 100, 300))
        .await
        .unwrap();
    let dup = store.add_device(&device("d4", p, "t1", 120, 300)).await;
    assert!(matches!(dup, Err(StoreError::Conflict)), "{dup:?}");
    let dup = store.add_device(&device("d1", p, "t9", 120, 300)).await;
    assert!(matches!(dup, Err(StoreError::Conflict)), "{dup:?}");

    assert!(store.device_valid(p, "t1", 199).await.unwrap());
    assert!(!store.device_valid(p, "t1", 200).await.unwrap(), "expired");
    assert!(
        !store.device_valid(p, "t3", 150).await.unwrap(),
        "other principal's token"
    );
    assert!(!store.device_valid(p, "nope", 150).await.unwrap());
    assert_eq!(
        store.list_devices(p, 150).await.unwrap(),
        vec![d1.clone(), d2.clone()]
    );
    assert_eq!(store.list_devices(p, 250).await.unwrap(), vec![d2.clone()]);

    assert!(
        !store.delete_device("native:bob", "d2").await.unwrap(),
        "not bob's"
    );
    assert!(store.delete_device(p, "d2").await.unwrap());
    assert!(!store.delete_device(p, "d2").await.unwrap());
    assert!(!store.device_valid(p, "t2", 150).await.unwrap(), "revoked");

    // Adding a device drops the principal's expired ones.
    store
        .add_device(&device("d5", p, "t5", 250, 400))
        .await
        .unwrap();
    assert!(
        !store.delete_device(p, "d1").await.unwrap(),
        "expired d1 was purged"
    );
    store
        .add_device(&device("d6", p, "t6", 260, 400))
        .await
        .unwrap();
    assert_eq!(store.delete_devices(p).await.unwrap(), 2);
    assert!(!store.device_valid(p, "t5", 300).await.unwrap());
    assert!(
        store.device_valid("native:bob", "t3", 250).await.unwrap(),
        "bob untouched"
    );
}

pub(crate) async fn audit_queries_filter_and_paginate_by_id(store: &impl UserStore) {
    let mut ids = Vec::new();
    for (at, kind, user) in [
        (100, "login", Some("ann")),
        (110, "login", Some("bob")),
        (120, "mfa", Some("ann")),
        (130, "login", Some("ann")),
        (140, "admin", None),
    ] {
        ids.push(store.append_audit(&event(at, kind, user)).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let all = store
        .query_audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(
        all[0],
        AuditRecord {
            id: ids[0],
            event: event(100, "login", Some("ann"))
        }
    );
    assert_eq!(all[4].event, event(140, "admin", None));

    let ids_of = |records: Vec<AuditRecord>| records.iter().map(|r| r.id).collect::<Vec<i64>>();
    let ann_logins = AuditQuery {
        user: Some("ann".into()),
        kind: Some("login".into()),
        limit: 100,
        ..Default::default()
    };
    let got = ids_of(store.query_audit(&ann_logins).await.unwrap());
    assert_eq!(got, [ids[0], ids[3]]);

    let since = AuditQuery {
        since: Some(120),
        limit: 100,
        ..Default::default()
    };
    let got = ids_of(store.query_audit(&since).await.unwrap());
    assert_eq!(got, [ids[2], ids[3], ids[4]]);

    // Keyset pages of two, following the cursor.
    let mut pages = Vec::new();
    let mut after_id = None;
    loop {
        let page = store
            .query_audit(&AuditQuery {
                after_id,
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after_id = Some(last.id);
        pages.push(ids_of(page));
    }
    assert_eq!(
        pages,
        [vec![ids[0], ids[1]], vec![ids[2], ids[3]], vec![ids[4]]]
    );

    // Newest first: pages run downwards from the cursor, the same events in reverse.
    let mut pages = Vec::new();
    let mut after_id = None;
    loop {
        let page = store
            .query_audit(&AuditQuery {
                after_id,
                limit: 2,
                newest_first: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after_id = Some(last.id);
        pages.push(ids_of(page));
    }
    assert_eq!(
        pages,
        [vec![ids[4], ids[3]], vec![ids[2], ids[1]], vec![ids[0]]]
    );

    let ann_after = AuditQuery {
        user: Some("ann".into()),
        after_id: Some(ids[0]),
        limit: 1,
        ..Default::default()
    };
    let got = ids_of(store.query_audit(&ann_after).await.unwrap());
    assert_eq!(got, [ids[2]]);
    assert!(
        store
            .query_audit(&AuditQuery::default())
            .await
            .unwrap()
            .is_empty(),
        "limit 0"
    );
}

pub(crate) async fn audit_limit_is_capped_at_max_page(store: &impl UserStore) {
    for i in 0..(i64::from(MAX_PAGE) + 5) {
        store.append_audit(&event(i, "login", None)).await.unwrap();
    }
    let got = store
        .query_audit(&AuditQuery {
            limit: u32::MAX,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.len(), MAX_PAGE as usize);
    assert_eq!(got[0].event.at, 0);
}

/// DESIGN.md §6: a confirmed second factor is never replaced by a login that has only the
/// password; of two enrollments racing for one principal exactly one is kept.
pub(crate) async fn concurrent_enrollments_have_exactly_one_winner_and_never_replace_a_confirmed_factor(
    store: &impl UserStore,
) {
    for round in 0..5_i64 {
        let p = format!("native:race{round}");
        let seeds: Vec<Vec<u8>> = (0..6).map(|i| format!("seed-{i}").into_bytes()).collect();
        let results = join_all(seeds.iter().map(|s| store.enroll_totp(&p, s, 7, round))).await;
        let won: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| *r.as_ref().unwrap())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        let kept = store.get_totp(&p).await.unwrap().unwrap();
        assert_eq!(
            kept.sealed_seed, seeds[won[0]],
            "the winner's seed is the one kept"
        );
        assert!(kept.confirmed);
        assert!(!store.enroll_totp(&p, b"late", 8, round).await.unwrap());
        assert_eq!(
            store.get_totp(&p).await.unwrap().unwrap().sealed_seed,
            seeds[won[0]]
        );
    }
    // An unconfirmed row (left by an older version) does not block a first enrollment.
    store
        .put_totp("native:old", b"stale", false, 0)
        .await
        .unwrap();
    assert!(store
        .enroll_totp("native:old", b"fresh", 3, 1)
        .await
        .unwrap());
    assert_eq!(
        store
            .get_totp("native:old")
            .await
            .unwrap()
            .unwrap()
            .sealed_seed,
        b"fresh".to_vec()
    );
}

pub(crate) async fn invites_are_single_use_expire_and_are_replaced_by_the_next(
    store: &impl UserStore,
) {
    let invite = |hash: &str, user: &str, expires_at: i64| EnrollmentInvite {
        token_hash: hash.into(),
        username: user.into(),
        created_at: 10,
        expires_at,
    };
    store.put_invite(&invite("h1", "ann", 100)).await.unwrap();
    assert_eq!(
        store.find_invite("h1", 50).await.unwrap(),
        Some(invite("h1", "ann", 100))
    );
    assert_eq!(store.find_invite("h1", 100).await.unwrap(), None, "expired");
    assert!(!store.spend_invite("h1", 100).await.unwrap(), "expired");
    assert_eq!(store.find_invite("nope", 50).await.unwrap(), None);
    // A newer invitation replaces the unused one.
    store.put_invite(&invite("h2", "ann", 100)).await.unwrap();
    assert_eq!(store.find_invite("h1", 50).await.unwrap(), None);
    // Concurrent uses: exactly one wins, and then it is gone.
    let results = join_all((0..8).map(|_| store.spend_invite("h2", 50))).await;
    assert_eq!(results.iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
    assert_eq!(store.find_invite("h2", 50).await.unwrap(), None);
    assert!(!store.spend_invite("h2", 50).await.unwrap());
    // Other users' invitations are untouched.
    store.put_invite(&invite("h3", "bob", 100)).await.unwrap();
    store.put_invite(&invite("h4", "ann", 100)).await.unwrap();
    assert!(store.find_invite("h3", 50).await.unwrap().is_some());
}
