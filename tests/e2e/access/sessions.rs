//! Logins and sessions: rate limits, password changes, logouts.

use serde_json::{Value, json};

use super::{USER_PASSWORD, entries, id_of, login, secret_manager};
use crate::support::{ADMIN_PASSWORD, Api, Server};

#[tokio::test]
async fn failed_logins_are_rate_limited_per_user() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    for username in ["alice", "bob"] {
        assert_eq!(admin.post("/api/users", secret_manager(username)).await.0, 201);
    }
    for attempt in 1..=5 {
        let resp = login(&server, "alice", "not alice's password").await;
        assert_eq!(resp.status(), 401, "attempt {attempt}");
    }
    let resp = login(&server, "alice", USER_PASSWORD).await;
    assert_eq!(resp.status(), 429, "the right password after 5 failures");
    let retry_after: u64 = resp
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=15 * 60).contains(&retry_after), "Retry-After: {retry_after}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "too_many_attempts", "{body}");
    assert_eq!(login(&server, "alice", "not alice's password").await.status(), 429);

    // Guesses sent in parallel cannot all slip through before the count catches up.
    assert_eq!(admin.post("/api/users", secret_manager("carol")).await.0, 201);
    let url = server.url("/api/auth/login");
    let guesses: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (server.client.clone(), url.clone());
            tokio::spawn(async move {
                let body = json!({"username": "carol", "password": "not carol's password"});
                client.post(url).json(&body).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 15, "{statuses:?}");

    // Other users are not affected.
    let resp = login(&server, "bob", USER_PASSWORD).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(login(&server, "admin", ADMIN_PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_password_change_or_a_logout_ends_the_sessions_opened_before() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    let (status, dana) = admin.post("/api/users", secret_manager("dana")).await;
    assert_eq!(status, 201, "{dana}");
    let old = Api::as_user(&server, "dana", USER_PASSWORD).await;
    assert_eq!(old.get("/api/secrets").await.0, 200);
    let changed = json!({"password": "a brand new password", "currentPassword": USER_PASSWORD});
    assert_eq!(old.patch(&format!("/api/users/{}", id_of(&dana)), changed).await.0, 200);
    let (status, refused) = old.get("/api/secrets").await;
    assert_eq!((status, refused["error"].as_str().unwrap()), (401, "unauthorized"), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("revoked"), "{refused}");

    let new = Api::as_user(&server, "dana", "a brand new password").await;
    assert_eq!(new.get("/api/secrets").await.0, 200);
    assert_eq!(new.post("/api/auth/logout", json!({})).await.0, 204);
    assert_eq!(new.get("/api/secrets").await.0, 401);
    // Other accounts are untouched.
    assert_eq!(admin.get("/api/secrets").await.0, 200);
}

#[tokio::test]
async fn changing_your_own_password_needs_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path()).await;
    let admin = Api::new(&server).await;
    let (status, erin) = admin.post("/api/users", secret_manager("erin")).await;
    assert_eq!(status, 201, "{erin}");
    let own = format!("/api/users/{}", id_of(&erin));
    let stolen = Api::as_user(&server, "erin", USER_PASSWORD).await;

    // A session alone cannot take the account over.
    let (status, refused) = stolen.patch(&own, json!({"password": "taken over 1234"})).await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_request")), "{refused}");
    assert_eq!(refused["message"], "currentPassword: is required to change your own password");
    let wrong = json!({"password": "taken over 1234", "currentPassword": "a wrong guess"});
    let (status, refused) = stolen.patch(&own, wrong.clone()).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("forbidden")), "{refused}");
    assert_eq!(refused["message"], "currentPassword: is not your current password");
    assert_eq!(login(&server, "erin", "taken over 1234").await.status(), 401);
    // A wrong current password is recorded like a failed login.
    let (_, log) = admin.get("/api/audit-logs?actor=erin&pageSize=100").await;
    assert_eq!(entries(&log, "LOGIN_FAILED").len(), 2, "{log}");

    // With the current password it works, and the other sessions end.
    let right = json!({"password": "erin's new password", "currentPassword": USER_PASSWORD});
    assert_eq!(stolen.patch(&own, right).await.0, 200);
    assert_eq!(stolen.get("/api/secrets").await.0, 401);
    let erin_api = Api::as_user(&server, "erin", "erin's new password").await;

    // Guessing is limited like logins: 5 wrong ones, then 429 even for the right one.
    for attempt in 1..=5 {
        assert_eq!(erin_api.patch(&own, wrong.clone()).await.0, 403, "attempt {attempt}");
    }
    let right = json!({"password": "another password", "currentPassword": "erin's new password"});
    let (status, limited) = erin_api.patch(&own, right).await;
    assert_eq!((status, limited["error"].as_str()), (429, Some("too_many_attempts")), "{limited}");

    // An administrator resets someone else's password without knowing it.
    let reset = json!({"password": "reset by the admin"});
    assert_eq!(admin.patch(&own, reset).await.0, 200);
    assert_eq!(login(&server, "erin", "reset by the admin").await.status(), 200);
    // ... but changes its own only with its current one.
    let (_, me) = admin.get("/api/users?pageSize=100").await;
    let admin_id = me["data"].as_array().unwrap().iter().find(|u| u["username"] == "admin").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) =
        admin.patch(&format!("/api/users/{admin_id}"), json!({"password": "x new admin pw"})).await;
    assert_eq!(status, 400);
    let change = json!({"password": "x new admin pw", "currentPassword": ADMIN_PASSWORD});
    assert_eq!(admin.patch(&format!("/api/users/{admin_id}"), change).await.0, 200);
    assert_eq!(login(&server, "admin", "x new admin pw").await.status(), 200);
}
