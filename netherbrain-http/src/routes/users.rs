//! `/api/users/*`: user administration (admins only).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use netherbrain_core::UserId;
use netherbrain_core::store::{NewUser, User, UserPatch, UserRole};

use crate::auth::{AdminUser, password};
use crate::dto::{CreateUserRequest, ResetPasswordRequest, UpdateUserRequest, UserList, UserView};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users/create", post(create))
        .route("/api/users/list", get(list))
        .route("/api/users/{id}", get(get_user))
        .route("/api/users/{id}/update", post(update))
        .route("/api/users/{id}/deactivate", post(deactivate))
        .route("/api/users/{id}/activate", post(activate))
        .route("/api/users/{id}/reset-password", post(reset_password))
}

/// `409` if `target` is the last active admin (so a change that would take
/// its admin rights away would lock everyone out).
async fn ensure_not_last_admin(state: &AppState, target: &User) -> Result<(), ApiError> {
    if target.role != UserRole::Admin || !target.active {
        return Ok(());
    }
    let others = state
        .store()
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.id != target.id && u.active && u.role == UserRole::Admin)
        .count();
    if others == 0 {
        return Err(ApiError::conflict("cannot remove the last active admin"));
    }
    Ok(())
}

/// Creates a user. A password given here is temporary
/// (`must_change_password`): the user must choose a new one with
/// `POST /api/auth/password` before their login token does anything else.
#[utoipa::path(
    post,
    path = "/api/users/create",
    tag = "users",
    request_body = CreateUserRequest,
    responses(
        (status = 200, description = "Created", body = UserView),
        (status = 403, description = "Not an admin", body = crate::dto::ErrorBody),
        (status = 409, description = "Username taken", body = crate::dto::ErrorBody),
        (status = 422, description = "Bad username or password too short", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(req): Json<CreateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    netherbrain_core::store::validate::username(&req.username)?;
    let mut new = NewUser::new(req.username, req.role.into());
    new.display_name = req.display_name;
    if let Some(pw) = req.password {
        password::check_policy(&pw)?;
        new.password_hash = Some(password::hash(state.config().password_hash, pw).await?);
        // Chosen by the admin, so known to two people: the user picks a
        // new one at first login.
        new.must_change_password = true;
    }
    let user = state.store().create_user(new).await?;
    Ok(Json(user.into()))
}

/// Lists users by username.
#[utoipa::path(
    get,
    path = "/api/users/list",
    tag = "users",
    responses(
        (status = 200, description = "Users", body = UserList),
        (status = 403, description = "Not an admin", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
) -> Result<Json<UserList>, ApiError> {
    let users = state.store().list_users().await?;
    Ok(Json(UserList {
        items: users.into_iter().map(Into::into).collect(),
    }))
}

/// Gets a user.
#[utoipa::path(
    get,
    path = "/api/users/{id}",
    tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "No such user", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn get_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<UserId>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(state.store().get_user(id).await?.into()))
}

/// Changes display name and/or role. Demoting the last active admin is
/// `409`.
#[utoipa::path(
    post,
    path = "/api/users/{id}/update",
    tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, description = "Changed", body = UserView),
        (status = 404, description = "No such user", body = crate::dto::ErrorBody),
        (status = 409, description = "Would demote the last admin", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<UserId>,
    Json(req): Json<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    let current = state.store().get_user(id).await?;
    let role: Option<UserRole> = req.role.map(Into::into);
    if role.is_some_and(|r| r != UserRole::Admin) {
        ensure_not_last_admin(&state, &current).await?;
    }
    let mut patch = UserPatch::default();
    patch.display_name = req.display_name;
    patch.role = role;
    Ok(Json(state.store().update_user(id, patch).await?.into()))
}

/// Deactivates a user: their keys stop working at once. Deactivating
/// yourself or the last active admin is `409`.
#[utoipa::path(
    post,
    path = "/api/users/{id}/deactivate",
    tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "Deactivated", body = UserView),
        (status = 404, description = "No such user", body = crate::dto::ErrorBody),
        (status = 409, description = "Yourself or the last admin", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn deactivate(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<UserId>,
) -> Result<Json<UserView>, ApiError> {
    if id == admin.id() {
        return Err(ApiError::conflict("cannot deactivate your own account"));
    }
    let current = state.store().get_user(id).await?;
    ensure_not_last_admin(&state, &current).await?;
    let mut patch = UserPatch::default();
    patch.active = Some(false);
    Ok(Json(state.store().update_user(id, patch).await?.into()))
}

/// Reactivates a user.
#[utoipa::path(
    post,
    path = "/api/users/{id}/activate",
    tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "Active", body = UserView),
        (status = 404, description = "No such user", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn activate(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<UserId>,
) -> Result<Json<UserView>, ApiError> {
    let mut patch = UserPatch::default();
    patch.active = Some(true);
    Ok(Json(state.store().update_user(id, patch).await?.into()))
}

/// Sets a temporary password for a user (`must_change_password`: the user
/// must choose a new one at next login) and revokes the user's login tokens
/// (API keys named `login`; other keys stay).
#[utoipa::path(
    post,
    path = "/api/users/{id}/reset-password",
    tag = "users",
    params(("id" = Uuid, Path, description = "User id")),
    request_body = ResetPasswordRequest,
    responses(
        (status = 200, description = "Changed", body = UserView),
        (status = 404, description = "No such user", body = crate::dto::ErrorBody),
        (status = 422, description = "Password too short", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<UserId>,
    Json(req): Json<ResetPasswordRequest>,
) -> Result<Json<UserView>, ApiError> {
    password::check_policy(&req.password)?;
    state.store().get_user(id).await?;
    let mut patch = UserPatch::default();
    patch.password_hash = Some(password::hash(state.config().password_hash, req.password).await?);
    patch.must_change_password = Some(true);
    let user = state.store().update_user(id, patch).await?;
    netherbrain_core::auth::revoke_login_keys(state.store().as_ref(), id, None).await?;
    Ok(Json(user.into()))
}
