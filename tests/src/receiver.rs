//! [`Receiver`]: an outside HTTP service on loopback that records what it is sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A request as an outside service saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The method.
    pub method: String,
    /// The path and query.
    pub uri: String,
    /// The headers (names lowercased).
    pub headers: HashMap<String, String>,
    /// The body, as text.
    pub body: String,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// What the receiver answers.
#[derive(Debug, Clone)]
enum Answer {
    /// `{"received": true}`.
    Received,
    /// `{"path": <path and query>, "headers": {...}}`: the request as it arrived.
    Reflect,
    /// This text (with its Content-Length).
    Text(Arc<str>),
    /// This page (`text/html`).
    Html(Arc<str>),
}

#[derive(Debug)]
struct Behaviour {
    status: StatusCode,
    answer: Answer,
    /// How long each answer waits (a slow service).
    delay: std::time::Duration,
}

/// A real HTTP service on loopback that records every request (bodies up to 1 MiB) and answers
/// with a status and body the test sets: by default `200 {"received": true}`.
pub struct Receiver {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Receiver {
    /// Starts it on a free port; it answers `200 {"received": true}` until told otherwise.
    pub async fn start() -> Self {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let behaviour = Arc::new(Mutex::new(Behaviour {
            status: StatusCode::OK,
            answer: Answer::Received,
            delay: std::time::Duration::ZERO,
        }));
        let (r, b) = (Arc::clone(&requests), Arc::clone(&behaviour));
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (r, b) = (Arc::clone(&r), Arc::clone(&b));
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: text_headers(&parts.headers),
                    body: String::from_utf8_lossy(&body).into_owned(),
                    at: std::time::Instant::now(),
                };
                let (status, answer, delay) = {
                    let b = b.lock().unwrap();
                    (b.status, b.answer.clone(), b.delay)
                };
                let response: Response = match answer {
                    Answer::Received => axum::Json(json!({"received": true})).into_response(),
                    Answer::Reflect => {
                        let headers: serde_json::Map<String, Value> =
                            recorded.headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                        axum::Json(json!({"path": recorded.uri, "headers": headers})).into_response()
                    }
                    Answer::Text(text) => text.to_string().into_response(),
                    Answer::Html(page) => axum::response::Html(page.to_string()).into_response(),
                };
                r.lock().unwrap().push(recorded);
                // Recorded as it arrived; answered after the delay.
                tokio::time::sleep(delay).await;
                (status, response)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, requests, behaviour }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Every request since the last call (or since the start), in order, forgotten here: for long
    /// runs (a load test) that would otherwise keep every request.
    pub fn drain(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }

    /// Answers every later request only after `delay` (a slow service).
    pub fn delay(&self, delay: std::time::Duration) {
        self.behaviour.lock().unwrap().delay = delay;
    }

    /// Answers every later request with `status`.
    pub fn answer_with(&self, status: u16) {
        self.behaviour.lock().unwrap().status = StatusCode::from_u16(status).unwrap();
    }

    /// Answers every later request with what it received: `{"path": <path and query>,
    /// "headers": {<lowercased name>: <value>}}`.
    pub fn reflect(&self) {
        self.behaviour.lock().unwrap().answer = Answer::Reflect;
    }

    /// Answers every later request with the HTML page `page` (another site's page, in browser tests).
    pub fn answer_html(&self, page: impl Into<Arc<str>>) {
        self.behaviour.lock().unwrap().answer = Answer::Html(page.into());
    }

    /// Answers every later request with `text` (as `text/plain`, with a Content-Length).
    pub fn answer_text(&self, text: impl Into<Arc<str>>) {
        self.behaviour.lock().unwrap().answer = Answer::Text(text.into());
    }
}

fn text_headers(headers: &HeaderMap) -> HashMap<String, String> {
    headers.iter().map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}
