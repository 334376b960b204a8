//! `POST /api/v1/login`, `POST /api/v1/logout` and `GET /api/v1/session`: logging in to
//! the API (and the console) with the config's `users:`.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ApiError;
use crate::config::users::Role;
use crate::web::auth::{csrf_ok, Caller, LoginError};
use crate::web::Web;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub user: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionInfo {
    pub user: String,
    /// viewer, operator or admin.
    pub role: &'static str,
    /// Send it back in the `X-CSRF-Token` header of every POST; null for the anonymous
    /// reader of a gateway without users.
    pub csrf_token: Option<String>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

fn info(caller: Caller) -> SessionInfo {
    SessionInfo {
        user: caller.user,
        role: role_name(caller.role),
        csrf_token: caller.csrf,
    }
}

impl FromRequestParts<Web> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Caller, ApiError> {
        web.auth.caller(&parts.headers).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "log in first: POST /api/v1/login",
            )
        })
    }
}

/// A logged-in caller whose request carries the session's CSRF token: what every POST
/// but the login needs.
pub struct Session(pub Caller);

impl FromRequestParts<Web> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Session, ApiError> {
        let caller = Caller::from_request_parts(parts, web).await?;
        if caller.csrf.is_none() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this gateway has no users: the API is read-only until `users:` are configured",
            ));
        }
        if !csrf_ok(&caller, &parts.headers) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token header (GET /api/v1/session gives the token)",
            ));
        }
        Ok(Session(caller))
    }
}

/// A [`Session`] of an operator or admin: who may write and acknowledge.
pub struct Operator(pub Caller);

impl FromRequestParts<Web> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Operator, ApiError> {
        let caller = at_least(
            parts,
            web,
            Role::Operator,
            "writing and acknowledging need an operator",
        )
        .await?;
        Ok(Operator(caller))
    }
}

/// A [`Session`] of an admin: who may reload the gateway's config.
pub struct Admin(pub Caller);

impl FromRequestParts<Web> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Admin, ApiError> {
        let caller = at_least(
            parts,
            web,
            Role::Admin,
            "reloading the config needs an admin",
        )
        .await?;
        Ok(Admin(caller))
    }
}

/// The caller of a [`Session`] whose role is `role` or above; `needs` says why not.
async fn at_least(
    parts: &mut Parts,
    web: &Web,
    role: Role,
    needs: &str,
) -> Result<Caller, ApiError> {
    let Session(caller) = Session::from_request_parts(parts, web).await?;
    if caller.role < role {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "user `{}` is a {}: {needs}",
                caller.user,
                role_name(caller.role)
            ),
        ));
    }
    Ok(caller)
}

/// Logs in and sets the session cookie.
#[utoipa::path(post, path = "/api/v1/login", tag = "session", request_body = Login,
    security(()),
    responses(
        (status = 200, body = SessionInfo, description = "Logged in; the session cookie is set"),
        (status = 400, body = ApiError, description = "A malformed body, or no users configured"),
        (status = 401, body = ApiError, description = "Unknown user or wrong password"),
        (status = 429, body = ApiError, description = "Too many failed logins for this user from this address"),
        (status = 503, body = ApiError, description = "Too many logins at once"),
        (status = 413, body = ApiError, description = "A body over 64 KiB"),
        (status = 415, body = ApiError, description = "A body that is not application/json"),
    ))]
pub(crate) async fn login(
    State(web): State<Web>,
    ConnectInfo(from): ConnectInfo<SocketAddr>,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(login) = body?;
    if !web.auth.required() {
        return Err(ApiError::bad_request(
            "this gateway has no users to log in as; the API is open for reading",
        ));
    }
    match web
        .auth
        .login(&login.user, &login.password, from.ip())
        .await
    {
        Ok((id, caller)) => {
            let cookie = web.auth.cookie(Some(&id));
            let mut response = Json(info(caller)).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(response)
        }
        Err(LoginError::Refused) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "login_failed",
            "unknown user or wrong password",
        )),
        Err(LoginError::TooMany(wait)) => {
            let secs = wait.as_secs().max(1);
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                format!("too many failed logins; try again in {secs} s"),
            )
            .retry_after(secs))
        }
        Err(LoginError::Busy) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many logins at once; try again",
        )
        .retry_after(1)),
    }
}

/// Ends the session and clears its cookie.
#[utoipa::path(post, path = "/api/v1/logout", tag = "session",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, body = ApiError, description = "Not logged in"),
        (status = 403, body = ApiError, description = "No or a wrong CSRF token"),
    ))]
pub(crate) async fn logout(
    State(web): State<Web>,
    _session: Session,
    headers: HeaderMap,
) -> Response {
    web.auth.logout(&headers);
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, web.auth.cookie(None))],
    )
        .into_response()
}

/// Who is logged in, and the CSRF token to send with POSTs.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses(
        (status = 200, body = SessionInfo, description = "OK"),
        (status = 401, body = ApiError, description = "Not logged in"),
    ))]
pub(crate) async fn session(caller: Caller) -> Json<SessionInfo> {
    Json(info(caller))
}
