//! Bearer tokens and roles: who may call what.
//!
//! Four roles: `read` (every GET under /v1 but the worker protocol), `enqueue` (read and
//! enqueue), `worker` (read and the remote-worker protocol) and `admin` (everything). With no
//! token configured nobody is asked for one and every caller acts as `admin`; the binary then
//! listens on loopback only. 401 = no or unknown token, 403 = the token's role may not.

use crate::error::ApiError;
use crate::routes::Access;
use crate::AppState;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Read,
    Enqueue,
    Worker,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Read, Role::Enqueue, Role::Worker, Role::Admin];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Enqueue => "enqueue",
            Role::Worker => "worker",
            Role::Admin => "admin",
        }
    }

    /// True when this role may call an endpoint that requires `access`.
    pub const fn may(self, access: Access) -> bool {
        matches!(
            (self, access),
            (_, Access::Public | Access::Read)
                | (Role::Admin, _)
                | (Role::Enqueue, Access::Enqueue)
                | (Role::Worker, Access::Worker)
        )
    }

    /// True when responses may show argument values under secret-looking keys: only to
    /// `admin` (and to callers of an API without tokens, who act as admin).
    pub const fn sees_secrets(self) -> bool {
        matches!(self, Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role word that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (expected one of: read, enqueue, worker, admin)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// One accepted bearer token.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// A label for logs (never the token itself).
    pub name: String,
    pub token: String,
    pub role: Role,
}

impl fmt::Debug for ApiToken {
    // Not derived: the token is a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Who is calling, as the handlers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// False when the API has no tokens at all.
    pub authenticated: bool,
}

/// Compares without stopping at the first differing byte, so response time says nothing
/// about how much of a guessed token was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Finds the caller of a request from its `Authorization` header.
pub(crate) fn identify(state: &AppState, header: Option<&str>) -> Result<Caller, ApiError> {
    let tokens = &state.config.tokens;
    if tokens.is_empty() {
        return Ok(Caller {
            role: Role::Admin,
            authenticated: false,
        });
    }
    let Some(header) = header else {
        return Err(ApiError::unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>`",
        ));
    };
    let Some(given) = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
    else {
        return Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    };
    let given = given.trim().as_bytes();
    let mut found = None;
    for t in tokens {
        if same_secret(t.token.as_bytes(), given) && found.is_none() {
            found = Some(t.role);
        }
    }
    match found {
        Some(role) => Ok(Caller {
            role,
            authenticated: true,
        }),
        None => Err(ApiError::unauthorized("unknown bearer token")),
    }
}

/// The middleware in front of every route: identifies the caller, checks the route's
/// [`Access`] and hands the [`Caller`] to the handler as a request extension.
pub(crate) async fn require(
    State((state, access)): State<(AppState, Access)>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if access == Access::Public {
        request.extensions_mut().insert(Caller {
            role: Role::Read,
            authenticated: false,
        });
        return Ok(next.run(request).await);
    }
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = identify(&state, header)?;
    if !caller.role.may(access) {
        return Err(ApiError::forbidden(format!(
            "the `{}` role may not call this endpoint (it needs {})",
            caller.role,
            access.describe()
        )));
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_matrix() {
        use Access::*;
        let table = [
            (Role::Read, [true, true, false, false, false]),
            (Role::Enqueue, [true, true, true, false, false]),
            (Role::Worker, [true, true, false, true, false]),
            (Role::Admin, [true, true, true, true, true]),
        ];
        for (role, allowed) in table {
            for (access, want) in [Public, Read, Enqueue, Worker, Admin]
                .into_iter()
                .zip(allowed)
            {
                assert_eq!(role.may(access), want, "{role} on {access:?}");
            }
        }
        assert!("admin".parse::<Role>().is_ok());
        assert!("root"
            .parse::<Role>()
            .unwrap_err()
            .to_string()
            .contains("`root`"));
    }

    #[test]
    fn token_debug_hides_the_secret() {
        let t = ApiToken {
            name: "ci".into(),
            token: "s3cret-value".into(),
            role: Role::Admin,
        };
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
    }
}
