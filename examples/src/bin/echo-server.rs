//! A stand-in for an outside REST service: prints every request it receives (method, path,
//! headers, body) and answers `200 {"received": true}`. It shows what the service sees — including
//! the credential Veil injected, which is the point of the demonstration.
//!
//! `cargo run -p veil-examples --bin echo-server -- 127.0.0.1:9000`

use axum::extract::Request;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("echo-server listening on http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(|req: Request| async move {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
        println!("{} {}", parts.method, parts.uri);
        for (name, value) in &parts.headers {
            println!("  {name}: {}", String::from_utf8_lossy(value.as_bytes()));
        }
        println!("  body: {}\n", String::from_utf8_lossy(&body));
        axum::Json(serde_json::json!({ "received": true }))
    });
    axum::serve(listener, app).await
}
