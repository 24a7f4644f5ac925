//! Applications as records: lists with their members, changes, members and
//! their roles, and the members-only rule: whom an application admits to log
//! in, whose sessions open, refresh or end.

use crate::support::{
    at, attempt, key_record, logged_in, new_application, new_key, new_session, new_user,
    random_hash, revoked_at, revoked_in_feed, sorted, spend, user_record,
};
use assetpool_core::export::{
    ExportRecord, ExportedApiKey, ExportedApplication, ExportedRefreshToken, ExportedSession,
    ExportedUser,
};
use assetpool_core::ids::{ApplicationId, SessionId};
use assetpool_core::store::{
    ApplicationRecord, ApplicationUpdate, ApplicationWithMembers, CreationPage, NewSession,
    RefreshOutcome, SessionOpening, StoreError, UserRecord,
};
use assetpool_core::{ApplicationRole, Environment, Store};
use chrono::Duration;
use std::sync::Arc;

fn members_only() -> ApplicationUpdate {
    ApplicationUpdate {
        members_only: Some(true),
        ..ApplicationUpdate::default()
    }
}

/// The (email, role) pairs of an application's members.
fn roster(found: &ApplicationWithMembers) -> Vec<(String, ApplicationRole)> {
    found
        .members
        .iter()
        .map(|member| (member.email.clone(), member.role))
        .collect()
}

async fn shown(store: &dyn Store, id: &ApplicationId) -> ApplicationWithMembers {
    store.application_with_members(id).await.unwrap().unwrap()
}

/// Applications come a page at a time in creation order, each with its
/// members ordered by email; an unknown id is `None`.
pub async fn applications_are_listed_a_page_at_a_time_with_their_members(store: Arc<dyn Store>) {
    let zed = new_user(store.as_ref(), "zed@example.test", at(0)).await;
    let amy = new_user(store.as_ref(), "amy@example.test", at(0)).await;
    let mut expected = Vec::new();
    for minutes in [3, 1, 1, 2, 1] {
        expected.push(new_application(store.as_ref(), at(minutes)).await);
    }
    let restricted = expected[1].id.clone();
    store
        .update_application(&restricted, &members_only(), at(4))
        .await
        .unwrap();
    expected[1].members_only = true;
    for user in [&zed, &amy] {
        store
            .set_application_member(&restricted, &user.id, ApplicationRole::Member, at(5))
            .await
            .unwrap();
    }
    store
        .set_application_member(&expected[0].id, &zed.id, ApplicationRole::Owner, at(5))
        .await
        .unwrap();
    expected.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));

    let mut seen: Vec<ApplicationWithMembers> = Vec::new();
    let mut page = CreationPage {
        after: None,
        limit: 2,
    };
    loop {
        let listed = store.list_applications(&page).await.unwrap();
        assert!(listed.len() <= 2);
        let Some(last) = listed.last() else { break };
        page.after = Some((last.application.created_at, last.application.id.to_string()));
        seen.extend(listed);
    }
    let applications: Vec<ApplicationRecord> =
        seen.iter().map(|found| found.application.clone()).collect();
    assert_eq!(applications, expected);
    for found in &seen {
        assert_eq!(found, &shown(store.as_ref(), &found.application.id).await);
    }
    let restricted = seen
        .iter()
        .find(|found| found.application.members_only)
        .unwrap();
    assert_eq!(
        roster(restricted),
        [
            ("amy@example.test".to_owned(), ApplicationRole::Member),
            ("zed@example.test".to_owned(), ApplicationRole::Member)
        ]
    );
    assert_eq!(restricted.members[0].user_id, amy.id);
    assert_eq!(restricted.members[0].created_at, at(5));
    assert_eq!(
        store.list_applications(&CreationPage::all()).await.unwrap(),
        seen
    );
    assert_eq!(
        store
            .application_with_members(&"app_unknown".into())
            .await
            .unwrap(),
        None
    );
}

/// Adding an existing member changes the role (and keeps the date they
/// joined); removing one twice is `NotFound` the second time, as is any
/// change to an unknown application. A name change keeps the rest.
pub async fn members_are_added_changed_and_removed(store: Arc<dyn Store>) {
    let application = new_application(store.as_ref(), at(0)).await;
    let alice = new_user(store.as_ref(), "alice@example.test", at(0)).await;
    let added = store
        .set_application_member(&application.id, &alice.id, ApplicationRole::Member, at(1))
        .await
        .unwrap();
    assert_eq!(
        roster(&added),
        [("alice@example.test".to_owned(), ApplicationRole::Member)]
    );
    let promoted = store
        .set_application_member(&application.id, &alice.id, ApplicationRole::Owner, at(2))
        .await
        .unwrap();
    assert_eq!(
        roster(&promoted),
        [("alice@example.test".to_owned(), ApplicationRole::Owner)]
    );
    assert_eq!(promoted.members[0].created_at, at(1));
    assert_eq!(shown(store.as_ref(), &application.id).await, promoted);

    let renamed = store
        .update_application(
            &application.id,
            &ApplicationUpdate {
                name: Some("renamed".to_owned()),
                members_only: None,
            },
            at(3),
        )
        .await
        .unwrap();
    assert_eq!(renamed.application.name, "renamed");
    assert!(!renamed.application.members_only);
    assert_eq!(renamed.members, promoted.members);

    let removed = store
        .remove_application_member(&application.id, &alice.id, at(4))
        .await
        .unwrap();
    assert!(removed.members.is_empty());
    assert!(matches!(
        store
            .remove_application_member(&application.id, &alice.id, at(5))
            .await,
        Err(StoreError::NotFound)
    ));
    let unknown: ApplicationId = "app_unknown".into();
    assert!(matches!(
        store
            .set_application_member(&unknown, &alice.id, ApplicationRole::Member, at(6))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .update_application(&unknown, &members_only(), at(6))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .remove_application_member(&unknown, &alice.id, at(6))
            .await,
        Err(StoreError::NotFound)
    ));
}

/// An open application admits anyone; a members-only one its members of
/// either role, by normalised email, and nobody else (unknown emails
/// included); an unknown application admits no one. A session opens only
/// for a user the application admits.
pub async fn members_only_applications_admit_only_members(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let application = alice.key.application_id.clone();
    let bob = new_user(store.as_ref(), "bob@example.test", at(0)).await;
    let carol = new_user(store.as_ref(), "carol@example.test", at(0)).await;
    for email in ["bob@example.test", "nobody@example.test"] {
        assert!(store.application_admits(&application, email).await.unwrap());
    }
    store
        .set_application_member(&application, &alice.user.id, ApplicationRole::Owner, at(1))
        .await
        .unwrap();
    store
        .set_application_member(&application, &carol.id, ApplicationRole::Member, at(1))
        .await
        .unwrap();
    store
        .update_application(&application, &members_only(), at(2))
        .await
        .unwrap();
    for (email, admitted) in [
        ("alice@example.test", true),
        ("carol@example.test", true),
        ("bob@example.test", false),
        ("nobody@example.test", false),
    ] {
        assert_eq!(
            store.application_admits(&application, email).await.unwrap(),
            admitted,
            "{email}"
        );
    }
    assert!(!store
        .application_admits(&"app_unknown".into(), "alice@example.test")
        .await
        .unwrap());

    let opening = |user: &UserRecord, minutes| SessionOpening {
        session: NewSession {
            id: format!("ses_{}_{minutes}", user.email).into(),
            user_id: user.id.clone(),
            refresh_hash: random_hash(),
            created_at: at(minutes),
            ..alice.session.clone()
        },
        password_version: user.password_version,
        user_scopes: user.scopes.clone(),
        attempt: attempt(&user.email, "192.0.2.9", at(minutes)),
    };
    let outsider = opening(&bob, 3);
    assert!(!store.open_session(&outsider).await.unwrap());
    let refresh = spend(outsider.session.refresh_hash, &application, at(4));
    assert_eq!(
        store.spend_refresh_token(&refresh).await.unwrap(),
        RefreshOutcome::Invalid,
        "nothing was stored"
    );
    assert!(store.open_session(&opening(&carol, 5)).await.unwrap());
    assert!(store.open_session(&opening(&alice.user, 6)).await.unwrap());
}

/// Switching members-only on revokes (and announces) the live sessions of
/// non-members in that application only; their refresh tokens stop
/// renewing, members' keep working. Switching it off revokes nothing.
pub async fn switching_members_only_on_ends_the_sessions_of_non_members(store: Arc<dyn Store>) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let application = alice.key.application_id.clone();
    let bob = new_user(store.as_ref(), "bob@example.test", at(0)).await;
    let bob_session = new_session(store.as_ref(), &bob, &alice.key, at(1)).await;
    // Bob's session in another application is not this one's to end.
    let elsewhere = new_application(store.as_ref(), at(0)).await;
    let elsewhere_key = new_key(store.as_ref(), &elsewhere.id, at(0)).await;
    let bob_elsewhere = new_session(store.as_ref(), &bob, &elsewhere_key, at(1)).await;
    store
        .set_application_member(&application, &alice.user.id, ApplicationRole::Member, at(2))
        .await
        .unwrap();
    let before = store.latest_change_id().await.unwrap();
    let updated = store
        .update_application(&application, &members_only(), at(3))
        .await
        .unwrap();
    assert!(updated.application.members_only);
    assert_eq!(
        revoked_in_feed(store.as_ref(), before).await,
        vec![bob_session.id.clone()]
    );
    assert_eq!(
        revoked_at(store.as_ref(), at(4)).await,
        sorted([&bob_session.id])
    );
    let refused = spend(bob_session.refresh_hash, &application, at(5));
    assert_eq!(
        store.spend_refresh_token(&refused).await.unwrap(),
        RefreshOutcome::Invalid
    );
    let kept = spend(alice.session.refresh_hash, &application, at(5));
    assert!(matches!(
        store.spend_refresh_token(&kept).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
    let other = spend(bob_elsewhere.refresh_hash, &elsewhere.id, at(5));
    assert!(matches!(
        store.spend_refresh_token(&other).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));

    let before = store.latest_change_id().await.unwrap();
    let open = ApplicationUpdate {
        members_only: Some(false),
        ..ApplicationUpdate::default()
    };
    store
        .update_application(&application, &open, at(6))
        .await
        .unwrap();
    assert!(revoked_in_feed(store.as_ref(), before).await.is_empty());
}

/// Removing a member ends that user's sessions in a members-only
/// application (announced), not the other members' and not in an open
/// application.
pub async fn removing_a_member_ends_their_sessions_in_members_only_applications(
    store: Arc<dyn Store>,
) {
    let alice = logged_in(store.as_ref(), "alice@example.test").await;
    let application = alice.key.application_id.clone();
    let bob = new_user(store.as_ref(), "bob@example.test", at(0)).await;
    for user in [&alice.user, &bob] {
        store
            .set_application_member(&application, &user.id, ApplicationRole::Member, at(1))
            .await
            .unwrap();
    }
    let bob_session = new_session(store.as_ref(), &bob, &alice.key, at(1)).await;
    // Open: removing a member ends nothing.
    let before = store.latest_change_id().await.unwrap();
    store
        .remove_application_member(&application, &bob.id, at(2))
        .await
        .unwrap();
    assert!(revoked_in_feed(store.as_ref(), before).await.is_empty());

    store
        .set_application_member(&application, &bob.id, ApplicationRole::Owner, at(3))
        .await
        .unwrap();
    let before = store.latest_change_id().await.unwrap();
    store
        .update_application(&application, &members_only(), at(4))
        .await
        .unwrap();
    assert!(
        revoked_in_feed(store.as_ref(), before).await.is_empty(),
        "both are members"
    );
    let before = store.latest_change_id().await.unwrap();
    store
        .remove_application_member(&application, &bob.id, at(5))
        .await
        .unwrap();
    assert_eq!(
        revoked_in_feed(store.as_ref(), before).await,
        vec![bob_session.id.clone()]
    );
    let kept = spend(alice.session.refresh_hash, &application, at(6));
    assert!(matches!(
        store.spend_refresh_token(&kept).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
    assert!(!store
        .application_admits(&application, "bob@example.test")
        .await
        .unwrap());
}

/// A live session of a user its members-only application does not admit
/// (as an import may bring) does not renew, until the user is a member.
pub async fn refresh_refuses_users_the_application_does_not_admit(store: Arc<dyn Store>) {
    let application: ApplicationId = "app_members_only".into();
    let key = key_record(&application, Environment::Production, at(0));
    let user = user_record("alice@example.test", at(0));
    let session: SessionId = "ses_imported".into();
    let refresh_hash = random_hash();
    let records = vec![
        ExportRecord::Application(ExportedApplication {
            id: application.clone(),
            name: "members only".to_owned(),
            created_at: at(0),
            members_only: true,
        }),
        ExportRecord::ApiKey(Box::new(ExportedApiKey::from(&key))),
        ExportRecord::User(ExportedUser::from(&user)),
        ExportRecord::Session(ExportedSession {
            id: session.clone(),
            user_id: user.id.clone(),
            application_id: application.clone(),
            api_key_id: key.id.clone(),
            created_at: at(0),
            access_expires_at: at(60),
            revoked_at: None,
            scopes: None,
        }),
        ExportRecord::RefreshToken(ExportedRefreshToken {
            token_hash: refresh_hash,
            session_id: session,
            expires_at: at(0) + Duration::days(30),
            spent_at: None,
        }),
    ];
    store.import_records(&records).await.unwrap();
    let refused = spend(refresh_hash, &application, at(1));
    assert_eq!(
        store.spend_refresh_token(&refused).await.unwrap(),
        RefreshOutcome::Invalid
    );
    store
        .set_application_member(&application, &user.id, ApplicationRole::Member, at(2))
        .await
        .unwrap();
    let renewed = spend(refresh_hash, &application, at(3));
    assert!(matches!(
        store.spend_refresh_token(&renewed).await.unwrap(),
        RefreshOutcome::Renewed(_)
    ));
}
