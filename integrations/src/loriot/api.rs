//! Calls to the LORIOT REST API: login (or an API token), and the application's HTTP push output
//! kept pointing at this integration.

use std::sync::atomic::Ordering;

use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use veil_core::Template;

use super::{Credentials, Loriot};
use crate::error::IntegrationError;
use crate::integration::IntegrationCtx;

/// A call to LORIOT that gets no answer within this is an error.
pub(super) const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// At most this much of an answer body goes into an error message.
pub(super) const EXCERPT: usize = 200;

/// The start of an answer body for an error message, masked before it is cut (a cut through a
/// secret would leave a prefix the redactor no longer recognises).
pub(super) fn excerpt(ctx: &IntegrationCtx<'_>, text: &str) -> String {
    let masked = ctx.redactor.mask(text);
    let mut end = masked.len().min(EXCERPT);
    while !masked.is_char_boundary(end) {
        end -= 1;
    }
    masked[..end].trim().to_owned()
}

/// An `Authorization` value from a secret: marked sensitive, and refused naming `what` when it is
/// not a valid header value.
pub(super) fn header(
    value: &SecretString,
    what: &str,
) -> Result<reqwest::header::HeaderValue, IntegrationError> {
    veil_core::sensitive_header(value, what).map_err(|e| IntegrationError::new(e.to_string()))
}

/// Whether a LORIOT application output is an HTTP push to `endpoint`.
pub(super) fn pushes_to(output: &Value, endpoint: &str) -> bool {
    output.get("output").and_then(Value::as_str) == Some("httppush")
        && output.pointer("/osetup/url").and_then(Value::as_str) == Some(endpoint)
}

impl Loriot {
    pub(super) async fn login(
        &self,
        ctx: &IntegrationCtx<'_>,
        username: &Template,
        password: &Template,
    ) -> Result<SecretString, IntegrationError> {
        let user = ctx.render(username)?;
        let pwd = ctx.render(password)?;
        let body = json!({ "user": user.expose_secret(), "pwd": pwd.expose_secret() });
        let url = format!("{}/1/pub/login", self.base);
        let response = self
            .client
            .post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| IntegrationError::transient(format!("LORIOT login at {url} failed: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let error =
                if status.is_server_error() { IntegrationError::transient } else { IntegrationError::new };
            // The field, not the user name: it may come from a secret.
            return Err(error(format!(
                "LORIOT login with credentials/username and credentials/password refused: HTTP {status} {}",
                excerpt(ctx, &text)
            )));
        }
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("session").and_then(Value::as_str).map(|s| SecretString::from(s.to_owned())))
            .ok_or_else(|| IntegrationError::new("LORIOT login answered without a session"))
    }

    /// The `Authorization` value for the account API; `fresh` logs in again.
    pub(super) async fn authorization(
        &self,
        ctx: &IntegrationCtx<'_>,
        fresh: bool,
    ) -> Result<SecretString, IntegrationError> {
        match &self.credentials {
            None => Err(IntegrationError::new("credentials are not configured")),
            Some(Credentials::Token { token }) => {
                Ok(format!("Bearer {}", ctx.render(token)?.expose_secret()).into())
            }
            Some(Credentials::Basic { username, password }) => {
                let mut session = self.session.lock().await;
                let generation = self.credentials_generation.load(Ordering::SeqCst);
                let stale = session.as_ref().is_none_or(|(_, g)| *g != generation);
                if fresh || stale {
                    *session = Some((self.login(ctx, username, password).await?, generation));
                }
                let current = session.as_ref().map(|(s, _)| s.expose_secret()).unwrap_or_default();
                Ok(format!("Session {current}").into())
            }
        }
    }

    /// One account API call; with basic credentials a 403 (session expired) logs in again and
    /// retries once.
    pub(super) async fn call(
        &self,
        ctx: &IntegrationCtx<'_>,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> Result<Value, IntegrationError> {
        let mut fresh = false;
        loop {
            let auth = self.authorization(ctx, fresh).await?;
            let mut request =
                self.client.request(method.clone(), url).header(AUTHORIZATION, header(&auth, "credentials")?);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| IntegrationError::transient(format!("{method} {url} failed: {e}")))?;
            let status = response.status();
            if status == reqwest::StatusCode::FORBIDDEN
                && !fresh
                && matches!(self.credentials, Some(Credentials::Basic { .. }))
            {
                tracing::info!(integration = %ctx.name, "LORIOT session refused; logging in again");
                fresh = true;
                continue;
            }
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                let error = if status.is_server_error() {
                    IntegrationError::transient
                } else {
                    IntegrationError::new
                };
                return Err(error(format!("{method} {url} answered HTTP {status} {}", excerpt(ctx, &text))));
            }
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text)
                .map_err(|e| IntegrationError::new(format!("{method} {url} answered invalid JSON ({e})")));
        }
    }

    /// Makes sure the application has an HTTP push output to `httpEndpoint` carrying the push
    /// authorization of this moment: created when there is none, updated when one has another
    /// authorization (LORIOT would push with it and every uplink would be refused).
    pub(super) async fn ensure_output(&self, ctx: &IntegrationCtx<'_>) -> Result<(), IntegrationError> {
        let (Some(app_id), Some(endpoint)) = (&self.app_id, &self.http_endpoint) else {
            return Ok(());
        };
        let _one_at_a_time = self.output_lock.lock().await;
        let (app_url, mut outputs) = self.outputs(ctx, app_id).await?;
        let auth = match self.security.expected("authorization") {
            Some(t) => ctx.render(t)?.expose_secret().to_owned(),
            None => String::new(),
        };
        let ours = |o: &Value| pushes_to(o, endpoint);
        if !outputs.iter().any(ours) {
            let body = json!({ "output": "httppush", "osetup": { "url": endpoint, "auth": auth } });
            self.call(ctx, Method::POST, &format!("{app_url}/outputs/httppush"), Some(&body)).await?;
            tracing::info!(integration = %ctx.name, "LORIOT application output created");
            return Ok(());
        }
        let stale = outputs
            .iter()
            .filter(|o| ours(o))
            .any(|o| o.pointer("/osetup/auth").and_then(Value::as_str).unwrap_or_default() != auth.as_str());
        if !stale {
            tracing::info!(integration = %ctx.name, "LORIOT application output exists");
            return Ok(());
        }
        for output in outputs.iter_mut().filter(|o| ours(o)) {
            output["osetup"]["auth"] = json!(auth);
        }
        self.call(ctx, Method::PUT, &format!("{app_url}/outputs"), Some(&json!({ "outputs": outputs })))
            .await?;
        tracing::info!(integration = %ctx.name, "LORIOT application output updated (its authorization was another)");
        Ok(())
    }

    /// The application's URL and its outputs as LORIOT lists them.
    pub(super) async fn outputs(
        &self,
        ctx: &IntegrationCtx<'_>,
        app_id: &str,
    ) -> Result<(String, Vec<Value>), IntegrationError> {
        let app_url = format!("{}/1/nwk/app/{app_id}", self.base);
        let app = self.call(ctx, Method::GET, &app_url, None).await?;
        let outputs = app.get("outputs").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok((app_url, outputs))
    }

    /// Removes the HTTP push output to `httpEndpoint` from the application.
    pub(super) async fn remove_output(&self, ctx: &IntegrationCtx<'_>) -> Result<(), IntegrationError> {
        let (Some(app_id), Some(endpoint)) = (&self.app_id, &self.http_endpoint) else {
            return Ok(());
        };
        let _one_at_a_time = self.output_lock.lock().await;
        let (app_url, outputs) = self.outputs(ctx, app_id).await?;
        let kept: Vec<Value> = outputs.iter().filter(|o| !pushes_to(o, endpoint)).cloned().collect();
        if kept.len() == outputs.len() {
            return Ok(());
        }
        self.call(ctx, Method::PUT, &format!("{app_url}/outputs"), Some(&json!({ "outputs": kept }))).await?;
        tracing::info!(integration = %ctx.name, "LORIOT application output removed");
        Ok(())
    }
}
