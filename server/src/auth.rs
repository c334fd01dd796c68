//! Logins and tokens. Passwords are argon2 hashes; tokens are HS256 JWTs signed with a key kept
//! encrypted in the store (so every instance sharing a database accepts them), valid for 12 hours.
//!
//! Nothing here knows the application's state: [`AuthActor`] works in any router whose state
//! yields the [`TokenKeys`] and the [`Store`] (axum `FromRef` substates). The login and logout
//! handlers are in `api::session`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use veil_store::{Actor, Store, UserId};

use crate::error::{ApiError, ApiResult};

/// How long a token is valid.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
const SIGNING_KEY_NAME: &str = "token-signing-key";
const CSRF_KEY_NAME: &str = "csrf-key";
/// The web UI's session cookie: the token, `HttpOnly`, `SameSite=Strict` (see [`session_cookie`]).
pub(crate) const SESSION_COOKIE: &str = "veil_session";
/// The header a request authenticated by the cookie must carry on every state-changing method.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// Most checked tokens [`TokenKeys`] remembers.
const CHECKED_TOKENS: usize = 4096;
/// Seconds a token stays valid past its `exp`: jsonwebtoken's default leeway, so a remembered
/// token expires when a checked one would (a test holds the two equal).
const LEEWAY_SECS: u64 = 60;

/// Signs and checks tokens. Clones share the keys.
#[derive(Clone)]
pub(crate) struct TokenKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Tokens whose signature was checked, with their claims: a client sends the same token with
    /// every request, and checking its HMAC and decoding its claims each time was 4% of a
    /// forwarded message's CPU. Only a string equal to a checked token is found here; expiry is
    /// still checked at every use. At most [`CHECKED_TOKENS`] entries (emptied when full: only
    /// tokens this server signed get in, so filling it takes as many logins).
    checked: dashmap::DashMap<Box<str>, Arc<Claims>, foldhash::fast::RandomState>,
    /// Derives each session's CSRF token (an HMAC of the session token).
    csrf: hmac::Hmac<sha2::Sha256>,
}

impl TokenKeys {
    /// The signing key kept in the store (made on first use).
    pub(crate) async fn load(store: &Store) -> veil_store::Result<Self> {
        let key = store.system_secret(SIGNING_KEY_NAME, 32).await?;
        let csrf = store.system_secret(CSRF_KEY_NAME, 32).await?;
        Ok(Self::from_keys(key.expose_bytes(), csrf.expose_bytes()))
    }

    fn from_keys(signing: &[u8], csrf: &[u8]) -> Self {
        use hmac::Mac as _;
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(signing),
            decoding: DecodingKey::from_secret(signing),
            csrf: hmac::Hmac::new_from_slice(csrf).expect("HMAC takes any key length"),
            checked: dashmap::DashMap::default(),
        }))
    }

    /// The CSRF token of a session: the same on every instance sharing the database, unusable
    /// without the session cookie it belongs to.
    pub(crate) fn csrf_token(&self, session_token: &str) -> String {
        use base64::Engine as _;
        use hmac::Mac as _;
        let mut mac = self.0.csrf.clone();
        mac.update(session_token.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `presented` is the CSRF token of `session_token` (compared in constant time).
    fn csrf_matches(&self, session_token: &str, presented: &str) -> bool {
        use base64::Engine as _;
        use hmac::Mac as _;
        let Ok(presented) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(presented) else {
            return false;
        };
        let mut mac = self.0.csrf.clone();
        mac.update(session_token.as_bytes());
        mac.verify_slice(&presented).is_ok()
    }

    /// A token for `user`, issued now, valid for [`TOKEN_LIFETIME`].
    pub(crate) fn issue(&self, user: UserId) -> ApiResult<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let now_ms = veil_store::now_ms().max(0) as u64;
        let sid = uuid::Uuid::new_v4().simple().to_string();
        let claims = Claims {
            sub: user.to_string(),
            iat: now,
            exp: now + TOKEN_LIFETIME.as_secs(),
            iat_ms: now_ms,
            sid,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
            .map_err(|e| ApiError::internal(format!("token signing failed: {e}")))
    }

    /// The claims of a token this server signed and that has not expired.
    fn check(&self, token: &str) -> ApiResult<Arc<Claims>> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if let Some(claims) = self.0.checked.get(token).map(|c| Arc::clone(c.value())) {
            // jsonwebtoken's own rule (60 s of leeway), so a cached token expires when a checked one would.
            if claims.exp.saturating_add(LEEWAY_SECS) < now {
                self.0.checked.remove(token);
                return Err(ApiError::unauthorized("token expired; log in again"));
            }
            return Ok(claims);
        }
        let claims =
            jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &Validation::new(Algorithm::HS256))
                .map(|data| Arc::new(data.claims))
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        ApiError::unauthorized("token expired; log in again")
                    }
                    _ => ApiError::unauthorized("invalid token"),
                })?;
        if self.0.checked.len() >= CHECKED_TOKENS {
            self.0.checked.clear();
        }
        self.0.checked.insert(token.into(), Arc::clone(&claims));
        Ok(claims)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    /// Issue time in milliseconds, so a revocation in the same second is exact.
    #[serde(default)]
    iat_ms: u64,
    /// The session this token belongs to (a logout ends it alone); empty in tokens issued before
    /// sessions had ids.
    #[serde(default)]
    sid: String,
}

/// The session a request's token belongs to: its user, its id and when it expires (ms).
pub(crate) struct SessionOf {
    pub(crate) sid: String,
    pub(crate) expires_ms: i64,
}

impl TokenKeys {
    /// The session of the token a request carries (bearer or cookie), when it is one of ours.
    pub(crate) fn session_of(&self, headers: &axum::http::HeaderMap) -> Option<SessionOf> {
        let token = match headers.get(axum::http::header::AUTHORIZATION) {
            Some(h) => h.to_str().ok()?.strip_prefix("Bearer ")?.trim().to_owned(),
            None => cookie_token(headers)?,
        };
        let claims = self.check(&token).ok()?;
        let expires_ms = i64::try_from(claims.exp).ok()?.saturating_mul(1000);
        (!claims.sid.is_empty()).then_some(SessionOf { sid: claims.sid.clone(), expires_ms })
    }
}

/// Hashes a password with argon2id and a random salt.
pub(crate) fn hash_password(password: &SecretString) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// Whether `password` matches an argon2 `hash` (false when the hash does not parse).
pub(crate) fn verify_password(password: &SecretString, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// Failed attempts an account may have from one address before its attempts from there are
/// delayed.
pub(crate) const FREE_FAILURES_PER_ACCOUNT: u32 = 5;
/// Failed attempts one address may have (any names) before its attempts are delayed.
pub(crate) const FREE_FAILURES_PER_ADDRESS: u32 = 20;
/// The longest delay between two attempts of one key.
pub(crate) const MAX_LOGIN_DELAY: Duration = Duration::from_secs(15 * 60);
/// A key's failures are forgotten this long after its last attempt.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Past this many tracked keys, forgotten ones are dropped.
const MAX_TRACKED: usize = 10_000;

/// Slows down password guessing with growing delays per account *and* client address (`pair:`),
/// per address (`addr:`), and per session for current-password checks (`user:`). Past a key's free
/// failures each further attempt must wait 1 s, then 2, 4 … up to [`MAX_LOGIN_DELAY`] after the
/// last one. Because an account's key includes the address, someone guessing elsewhere never
/// delays the owner's own logins.
#[derive(Default)]
pub(crate) struct LoginLimiter {
    /// Per key: attempts not (yet) proven good, and when the last one came.
    failures: dashmap::DashMap<String, (u32, Instant)>,
}

impl LoginLimiter {
    fn free(key: &str) -> u32 {
        if key.starts_with("addr:") { FREE_FAILURES_PER_ADDRESS } else { FREE_FAILURES_PER_ACCOUNT }
    }

    /// How long after its last attempt a key with `failures` must wait.
    fn delay(failures: u32, free: u32) -> Duration {
        match failures.checked_sub(free) {
            None => Duration::ZERO,
            Some(over) => Duration::from_secs(1u64 << over.min(20)).min(MAX_LOGIN_DELAY),
        }
    }

    /// Counts an attempt for every key, or refuses (seconds to wait) when one must still wait.
    /// Counting before the slow password check means parallel guesses cannot all slip through.
    pub(crate) fn attempt(&self, keys: &[String]) -> Result<(), u64> {
        if self.failures.len() > MAX_TRACKED {
            self.failures.retain(|_, (_, last)| last.elapsed() < FORGET_AFTER);
        }
        for k in keys {
            if let Some(entry) = self.failures.get(k) {
                let (failures, last) = *entry;
                if last.elapsed() < FORGET_AFTER {
                    let wait = Self::delay(failures, Self::free(k)).saturating_sub(last.elapsed());
                    if !wait.is_zero() {
                        return Err(wait.as_secs_f64().ceil().max(1.0) as u64);
                    }
                }
            }
        }
        for k in keys {
            let mut entry = self.failures.entry(k.clone()).or_insert((0, Instant::now()));
            if entry.1.elapsed() >= FORGET_AFTER {
                entry.0 = 0;
            }
            entry.0 += 1;
            entry.1 = Instant::now();
        }
        Ok(())
    }

    /// A successful attempt: it was not a failure; the account's count (from this address)
    /// starts again.
    pub(crate) fn succeeded(&self, account_key: &str, address_key: &str) {
        self.failures.remove(account_key);
        if let Some(mut entry) = self.failures.get_mut(address_key) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    fn message(result: ApiResult<Arc<Claims>>) -> String {
        match result {
            Ok(claims) => format!("ok {}", claims.sub),
            Err(e) => format!("{e:?}"),
        }
    }

    #[test]
    fn remembered_tokens_expire_with_jsonwebtokens_leeway() {
        assert_eq!(LEEWAY_SECS, Validation::default().leeway);
    }

    #[test]
    fn a_remembered_token_is_still_refused_when_tampered_with_or_expired() {
        let keys = TokenKeys::from_keys(b"signing key of this test", b"csrf key");
        let user = UserId::new_random();
        let token = keys.issue(user).unwrap();
        assert_eq!(message(keys.check(&token)), format!("ok {user}"));
        assert_eq!(message(keys.check(&token)), format!("ok {user}"), "the remembered token");
        // Another signature, another payload: neither is the remembered string.
        let (head, signature) = token.rsplit_once('.').unwrap();
        let other = if signature.starts_with('A') { 'B' } else { 'A' };
        let tampered = format!("{head}.{other}{}", &signature[1..]);
        assert!(message(keys.check(&tampered)).contains("invalid token"));
        let (_, rest) = token.split_once('.').unwrap();
        assert!(message(keys.check(&format!("eyJhbGciOiJub25lIn0.{rest}"))).contains("invalid token"));
        // Another server's key.
        let theirs = TokenKeys::from_keys(b"another signing key", b"csrf key");
        assert!(message(theirs.check(&token)).contains("invalid token"));
        // A remembered token past its expiry (plus jsonwebtoken's leeway) is refused and forgotten.
        let expired = Claims { sub: user.to_string(), iat: 1, exp: 2, iat_ms: 1000, sid: "s".into() };
        keys.0.checked.insert(token.clone().into(), Arc::new(expired));
        assert!(message(keys.check(&token)).contains("token expired"));
        assert!(keys.0.checked.get(token.as_str()).is_none());
    }

    #[test]
    fn at_most_checked_tokens_are_remembered() {
        let keys = TokenKeys::from_keys(b"signing key of this test", b"csrf key");
        for _ in 0..CHECKED_TOKENS + 10 {
            let token = keys.issue(UserId::new_random()).unwrap();
            assert!(keys.check(&token).is_ok());
            assert!(keys.0.checked.len() <= CHECKED_TOKENS);
        }
    }
}

#[cfg(test)]
mod limiter_tests {
    use super::*;

    #[test]
    fn delays_grow_per_account_and_address_and_spare_other_addresses() {
        let limiter = LoginLimiter::default();
        let (mine, theirs) = (vec!["pair:u1:10.0.0.1".to_owned()], vec!["pair:u1:10.0.0.9".to_owned()]);
        for _ in 0..FREE_FAILURES_PER_ACCOUNT {
            assert!(limiter.attempt(&theirs).is_ok());
        }
        assert_eq!(limiter.attempt(&theirs), Err(1), "the 6th guess from there waits");
        // The owner, from their own address, is not slowed down by the guesses elsewhere.
        assert!(limiter.attempt(&mine).is_ok());
        limiter.succeeded(&mine[0], "addr:10.0.0.1");
        assert_eq!(
            LoginLimiter::delay(FREE_FAILURES_PER_ACCOUNT + 3, FREE_FAILURES_PER_ACCOUNT),
            Duration::from_secs(8)
        );
        assert_eq!(LoginLimiter::delay(100, FREE_FAILURES_PER_ACCOUNT), MAX_LOGIN_DELAY);
    }
}

/// The `Set-Cookie` value of a web UI session: `HttpOnly` (no script reads it), `SameSite=Strict`
/// (no other site's page sends it), `Path=/`, `Secure` when the browser came over HTTPS (a TLS
/// proxy in front says so with `X-Forwarded-Proto: https`). `None` clears it.
pub(crate) fn session_cookie(token: Option<&str>, secure: bool) -> String {
    let mut cookie = cookie::Cookie::build((SESSION_COOKIE, token.unwrap_or_default().to_owned()))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .secure(secure);
    cookie = match token {
        Some(_) => cookie.max_age(cookie::time::Duration::seconds(TOKEN_LIFETIME.as_secs() as i64)),
        None => cookie.max_age(cookie::time::Duration::ZERO),
    };
    cookie.build().to_string()
}

/// Whether the browser reached this server over HTTPS (directly, or through a TLS proxy).
pub(crate) fn over_https(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The session token in the request's cookie, if any.
pub(crate) fn cookie_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

/// The host names the web UI's cookie sessions are served for. A browser that reaches Veil under
/// another name — a page of a site whose name was pointed at Veil's address (DNS rebinding) — gets
/// no session: its `Host` must be an IP address, `localhost`, or a name given with `--public-host`.
/// The session cookie is `Secure` when the browser came over HTTPS, or always with
/// `--cookie-secure always`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PublicHosts(Arc<[String]>, CookieSecure);

/// When the session cookie is marked `Secure` (sent over HTTPS only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CookieSecure {
    /// When the browser came over HTTPS (directly, or `X-Forwarded-Proto: https` from a proxy).
    #[default]
    Auto,
    /// Always: browsers then keep the session only over HTTPS.
    Always,
}

impl PublicHosts {
    /// The names given with `--public-host` (with or without a port), and `--cookie-secure`.
    pub(crate) fn new(names: &[String], secure: CookieSecure) -> Self {
        Self(names.iter().map(|n| n.trim().to_ascii_lowercase()).collect(), secure)
    }

    /// Whether the session cookie of a request with these headers is `Secure`.
    pub(crate) fn secure_cookie(&self, headers: &axum::http::HeaderMap) -> bool {
        self.1 == CookieSecure::Always || over_https(headers)
    }

    /// Refuses a browser session under a host name that is not public.
    pub(crate) fn check(&self, headers: &axum::http::HeaderMap) -> ApiResult<()> {
        let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let host = host.trim().to_ascii_lowercase();
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host.as_str(), |(name, _)| name),
        };
        let literal = name.parse::<std::net::IpAddr>().is_ok() || name == "localhost";
        if literal || self.0.iter().any(|p| *p == host || *p == name) {
            return Ok(());
        }
        Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "host_refused",
            format!(
                "browser sessions are served only for IP addresses, localhost and the names given with --public-host; '{name}' is not one"
            ),
        ))
    }
}

/// Refuses a request whose `Origin` (when the browser sends one) is not this server's own: the
/// same scheme, host and port as the request.
pub(crate) fn check_origin(headers: &axum::http::HeaderMap) -> ApiResult<()> {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else { return Ok(()) };
    let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok());
    let scheme = if over_https(headers) { "https" } else { "http" };
    let own = host.map(|h| format!("{scheme}://{h}"));
    if own.is_some_and(|own| origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(&own))) {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "csrf_refused",
        "cross-site request refused: the request comes from another origin",
    ))
}

/// A state-changing request authenticated by the session cookie must come from this server's
/// own pages: its `Origin` (when the browser sends one) is this server's scheme, host and port,
/// and it carries the session's CSRF token in `X-CSRF-Token`.
fn check_csrf(parts: &Parts, keys: &TokenKeys, token: &str) -> ApiResult<()> {
    use axum::http::Method;
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let refused = |why: &str| {
        ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "csrf_refused",
            format!("cross-site request refused: {why}"),
        )
    };
    check_origin(&parts.headers)?;
    let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match presented {
        Some(p) if keys.csrf_matches(token, p) => Ok(()),
        Some(_) => Err(refused("the X-CSRF-Token header does not match the session")),
        None => Err(refused("the X-CSRF-Token header is missing")),
    }
}

/// The authenticated caller, from `Authorization: Bearer <token>`, or from the web UI's session
/// cookie (then every state-changing request also needs the CSRF token: [`check_csrf`]).
pub(crate) struct AuthActor(pub(crate) Actor);

impl<S> FromRequestParts<S> for AuthActor
where
    TokenKeys: FromRef<S>,
    PublicHosts: FromRef<S>,
    Store: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let keys = TokenKeys::from_ref(state);
        let token = match parts.headers.get(axum::http::header::AUTHORIZATION) {
            Some(header) => header
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(|t| t.trim().to_owned())
                .ok_or_else(|| ApiError::unauthorized("Authorization header must be 'Bearer <token>'"))?,
            None => {
                let token = cookie_token(&parts.headers)
                    .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token> header"))?;
                PublicHosts::from_ref(state).check(&parts.headers)?;
                check_csrf(parts, &keys, &token)?;
                token
            }
        };
        let claims = keys.check(&token)?;
        let id: UserId = claims.sub.parse().map_err(|_| ApiError::unauthorized("invalid token"))?;
        // From memory after the user's first request: directory writes clear it (see Store::session).
        let session = Store::from_ref(state)
            .session(id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
        let issued_ms = if claims.iat_ms > 0 { claims.iat_ms } else { claims.iat * 1000 };
        if (issued_ms as i64) <= session.tokens_valid_after {
            return Err(ApiError::unauthorized(
                "the token was revoked (password change or logout); log in again",
            ));
        }
        if !claims.sid.is_empty() && session.revoked.contains(&claims.sid) {
            return Err(ApiError::unauthorized("this session was logged out; log in again"));
        }
        Ok(Self(session.actor))
    }
}
