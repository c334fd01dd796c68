//! [`Browser`]: Debian's headless Chromium driven through chromedriver (WebDriver, fantoccini),
//! and [`RecordingProxy`]: a loopback HTTP proxy in front of a server that keeps every response
//! the browser received, so a test can check all of them for a value.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The variable naming chromedriver (`/usr/bin/chromedriver`); browser tests need it.
pub const CHROMEDRIVER_ENV: &str = "VEIL_TEST_CHROMEDRIVER";

/// Headless Chromium under chromedriver (dropped: chromedriver is stopped, and quits the browser).
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
}

impl Browser {
    /// Starts chromedriver (the one [`CHROMEDRIVER_ENV`] names; panics naming the variable when it
    /// is not set) on a free port and opens a headless Chromium (`VEIL_TEST_CHROMIUM`, default
    /// `/usr/bin/chromium`) with a 1280×900 window.
    pub async fn start() -> Self {
        let driver_path = std::env::var(CHROMEDRIVER_ENV).unwrap_or_else(|_| {
            panic!("{CHROMEDRIVER_ENV} is not set: browser tests need chromedriver (e.g. /usr/bin/chromedriver; .ci/run sets it)")
        });
        let chromium = std::env::var("VEIL_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new(&driver_path);
        cmd.arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null());
        let driver = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {driver_path}: {e}"));
        let mut browser = None;
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions"]
            }),
        );
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => {
                    browser = Some(client);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let client = browser.expect("chromedriver did not accept a session within 10 s");
        Self { client, driver }
    }

    /// Opens `url` and waits until the page marks itself ready (`body[data-ready]`), returning
    /// the time from navigation start to ready in milliseconds.
    pub async fn open(&self, url: &str) -> f64 {
        self.client.goto(url).await.unwrap();
        self.ready().await
    }

    /// Waits until the page has rendered its current route; the page's own time of it (ms since
    /// navigation start).
    pub async fn ready(&self) -> f64 {
        let mut last = Value::Null;
        for _ in 0..200 {
            last = self.client.execute("return document.body.dataset.ready || null", vec![]).await.unwrap();
            if let Some(ms) = last.as_str().and_then(|s| s.parse::<f64>().ok()) {
                return ms;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the page never became ready ({last})");
    }

    /// Clears the ready mark, so [`Browser::ready`] waits for the next render.
    pub async fn unready(&self) {
        self.client.execute("delete document.body.dataset.ready", vec![]).await.unwrap();
    }

    /// Waits for an element matching `css` and returns it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Waits until `css` matches nothing.
    pub async fn gone(&self, css: &str) {
        for _ in 0..200 {
            if self.client.find_all(Locator::Css(css)).await.unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} is still there");
    }

    /// Waits until the text of `css` contains `text`; returns the whole text.
    pub async fn text_of(&self, css: &str, text: &str) -> String {
        let mut last = String::new();
        for _ in 0..200 {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                last = e.text().await.unwrap_or_default();
                if last.contains(text) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} never showed {text:?}; it shows {last:?}");
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Replaces the value of the input matching `css` with `text`.
    pub async fn type_into(&self, css: &str, text: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    /// Drags with the mouse (pointer events, as a person does) from `from` (offset from its
    /// centre) to `to` (offset from its centre), in small steps.
    pub async fn drag(
        &self,
        from: &fantoccini::elements::Element,
        (fx, fy): (f64, f64),
        to: &fantoccini::elements::Element,
        (tx, ty): (f64, f64),
    ) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let step = Some(Duration::from_millis(60));
        let actions = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement { element: from.clone(), duration: None, x: fx, y: fy })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::MoveToElement {
                element: from.clone(),
                duration: step,
                x: fx + 12.0,
                y: fy + 6.0,
            })
            .then(PointerAction::MoveToElement {
                element: to.clone(),
                duration: step,
                x: tx - 6.0,
                y: ty - 3.0,
            })
            .then(PointerAction::MoveToElement { element: to.clone(), duration: step, x: tx, y: ty })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        self.client.perform_actions(actions).await.unwrap();
        self.client.release_actions().await.unwrap();
    }

    /// Drags `element` from its centre by (`dx`, `dy`) pixels.
    pub async fn drag_by(&self, element: &fantoccini::elements::Element, dx: f64, dy: f64) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let step = Some(Duration::from_millis(60));
        let actions = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement { element: element.clone(), duration: None, x: 0.0, y: 0.0 })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::MoveBy { duration: step, x: dx / 2.0, y: dy / 2.0 })
            .then(PointerAction::MoveBy { duration: step, x: dx - dx / 2.0, y: dy - dy / 2.0 })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        self.client.perform_actions(actions).await.unwrap();
        self.client.release_actions().await.unwrap();
    }

    /// A double click on `element`.
    pub async fn double_click(&self, element: &fantoccini::elements::Element) {
        use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
        let actions = MouseActions::new("mouse".into())
            .then(PointerAction::MoveToElement { element: element.clone(), duration: None, x: 0.0, y: 0.0 })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::Down { button: MOUSE_BUTTON_LEFT })
            .then(PointerAction::Up { button: MOUSE_BUTTON_LEFT });
        self.client.perform_actions(actions).await.unwrap();
        self.client.release_actions().await.unwrap();
    }

    /// Everything the page holds that a value could leak into: its HTML, its cookies and its
    /// local and session storage.
    pub async fn exposed(&self) -> String {
        let html = self.client.source().await.unwrap();
        let cookies = self.client.get_all_cookies().await.unwrap();
        let cookies: Vec<String> = cookies.iter().map(|c| format!("{}={}", c.name(), c.value())).collect();
        let storage = self
            .client
            .execute(
                "return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])",
                vec![],
            )
            .await
            .unwrap();
        format!("{html}\n{}\n{storage}", cookies.join("\n"))
    }

    /// A PNG of the window, written to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Ends the session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.kill();
    }

    /// Stops chromedriver: SIGTERM first (it quits the browsers it started), then SIGKILL.
    fn kill(&mut self) {
        if matches!(self.driver.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").args(["-s", "TERM", &self.driver.id().to_string()]).status();
        for _ in 0..20 {
            if matches!(self.driver.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One response as the browser received it.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Method and path.
    pub request: String,
    /// The status.
    pub status: u16,
    /// Every response header, `name: value` per line.
    pub headers: String,
    /// The body, as text (lossy).
    pub body: String,
}

/// A loopback proxy to a server that records every response; the browser talks to the proxy.
/// The `Host` header passes unchanged, so the server sees the browser's origin.
pub struct RecordingProxy {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl RecordingProxy {
    /// Starts a proxy to `target` (a base URL).
    pub async fn start(target: &str) -> Self {
        let exchanges: Arc<Mutex<Vec<Exchange>>> = Arc::default();
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let (target, seen) = (target.trim_end_matches('/').to_owned(), Arc::clone(&exchanges));
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (client, target, seen) = (client.clone(), target.clone(), Arc::clone(&seen));
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
                let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
                let mut forward = client.request(parts.method.clone(), format!("{target}{path}")).body(body);
                for (name, value) in &parts.headers {
                    if name != axum::http::header::CONTENT_LENGTH {
                        forward = forward.header(name, value);
                    }
                }
                let response = forward.send().await.unwrap();
                let status = response.status();
                let headers = response.headers().clone();
                let bytes = response.bytes().await.unwrap_or_default();
                seen.lock().unwrap().push(Exchange {
                    request: format!("{} {path}", parts.method),
                    status: status.as_u16(),
                    headers: headers
                        .iter()
                        .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes())))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                });
                let mut out = axum::response::Response::new(axum::body::Body::from(bytes));
                *out.status_mut() = status;
                for (name, value) in &headers {
                    if name != axum::http::header::TRANSFER_ENCODING && name != axum::http::header::CONNECTION
                    {
                        out.headers_mut().append(name, value.clone());
                    }
                }
                out
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, exchanges }
    }

    /// Every response so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }

    /// Every response so far as one text (request, status, headers, body of each).
    pub fn all_text(&self) -> String {
        self.exchanges()
            .iter()
            .map(|e| format!("{} -> {}\n{}\n\n{}", e.request, e.status, e.headers, e.body))
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}
