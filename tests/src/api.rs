//! [`Api`]: a logged-in client of a [`Server`], and what a client sees of a secret.

use serde_json::Value;

use crate::Server;

/// The keys of a secret as the API shows it, sorted: metadata only, never a value.
pub const SECRET_INFO_KEYS: [&str; 11] = [
    "allowedDestinations",
    "createdTime",
    "description",
    "id",
    "maxVersions",
    "name",
    "sharedWith",
    "tenantId",
    "type",
    "updatedTime",
    "version",
];

/// The message of the problem at JSON pointer `path` of a `400 invalid_config` answer (panics,
/// showing the answer, when there is none there).
pub fn problem_at(body: &Value, path: &str) -> String {
    body["problems"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["path"] == path))
        .map(|p| p["message"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no problem at {path}: {body}"))
}

/// The keys of a JSON object, sorted (none for anything else).
pub fn sorted_keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> =
        value.as_object().into_iter().flat_map(|o| o.keys()).map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// An authenticated client for one server.
pub struct Api<'a> {
    /// The server it talks to.
    pub server: &'a Server,
    /// Its bearer token.
    pub token: String,
}

impl<'a> Api<'a> {
    /// A client logged in as `admin`.
    pub async fn new(server: &'a Server) -> Self {
        Self { token: server.login().await, server }
    }

    /// A client logged in as `username`.
    pub async fn as_user(server: &'a Server, username: &str, password: &str) -> Self {
        Self { token: server.login_as(username, password).await, server }
    }

    /// `PUT path` with a JSON body: (status, JSON body or Null).
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.req(reqwest::Method::PUT, path).json(&body)).await
    }

    /// A request with the token, to build further.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.server.client.request(method, self.server.url(path)).bearer_auth(&self.token)
    }

    /// Sends and returns (status, JSON body or Null).
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST path` with a JSON body: (status, JSON body or Null).
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.req(reqwest::Method::POST, path).json(&body)).await
    }

    /// `PATCH path` with a JSON body: (status, JSON body or Null).
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.req(reqwest::Method::PATCH, path).json(&body)).await
    }

    /// `GET path`: (status, JSON body or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    /// `DELETE path`: (status, JSON body or Null).
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.req(reqwest::Method::DELETE, path)).await
    }
}
