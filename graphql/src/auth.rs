//! Sessions, users and API tokens.

use crate::backend::*;
use crate::backend::{ApiTokenRecord, ClientInfo, UserRecord};
use crate::definitions::{domain, require};
use crate::error::{ApiError, ApiResult};
use crate::guard::{principal, RoleGuard};
use async_graphql::{Context, Object, SimpleObject};
use baton_schema::access::{InstanceAccess, Role};
use baton_schema::ids::{ApiTokenId, UserId};
use chrono::{DateTime, Utc};

/// Sessions, users and API tokens.
#[async_trait::async_trait]
pub trait Auth: Send + Sync {
    async fn login(&self, client: &ClientInfo, username: &str, password: &str) -> BackendResult<(String, UserRecord)>;
    async fn logout(&self, client: &ClientInfo) -> BackendResult<bool>;
    async fn users(&self) -> BackendResult<Vec<UserRecord>>;
    async fn create_user(
        &self,
        actor: &Principal,
        username: &str,
        password: &str,
        role: Role,
        instances: InstanceAccess,
    ) -> BackendResult<UserRecord>;
    async fn update_user(
        &self,
        actor: &Principal,
        id: UserId,
        role: Option<Role>,
        instances: Option<InstanceAccess>,
        disabled: Option<bool>,
    ) -> BackendResult<UserRecord>;
    /// `current`: the actor's current password, required to change their own.
    async fn set_password(
        &self,
        actor: &Principal,
        id: UserId,
        password: &str,
        current: Option<&str>,
    ) -> BackendResult<bool>;
    async fn api_tokens(&self, user_id: Option<UserId>) -> BackendResult<Vec<ApiTokenRecord>>;
    async fn create_api_token(
        &self,
        actor: &Principal,
        name: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> BackendResult<(String, ApiTokenRecord)>;
    async fn revoke_api_token(&self, actor: &Principal, id: ApiTokenId) -> BackendResult<bool>;
}

/// The session cookie the browser keeps (HTTP-only); clients use the same token as a bearer token.
pub const SESSION_COOKIE: &str = "baton_session";
/// How long a session lasts.
pub const SESSION_HOURS: i64 = 12;

#[derive(SimpleObject)]
pub struct User {
    pub id: UserId,
    pub username: String,
    /// viewer, user, operator, admin or superadmin
    pub role: String,
    /// `*` or a comma-separated list of instance names.
    pub instances: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<UserRecord> for User {
    fn from(u: UserRecord) -> Self {
        User {
            id: u.id,
            username: u.username,
            role: u.role.to_string(),
            instances: u.instances.to_string(),
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct LoginPayload {
    /// A bearer token for `Authorization: Bearer ...`; browsers get it as an HTTP-only cookie too.
    pub token: String,
    pub user: User,
}

#[derive(SimpleObject)]
pub struct CreatedApiToken {
    /// Shown once: only its hash is stored.
    pub token: String,
    pub info: ApiTokenRecord,
}

fn client(ctx: &Context<'_>) -> ClientInfo {
    ctx.data_opt::<ClientInfo>().cloned().unwrap_or_default()
}

/// Whether an admin sees a user: themselves, or one whose instances they have all of.
fn sees(p: &Principal, u: &UserRecord) -> bool {
    u.id == p.user_id || p.instances.covers(&u.instances)
}

#[derive(Default)]
pub struct AuthQuery;

#[Object]
impl AuthQuery {
    /// The caller.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<User> {
        let p = principal(ctx)?;
        let users = domain::<dyn Auth>(ctx).users().await?;
        users.into_iter().find(|u| u.id == p.user_id).map(User::from).ok_or_else(|| ApiError::Unauthenticated.into())
    }

    /// The users whose instances the caller has all of (and the caller).
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn users(&self, ctx: &Context<'_>) -> ApiResult<Vec<User>> {
        let p = principal(ctx)?;
        let users = domain::<dyn Auth>(ctx).users().await?;
        Ok(users.into_iter().filter(|u| sees(p, u)).map(User::from).collect())
    }

    /// The caller's tokens; admins may ask for those of the users they see (or all of theirs,
    /// without `userId`).
    async fn api_tokens(&self, ctx: &Context<'_>, user_id: Option<UserId>) -> ApiResult<Vec<ApiTokenRecord>> {
        let p = principal(ctx)?;
        let whose = match user_id {
            Some(u) if u == p.user_id => Some(u),
            Some(u) => {
                require(p, Role::Admin)?;
                Some(u)
            }
            None if p.role >= Role::Admin => None,
            None => Some(p.user_id),
        };
        let tokens = domain::<dyn Auth>(ctx).api_tokens(whose).await?;
        if whose == Some(p.user_id) {
            return Ok(tokens);
        }
        let seen: Vec<UserId> =
            domain::<dyn Auth>(ctx).users().await?.iter().filter(|u| sees(p, u)).map(|u| u.id).collect();
        Ok(tokens.into_iter().filter(|t| seen.contains(&t.user_id)).collect())
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Starts a session. Failed attempts are rate-limited per user name and per address.
    async fn login(&self, ctx: &Context<'_>, username: String, password: String) -> ApiResult<LoginPayload> {
        let client = client(ctx);
        let (token, user) = domain::<dyn Auth>(ctx).login(&client, &username, &password).await?;
        let secure = if client.https { "; Secure" } else { "" };
        ctx.append_http_header(
            "Set-Cookie",
            format!(
                "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
                SESSION_HOURS * 3600
            ),
        );
        Ok(LoginPayload { token, user: user.into() })
    }

    /// Ends the session the request carries.
    async fn logout(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        principal(ctx)?;
        let client = client(ctx);
        let ended = domain::<dyn Auth>(ctx).logout(&client).await?;
        let secure = if client.https { "; Secure" } else { "" };
        ctx.append_http_header(
            "Set-Cookie",
            format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
        );
        Ok(ended)
    }

    /// Admins create users up to operator; superadmins any role.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        username: String,
        password: String,
        role: String,
        #[graphql(default_with = "\"*\".to_string()")] instances: String,
    ) -> ApiResult<User> {
        let role = Role::parse(&role).map_err(ApiError::from)?;
        let instances = InstanceAccess::parse(&instances).map_err(ApiError::from)?;
        Ok(domain::<dyn Auth>(ctx).create_user(principal(ctx)?, &username, &password, role, instances).await?.into())
    }

    /// Changes a user's role, instances or disabled flag; any of these ends the user's sessions.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: UserId,
        role: Option<String>,
        instances: Option<String>,
        disabled: Option<bool>,
    ) -> ApiResult<User> {
        let role = role.map(|r| Role::parse(&r)).transpose().map_err(ApiError::from)?;
        let instances = instances.map(|i| InstanceAccess::parse(&i)).transpose().map_err(ApiError::from)?;
        Ok(domain::<dyn Auth>(ctx).update_user(principal(ctx)?, id, role, instances, disabled).await?.into())
    }

    /// Users change their own password (giving the current one); admins reset others', which
    /// ends their sessions and revokes their API tokens.
    async fn set_password(
        &self,
        ctx: &Context<'_>,
        id: UserId,
        password: String,
        current_password: Option<String>,
    ) -> ApiResult<bool> {
        let p = principal(ctx)?;
        if id != p.user_id {
            require(p, Role::Admin)?;
        }
        Ok(domain::<dyn Auth>(ctx).set_password(p, id, &password, current_password.as_deref()).await?)
    }

    /// A named token for automation, acting as the caller.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        expires_at: Option<DateTime<Utc>>,
    ) -> ApiResult<CreatedApiToken> {
        let (token, info) = domain::<dyn Auth>(ctx).create_api_token(principal(ctx)?, &name, expires_at).await?;
        Ok(CreatedApiToken { token, info })
    }

    /// Revokes one of the caller's tokens (admins: anyone's).
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ApiTokenId) -> ApiResult<bool> {
        Ok(domain::<dyn Auth>(ctx).revoke_api_token(principal(ctx)?, id).await?)
    }
}
