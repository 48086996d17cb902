//! Users, sessions and API tokens as the API sees them.

use super::auth::{self, MIN_PASSWORD_LEN};
use super::{audit, require, Services, SvcError, SvcResult};
use crate::db::{self, DbConn};
use async_trait::async_trait;
use baton_graphql::backend::*;
use baton_graphql::{ApiError, SESSION_HOURS};
use baton_schema::access::{InstanceAccess, Role};
use baton_schema::ids::{ApiTokenId, UserId};
use chrono::{DateTime, Duration, Utc};

fn user_record(r: db::users::UserRow) -> SvcResult<UserRecord> {
    Ok(UserRecord {
        id: r.id,
        role: Role::parse(&r.role)
            .map_err(|_| SvcError::Db(db::DbError::Corrupt(format!("role of user {}", r.username))))?,
        instances: InstanceAccess::parse(&r.instances)
            .map_err(|_| SvcError::Db(db::DbError::Corrupt(format!("instances of user {}", r.username))))?,
        username: r.username,
        disabled: r.disabled,
        created_at: db::utc(r.created_at),
    })
}

fn token_record(r: db::api_tokens::ApiTokenRow) -> ApiTokenRecord {
    ApiTokenRecord {
        id: r.id,
        user_id: r.user_id,
        name: r.name,
        created_at: db::utc(r.created_at),
        expires_at: r.expires_at.map(db::utc),
        revoked_at: r.revoked_at.map(db::utc),
        last_used_at: r.last_used_at.map(db::utc),
    }
}

pub fn check_username(name: &str) -> Result<(), baton_schema::FieldError> {
    let ok = !name.is_empty()
        && name.len() <= auth::MAX_USERNAME_BYTES
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(baton_schema::FieldError::new("username", "charset", "1-64 letters, digits, '_', '-', '.' or '@'"))
    }
}

pub fn check_password(password: &str) -> Result<(), baton_schema::FieldError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(baton_schema::FieldError::new(
            "password",
            "min_length",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

impl Services {
    /// A new password's hash, made off the database connection on the hasher's thread.
    async fn hash_password(&self, password: &str) -> BackendResult<String> {
        let password = password.to_string();
        self.hasher
            .run(move || auth::hash_password(&password))
            .await
            .map_err(|auth::Busy| busy())?
            .map_err(|_| ApiError::Internal)
    }
}

/// The refusal when more passwords are being checked than the hasher queues.
fn busy() -> ApiError {
    ApiError::Forbidden("too many passwords are being checked; try again in a moment".into())
}

/// Creates a user directly in storage (the CLI and first start use this; the API adds its checks).
pub fn insert_user(
    c: &mut DbConn,
    now: DateTime<Utc>,
    username: &str,
    password: &str,
    role: Role,
    instances: &InstanceAccess,
) -> SvcResult<UserId> {
    check_username(username)?;
    check_password(password)?;
    let hash = auth::hash_password(password).map_err(|_| SvcError::Api(ApiError::Internal))?;
    insert_hashed(c, now, username, &hash, role, instances)
}

/// Creates a user whose password was hashed already.
fn insert_hashed(
    c: &mut DbConn,
    now: DateTime<Utc>,
    username: &str,
    hash: &str,
    role: Role,
    instances: &InstanceAccess,
) -> SvcResult<UserId> {
    match db::users::insert(c, username, hash, role.as_str(), &instances.to_string(), now) {
        Ok(id) => Ok(id),
        Err(db::DbError::Conflict(_)) => Err(ApiError::Conflict(format!("user {username} exists")).into()),
        Err(e) => Err(e.into()),
    }
}

/// The principal a session or API token stands for, if it is live and its user is enabled.
pub fn authenticate(c: &mut DbConn, token: &str, now: DateTime<Utc>) -> SvcResult<Option<Principal>> {
    if token.len() > auth::MAX_TOKEN_BYTES {
        return Ok(None);
    }
    let hash = auth::token_hash(token);
    let row = if let Some(u) = db::sessions::live_user(c, &hash, now)? {
        u
    } else if let Some(t) = db::api_tokens::find_live(c, &hash, now)? {
        // Last use to the minute: a script calling in a loop does not write on every request.
        if t.last_used_at.is_none_or(|at| now.naive_utc() - at >= chrono::Duration::minutes(1)) {
            db::api_tokens::touch(c, t.id, now)?;
        }
        db::users::get(c, t.user_id)?
    } else {
        return Ok(None);
    };
    let u = user_record(row)?;
    if u.disabled {
        return Ok(None);
    }
    Ok(Some(Principal { user_id: u.id, username: u.username, role: u.role, instances: u.instances }))
}

/// The principal of a request's token (none, unknown or failing to look up: no one), for the
/// HTTP handlers and the GraphQL socket.
pub async fn principal_for(db: &db::Db, token: Option<String>, now: DateTime<Utc>) -> Option<Principal> {
    let token = token.filter(|t| t.len() <= auth::MAX_TOKEN_BYTES)?;
    db.run(move |c| Ok(authenticate(c, &token, now))).await.ok()?.unwrap_or_else(|e| {
        tracing::warn!(error = ?e, "authenticating a request");
        None
    })
}

/// On first start, with no user at all, creates `admin` as superadmin and returns its password.
pub fn bootstrap(c: &mut DbConn, now: DateTime<Utc>) -> SvcResult<Option<String>> {
    if db::users::count(c)? > 0 {
        return Ok(None);
    }
    let password = auth::new_password().map_err(|_| SvcError::Api(ApiError::Internal))?;
    insert_user(c, now, "admin", &password, Role::Superadmin, &InstanceAccess::All)?;
    audit(c, now, "baton", "bootstrapSuperadmin", "admin", None, None)?;
    Ok(Some(password))
}

impl Services {}

#[async_trait]
impl baton_graphql::Auth for Services {
    async fn login(&self, client: &ClientInfo, username: &str, password: &str) -> BackendResult<(String, UserRecord)> {
        let now = self.now();
        // Refused before anything is looked up, hashed or counted: a limiter key is never longer
        // than an address and a user name.
        check_username(username)?;
        if password.len() > auth::MAX_PASSWORD_BYTES {
            let rule = format!("at most {} bytes", auth::MAX_PASSWORD_BYTES);
            return Err(ApiError::invalid("password", "length", rule));
        }
        let keys = auth::LoginLimiter::keys(&client.ip, username);
        let reserved = self.limiter.lock().map_err(|_| ApiError::Internal)?.reserve(&keys, now);
        if let Err(wait) = reserved {
            let who = if wait.address { "from this address" } else { "for this user from this address" };
            if wait.first {
                let (actor, target) = (client.ip.clone(), username.to_string());
                let detail = format!("{{\"waitSeconds\":{},\"address\":{}}}", wait.seconds, wait.address);
                let recorded =
                    self.run(move |c| audit(c, now, &actor, "loginSlowed", &target, None, Some(detail))).await;
                if let Err(e) = recorded {
                    tracing::warn!(error = ?e, "recording a slowed login");
                }
            }
            return Err(ApiError::Forbidden(format!("too many failed logins {who}; try again in {} s", wait.seconds)));
        }
        // The user is read, then the connection given back before the (slow) hash is checked;
        // unknown and disabled users are checked against a decoy hash, at the same cost.
        let name = username.to_string();
        let row = self.run(move |c| Ok(db::users::by_username(c, &name)?)).await?;
        let hash = row.as_ref().filter(|r| !r.disabled).map(|r| r.password_hash.clone());
        let password = password.to_string();
        let checked = match hash {
            Some(hash) => self.hasher.verify(password, Some(hash)).await,
            None => self.hasher.decoy(password).await.map(|()| false),
        };
        let matches = match checked {
            Ok(m) => m,
            Err(auth::Busy) => {
                // Not checked: nothing is counted against this address and name.
                self.limiter.lock().map_err(|_| ApiError::Internal)?.release(&keys);
                return Err(busy());
            }
        };
        let Some(row) = row.filter(|_| matches) else {
            return Err(ApiError::Unauthenticated);
        };
        let session = self
            .run(move |c| {
                let token = auth::new_token("bs_").map_err(|_| SvcError::Api(ApiError::Internal))?;
                db::sessions::insert(c, row.id, &auth::token_hash(&token), now + Duration::hours(SESSION_HOURS), now)?;
                audit(c, now, &row.username, "login", &row.username, None, None)?;
                Ok((token, user_record(row)?))
            })
            .await?;
        self.limiter.lock().map_err(|_| ApiError::Internal)?.succeeded(&keys);
        Ok(session)
    }

    async fn logout(&self, client: &ClientInfo) -> BackendResult<bool> {
        let Some(token) = client.session_token.clone() else { return Ok(false) };
        self.run(move |c| Ok(db::sessions::delete_by_hash(c, &auth::token_hash(&token))? > 0)).await
    }

    async fn users(&self) -> BackendResult<Vec<UserRecord>> {
        self.run(|c| db::users::list(c)?.into_iter().map(user_record).collect()).await
    }

    async fn create_user(
        &self,
        actor: &Principal,
        username: &str,
        password: &str,
        role: Role,
        instances: InstanceAccess,
    ) -> BackendResult<UserRecord> {
        let now = self.now();
        if !actor.role.may_grant(role) {
            return Err(ApiError::Forbidden(format!("a {} cannot grant the {role} role", actor.role)));
        }
        if !actor.instances.covers(&instances) {
            return Err(ApiError::Forbidden(format!(
                "you may grant only your own instances ({}), not {instances}",
                actor.instances
            )));
        }
        check_username(username)?;
        check_password(password)?;
        let hash = self.hash_password(password).await?;
        let (actor, username) = (actor.clone(), username.to_string());
        self.run(move |c| {
            db::transaction(c, |c| {
                let id = insert_hashed(c, now, &username, &hash, role, &instances)?;
                let after = format!("{{\"username\":{username:?},\"role\":\"{role}\",\"instances\":\"{instances}\"}}");
                audit(c, now, &actor.username, "createUser", &username, None, Some(after))?;
                user_record(db::users::get(c, id)?)
            })
        })
        .await
    }

    async fn update_user(
        &self,
        actor: &Principal,
        id: UserId,
        role: Option<Role>,
        instances: Option<InstanceAccess>,
        disabled: Option<bool>,
    ) -> BackendResult<UserRecord> {
        let now = self.now();
        let actor = actor.clone();
        self.run(move |c| {
            db::transaction(c, |c| {
                let before = user_record(db::users::get(c, id)?)?;
                // Only a superadmin touches an admin or a superadmin, or grants those roles.
                if !actor.role.may_grant(before.role) || role.is_some_and(|r| !actor.role.may_grant(r)) {
                    return Err(ApiError::Forbidden(format!("a {} cannot change this user's role", actor.role)).into());
                }
                // Only users whose instances are all the actor's, given only the actor's instances.
                if !actor.instances.covers(&before.instances)
                    || instances.as_ref().is_some_and(|i| !actor.instances.covers(i))
                {
                    return Err(ApiError::Forbidden(format!(
                        "you may grant and change only your own instances ({})",
                        actor.instances
                    ))
                    .into());
                }
                if id == actor.user_id && (disabled == Some(true) || role.is_some_and(|r| r < actor.role)) {
                    return Err(ApiError::Forbidden("you cannot disable or demote yourself".into()).into());
                }
                let new_role = role.unwrap_or(before.role);
                let new_instances = instances.clone().unwrap_or_else(|| before.instances.clone());
                let new_disabled = disabled.unwrap_or(before.disabled);
                db::users::update_access(c, id, new_role.as_str(), &new_instances.to_string(), new_disabled, now)?;
                let changed =
                    new_role != before.role || new_instances != before.instances || new_disabled != before.disabled;
                if changed {
                    // A new role, new instances or a disable take effect at once: sessions end.
                    db::sessions::delete_for_user(c, id)?;
                }
                let b = format!(
                    "{{\"role\":\"{}\",\"instances\":\"{}\",\"disabled\":{}}}",
                    before.role, before.instances, before.disabled
                );
                let a = format!(
                    "{{\"role\":\"{new_role}\",\"instances\":\"{new_instances}\",\"disabled\":{new_disabled}}}"
                );
                audit(c, now, &actor.username, "updateUser", &before.username, Some(b), Some(a))?;
                user_record(db::users::get(c, id)?)
            })
        })
        .await
    }

    /// Sets a user's password. One's own needs the current one; an admin's reset of another's
    /// ends that user's sessions (their sockets close) and revokes their API tokens.
    async fn set_password(
        &self,
        actor: &Principal,
        id: UserId,
        password: &str,
        current: Option<&str>,
    ) -> BackendResult<bool> {
        let now = self.now();
        check_password(password)?;
        let own = id == actor.user_id;
        let (stored, target) = self
            .run(move |c| {
                let row = db::users::get(c, id)?;
                let hash = row.password_hash.clone();
                Ok((hash, user_record(row)?))
            })
            .await?;
        if !own && !actor.role.may_grant(target.role) {
            return Err(ApiError::Forbidden(format!("a {} cannot change this user's password", actor.role)));
        }
        if !own && !actor.instances.covers(&target.instances) {
            return Err(ApiError::Forbidden(format!(
                "you may reset only the passwords of users of your own instances ({})",
                actor.instances
            )));
        }
        if own {
            let Some(current) = current.map(str::to_string) else {
                return Err(ApiError::invalid(
                    "currentPassword",
                    "required",
                    "give your current password to change it",
                ));
            };
            let ok =
                self.hasher.run(move || auth::verify_password(&current, &stored)).await.map_err(|auth::Busy| busy())?;
            if !ok {
                return Err(ApiError::invalid("currentPassword", "mismatch", "is not your current password"));
            }
        }
        let hash = self.hash_password(password).await?;
        let actor = actor.clone();
        self.run(move |c| {
            db::transaction(c, |c| {
                db::users::set_password(c, id, &hash, now)?;
                db::sessions::delete_for_user(c, id)?;
                if !own {
                    db::api_tokens::revoke_for_user(c, id, now)?;
                }
                audit(
                    c,
                    now,
                    &actor.username,
                    if own { "setPassword" } else { "resetPassword" },
                    &target.username,
                    None,
                    None,
                )?;
                Ok(true)
            })
        })
        .await
    }

    async fn api_tokens(&self, user_id: Option<UserId>) -> BackendResult<Vec<ApiTokenRecord>> {
        self.run(move |c| Ok(db::api_tokens::list(c, user_id)?.into_iter().map(token_record).collect())).await
    }

    async fn create_api_token(
        &self,
        actor: &Principal,
        name: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> BackendResult<(String, ApiTokenRecord)> {
        let now = self.now();
        let (actor, name) = (actor.clone(), name.trim().to_string());
        if name.is_empty() || name.len() > 128 {
            return Err(ApiError::invalid("name", "length", "must be 1-128 characters"));
        }
        if expires_at.is_some_and(|e| e <= now) {
            return Err(ApiError::invalid("expiresAt", "future", "must be in the future"));
        }
        self.run(move |c| {
            let token = auth::new_token("bt_").map_err(|_| SvcError::Api(ApiError::Internal))?;
            db::transaction(c, |c| {
                let id =
                    match db::api_tokens::insert(c, actor.user_id, &name, &auth::token_hash(&token), expires_at, now) {
                        Err(db::DbError::Conflict(_)) => {
                            return Err(ApiError::Conflict(format!("you already have a token named {name}")).into())
                        }
                        other => other?,
                    };
                audit(c, now, &actor.username, "createApiToken", &name, None, None)?;
                let row = db::api_tokens::list(c, Some(actor.user_id))?
                    .into_iter()
                    .find(|t| t.id == id)
                    .ok_or(db::DbError::NotFound)?;
                Ok((token, token_record(row)))
            })
        })
        .await
    }

    async fn revoke_api_token(&self, actor: &Principal, id: ApiTokenId) -> BackendResult<bool> {
        let now = self.now();
        let actor = actor.clone();
        self.run(move |c| {
            let row = db::api_tokens::list(c, None)?
                .into_iter()
                .find(|t| t.id == id)
                .ok_or(ApiError::NotFound("token".into()))?;
            if row.user_id != actor.user_id {
                require(&actor, Role::Admin)?;
                // Only a user the admin sees (every instance of theirs the admin's).
                let owner = user_record(db::users::get(c, row.user_id)?)?;
                if !actor.instances.covers(&owner.instances) {
                    return Err(ApiError::NotFound("token".into()).into());
                }
            }
            db::transaction(c, |c| {
                db::api_tokens::revoke(c, id, now)?;
                audit(c, now, &actor.username, "revokeApiToken", &row.name, None, None)?;
                Ok(true)
            })
        })
        .await
    }
}
