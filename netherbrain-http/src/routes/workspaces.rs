//! `/api/workspaces/*`: workspaces and their project directories (read:
//! any user; write: admins). Project directories must lie inside the
//! operator's allowed roots; the service canonicalises them.

use std::path::Component;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use netherbrain_core::WorkspaceId;
use netherbrain_core::store::{NewWorkspace, WorkspacePatch};

use crate::auth::{AdminUser, AuthUser};
use crate::dto::{CreateWorkspaceRequest, UpdateWorkspaceRequest, WorkspaceList, WorkspaceView};
use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::state::AppState;

/// Most project directories per workspace.
const MAX_PROJECT_DIRS: usize = 64;
/// Longest project directory path, in characters.
const MAX_PATH_CHARS: usize = 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/workspaces/create", post(create))
        .route("/api/workspaces/list", get(list))
        .route("/api/workspaces/{id}", get(get_workspace))
        .route("/api/workspaces/{id}/update", post(update))
        .route("/api/workspaces/{id}/delete", post(delete))
}

/// Project directories must be absolute, without `..` components (tools
/// are confined to them; an escape hatch in the root would defeat that).
fn check_project_dirs(dirs: &[String]) -> Result<(), ApiError> {
    if dirs.len() > MAX_PROJECT_DIRS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_PROJECT_DIRS} project directories"
        )));
    }
    for dir in dirs {
        if dir.is_empty() || dir.chars().count() > MAX_PATH_CHARS || dir.contains('\0') {
            return Err(ApiError::invalid(format!(
                "project directory `{}` is not a valid path",
                dir.escape_debug()
            )));
        }
        let path = std::path::Path::new(dir);
        if !path.has_root() || !dir.starts_with('/') {
            return Err(ApiError::invalid(format!(
                "project directory `{}` must be an absolute path",
                dir.escape_debug()
            )));
        }
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(ApiError::invalid(format!(
                "project directory `{}` must not contain `..`",
                dir.escape_debug()
            )));
        }
    }
    Ok(())
}

/// Creates a workspace.
#[utoipa::path(
    post,
    path = "/api/workspaces/create",
    tag = "workspaces",
    request_body = CreateWorkspaceRequest,
    responses(
        (status = 200, description = "Created", body = WorkspaceView),
        (status = 403, description = "Not an admin, or a project directory the allowed roots do not include (`/`, outside)", body = crate::dto::ErrorBody),
        (status = 404, description = "Unknown owner, or a project directory that does not exist", body = crate::dto::ErrorBody),
        (status = 409, description = "Name taken", body = crate::dto::ErrorBody),
        (status = 422, description = "A malformed project directory or metadata", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    admin: AdminUser,
    Json(req): Json<CreateWorkspaceRequest>,
) -> Result<Json<WorkspaceView>, ApiError> {
    check_project_dirs(&req.project_dirs)?;
    let mut new = NewWorkspace::new(req.name)
        .with_project_dirs(req.project_dirs)
        .with_metadata(req.metadata);
    if let Some(owner) = req.owner {
        new = new.with_owner(owner.into());
    }
    let workspace = state
        .service()
        .create_workspace(&admin.0.principal(), new)
        .await?;
    Ok(Json(workspace.into()))
}

/// Lists workspaces by name.
#[utoipa::path(
    get,
    path = "/api/workspaces/list",
    tag = "workspaces",
    responses((status = 200, description = "Workspaces", body = WorkspaceList))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _auth: AuthUser,
) -> Result<Json<WorkspaceList>, ApiError> {
    let workspaces = state.store().list_workspaces().await?;
    Ok(Json(WorkspaceList {
        items: workspaces.into_iter().map(Into::into).collect(),
    }))
}

/// Gets a workspace.
#[utoipa::path(
    get,
    path = "/api/workspaces/{id}",
    tag = "workspaces",
    params(("id" = Uuid, Path, description = "Workspace id")),
    responses(
        (status = 200, description = "The workspace", body = WorkspaceView),
        (status = 404, description = "No such workspace", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn get_workspace(
    State(state): State<AppState>,
    _auth: AuthUser,
    Path(id): Path<WorkspaceId>,
) -> Result<Json<WorkspaceView>, ApiError> {
    Ok(Json(state.store().get_workspace(id).await?.into()))
}

/// Changes a workspace; `metadata` keys are merged (`null` removes one).
#[utoipa::path(
    post,
    path = "/api/workspaces/{id}/update",
    tag = "workspaces",
    params(("id" = Uuid, Path, description = "Workspace id")),
    request_body = UpdateWorkspaceRequest,
    responses(
        (status = 200, description = "Changed", body = WorkspaceView),
        (status = 403, description = "Not an admin, or a project directory the allowed roots do not include (`/`, outside)", body = crate::dto::ErrorBody),
        (status = 404, description = "No such workspace or owner, or a project directory that does not exist", body = crate::dto::ErrorBody),
        (status = 409, description = "The name is taken", body = crate::dto::ErrorBody),
        (status = 422, description = "A malformed project directory or metadata", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    admin: AdminUser,
    Path(id): Path<WorkspaceId>,
    Json(req): Json<UpdateWorkspaceRequest>,
) -> Result<Json<WorkspaceView>, ApiError> {
    if let Some(dirs) = &req.project_dirs {
        check_project_dirs(dirs)?;
    }
    let mut patch = WorkspacePatch::default();
    patch.name = req.name;
    patch.project_dirs = req.project_dirs;
    patch.metadata = req.metadata;
    patch.owner = req.owner.map(|o| o.map(Into::into));
    let workspace = state
        .service()
        .update_workspace(&admin.0.principal(), id, patch)
        .await?;
    Ok(Json(workspace.into()))
}

/// Deletes a workspace; `409` while conversations belong to it.
#[utoipa::path(
    post,
    path = "/api/workspaces/{id}/delete",
    tag = "workspaces",
    params(("id" = Uuid, Path, description = "Workspace id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such workspace", body = crate::dto::ErrorBody),
        (status = 409, description = "Still has conversations", body = crate::dto::ErrorBody),
    )
)]
pub(crate) async fn delete(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<WorkspaceId>,
) -> Result<StatusCode, ApiError> {
    state.store().delete_workspace(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_dir_rules() {
        assert!(check_project_dirs(&["/srv/code".into(), "/".into()]).is_ok());
        for bad in ["relative/dir", "", "/srv/../etc", "../x", "/a/..", "/a\0b"] {
            let e = check_project_dirs(&[bad.to_owned()]).unwrap_err();
            assert_eq!(e.status().as_u16(), 422, "{bad:?}");
        }
    }
}
