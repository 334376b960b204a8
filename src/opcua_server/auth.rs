//! Who may log in, and who may write.
//!
//! Users log in with a password only over encrypted endpoints, so a password never
//! crosses the network in clear; the None endpoint takes anonymous sessions only. A viewer
//! (see `config::users`) sees every variable's UserAccessLevel without CurrentWrite, and
//! the node manager refuses their writes with BadUserAccessDenied.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use opcua::crypto::SecurityPolicy;
use opcua::server::address_space::AccessLevel;
use opcua::server::authenticator::{
    user_pass_security_policy_id, AuthManager, CoreServerPermissions, Password as ClientPassword,
    UserToken,
};
use opcua::server::ServerEndpoint;
use opcua::types::{Error, NodeId, StatusCode, UAString, UserTokenPolicy, UserTokenType};
use tracing::{info, warn};

use crate::config::opcua::{Access, OpcUaSettings};
use crate::config::users::Password;

/// Prefix of the session tokens of configured users, so that no user name can pass for the
/// anonymous token.
const USER_PREFIX: &str = "user:";

pub struct Authenticator {
    anonymous: Access,
    users: HashMap<String, (Arc<Password>, bool)>,
}

impl Authenticator {
    pub fn new(settings: &OpcUaSettings) -> Authenticator {
        Authenticator {
            anonymous: settings.anonymous,
            users: settings
                .users
                .iter()
                .map(|u| {
                    (
                        u.name.clone(),
                        (Arc::new(u.password.clone()), u.can_write()),
                    )
                })
                .collect(),
        }
    }

    /// Whether the session's user may write to writable tags.
    /// The user a token stands for, as logs and ClientUserId name them.
    pub fn user_name(token: &UserToken) -> String {
        if token.is_anonymous() {
            return "anonymous".to_string();
        }
        token
            .0
            .strip_prefix(USER_PREFIX)
            .unwrap_or(&token.0)
            .to_string()
    }

    pub fn may_write(&self, token: &UserToken) -> bool {
        if token.is_anonymous() {
            return self.anonymous == Access::Write;
        }
        token
            .0
            .strip_prefix(USER_PREFIX)
            .and_then(|name| self.users.get(name))
            .is_some_and(|(_, write)| *write)
    }
}

fn refused(message: &str) -> Error {
    Error::new(StatusCode::BadIdentityTokenRejected, message.to_string())
}

#[async_trait]
impl AuthManager for Authenticator {
    async fn authenticate_anonymous_token(&self, endpoint: &ServerEndpoint) -> Result<(), Error> {
        if self.anonymous == Access::Off {
            info!(endpoint = %endpoint.security_policy, "anonymous login refused: anonymous access is off");
            return Err(refused("anonymous access is off"));
        }
        Ok(())
    }

    async fn authenticate_username_identity_token(
        &self,
        endpoint: &ServerEndpoint,
        username: &str,
        password: &ClientPassword,
    ) -> Result<UserToken, Error> {
        if endpoint.security_policy() == SecurityPolicy::None {
            warn!(user = %username, "password login refused on the unencrypted endpoint");
            return Err(refused(
                "passwords are accepted on encrypted endpoints only",
            ));
        }
        let Some((stored, _)) = self.users.get(username) else {
            warn!(user = %username, "login refused: unknown user");
            return Err(refused("unknown user or wrong password"));
        };
        let stored = stored.clone();
        let given = password.get().to_string();
        // argon2 is deliberately slow: keep it off the threads serving other sessions.
        let ok = tokio::task::spawn_blocking(move || stored.verify(&given))
            .await
            .unwrap_or(false);
        if !ok {
            warn!(user = %username, "login refused: wrong password");
            return Err(refused("unknown user or wrong password"));
        }
        info!(user = %username, "user logged in");
        Ok(UserToken(format!("{USER_PREFIX}{username}")))
    }

    fn effective_user_access_level(
        &self,
        token: &UserToken,
        user_access_level: AccessLevel,
        _node_id: &NodeId,
    ) -> AccessLevel {
        if self.may_write(token) {
            user_access_level
        } else {
            user_access_level - AccessLevel::CURRENT_WRITE
        }
    }

    /// Server diagnostics (session and subscription counts under `Server/ServerDiagnostics`)
    /// for everyone who may log in: what SCADA status pages and clients checking their own
    /// footprint read.
    fn core_permissions(&self, _token: &UserToken) -> CoreServerPermissions {
        CoreServerPermissions {
            read_diagnostics: true,
        }
    }

    fn user_token_policies(&self, endpoint: &ServerEndpoint) -> Vec<UserTokenPolicy> {
        let mut policies = Vec::with_capacity(2);
        if self.anonymous != Access::Off {
            policies.push(UserTokenPolicy {
                // The server matches anonymous tokens against this id.
                policy_id: UAString::from("anonymous"),
                token_type: UserTokenType::Anonymous,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            });
        }
        if !self.users.is_empty() && endpoint.security_policy() != SecurityPolicy::None {
            policies.push(UserTokenPolicy {
                policy_id: user_pass_security_policy_id(endpoint),
                token_type: UserTokenType::UserName,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            });
        }
        policies
    }
}
