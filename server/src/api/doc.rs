//! The API's OpenAPI 3.1 document: generated from the handlers' `#[utoipa::path]` attributes and
//! their types as the router is built (`super::router`), so a route and its description are one
//! registration. What every operation shares is here: the error body, the sets of error answers,
//! the security schemes (a bearer token; the web UI's session cookie with its CSRF header) and the
//! document's header. `GET /api/openapi.json` serves it; `veil openapi` prints it.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// An error answer: `error` is a stable code (`not_found`, `invalid_secret`…), `message` says
/// what went wrong for people (never a value), `problems` lists each field's problem when a
/// request had several.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) struct ErrorBody {
    /// A stable code.
    error: String,
    /// What went wrong.
    message: String,
    /// Each field's problem, when there are several.
    problems: Option<Vec<ProblemBody>>,
}

/// One field's problem: where (`field` for a request's field, `path`, a JSON pointer, for a
/// configuration's) and what.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub(crate) struct ProblemBody {
    /// The request's field.
    field: Option<String>,
    /// A JSON pointer into a configuration.
    path: Option<String>,
    /// The problem.
    message: String,
}

/// The errors any authenticated operation may answer with.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Errors {
    /// The request is malformed: a field, a parameter or the body (`problems` lists each).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No token, an expired or revoked one, or a cookie session without its CSRF header.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The caller's roles do not allow it.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such thing (or one the caller may not see).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The request conflicts with the current state (a name taken, a secret in use, a stale
    /// version, a quota reached).
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// A check-and-set failed: `If-Match` names an earlier version.
    #[response(status = 412)]
    PreconditionFailed(ErrorBody),
    /// The body is larger than the server accepts.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body's content type is not one the operation takes.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// The request is well-formed but cannot be done (a converter's output, a rotation state).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Too many attempts or messages: try again after `Retry-After` seconds.
    #[response(status = 429)]
    TooMany(ErrorBody),
    /// An outside service (a secret provider) failed or refused what was asked of it.
    #[response(status = 502)]
    BadGateway(ErrorBody),
    /// Not ready (starting, stopping) or an outside service is busy: try again after `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The errors of the operations anyone may call (login, uplinks).
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum PublicErrors {
    /// The request is malformed.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// Wrong credentials, or an uplink's header security refused it.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// A login form from another site's page, or a host name the server does not serve sessions for.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No integration has the routing key.
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body is larger than the server accepts.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// The body's content type is not one the operation takes.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// The converter refused the uplink.
    #[response(status = 422)]
    Unprocessable(ErrorBody),
    /// Too many failed logins: try again after `Retry-After` seconds.
    #[response(status = 429)]
    TooMany(ErrorBody),
    /// The chain is busy or not running, or the server is not ready: try again after `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody),
}

/// The security schemes: `bearer` (`Authorization: Bearer <token>` from `/api/auth/login`) and
/// the web UI's `session` cookie, which needs the session's CSRF token in `X-CSRF-Token` on every
/// request that changes something.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from POST /api/auth/login (valid 12 hours)."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The web UI's session cookie, set by POST /api/auth/session.",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "With the session cookie, on every request that changes something: the session's CSRF token.",
            ))),
        );
    }
}

/// The document's header; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Veil",
        description = "A rule engine whose configurations take credentials from an encrypted secret store. \
                       Secret values go in, never out; `$<secret:name>` placeholders are replaced at execution time.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [], "csrf" = [])),
    components(schemas(ErrorBody, ProblemBody)),
    tags(
        (name = "auth", description = "Logging in and out; the web UI's session."),
        (name = "secrets", description = "The secret store: values in, never out."),
        (name = "rule-chains", description = "Rule chains: save, deploy, send messages, debug events."),
        (name = "integrations", description = "Integrations and their uplinks and downlinks."),
        (name = "secret-providers", description = "Where linked secrets' values live: files, exec, AWS Secrets Manager, Vault KV v2."),
        (name = "directory", description = "Tenants, customers, users, roles and tenant settings."),
        (name = "audit", description = "The audit log."),
        (name = "types", description = "Node and integration types and their fields."),
        (name = "system", description = "Health, readiness, data keys."),
    )
)]
pub(crate) struct ApiDoc;
