//! Workspaces: saved with their project directories confined to the
//! operator's roots, attached to conversations by their owner or an admin.

use std::path::PathBuf;

use super::{ConversationService, ServiceError};
use crate::auth::Principal;
use crate::ids::{UserId, WorkspaceId};
use crate::store::{NewWorkspace, StoreError, UserRole, Workspace, WorkspacePatch};
use crate::workspace::WorkspaceError;

impl From<WorkspaceError> for ServiceError {
    /// A path the operator's roots do not allow is `Forbidden` (it is
    /// well-formed; this server does not permit it), one that does not
    /// exist `NotFound`, a relative one `Invalid`.
    fn from(e: WorkspaceError) -> Self {
        let message = format!("project directory refused: {e}");
        match e {
            WorkspaceError::Root | WorkspaceError::Outside(_) => Self::Forbidden(message),
            WorkspaceError::Unresolvable { .. } => Self::NotFound(message),
            _ => Self::Invalid(message),
        }
    }
}

impl ConversationService {
    /// Creates a workspace (admins only). Its project directories are
    /// canonicalised and must lie inside the allowed roots; the owner
    /// (who may attach it besides admins) defaults to `who`.
    ///
    /// # Errors
    ///
    /// `Forbidden` for a non-admin, `Invalid` for a refused directory,
    /// `NotFound` for an unknown owner, and the store's errors.
    pub async fn create_workspace(
        &self,
        who: &Principal,
        mut new: NewWorkspace,
    ) -> Result<Workspace, ServiceError> {
        who.require_admin()?;
        new.project_dirs = self.inner.workspace_roots.confine_all(&new.project_dirs)?;
        let owner = new.owner.unwrap_or_else(|| who.user_id());
        self.inner.store.get_user(owner).await?;
        new.owner = Some(owner);
        Ok(self.inner.store.create_workspace(new).await?)
    }

    /// Changes a workspace (admins only); new project directories are
    /// confined as on creation.
    ///
    /// # Errors
    ///
    /// As [`create_workspace`](Self::create_workspace).
    pub async fn update_workspace(
        &self,
        who: &Principal,
        id: WorkspaceId,
        mut patch: WorkspacePatch,
    ) -> Result<Workspace, ServiceError> {
        who.require_admin()?;
        if let Some(dirs) = &patch.project_dirs {
            patch.project_dirs = Some(self.inner.workspace_roots.confine_all(dirs)?);
        }
        if let Some(Some(owner)) = patch.owner {
            self.inner.store.get_user(owner).await?;
        }
        Ok(self.inner.store.update_workspace(id, patch).await?)
    }

    /// Checks that `who` may attach the workspace to a conversation: its
    /// owner or an admin, or anyone when it has no project directories
    /// (it then grants no tool any file or shell access; the default
    /// workspace is one). Another user's workspace is `Forbidden`.
    pub(super) async fn check_attach(
        &self,
        who: &Principal,
        id: WorkspaceId,
    ) -> Result<Workspace, ServiceError> {
        let workspace = self.inner.store.get_workspace(id).await?;
        if who.is_admin()
            || workspace.owner == Some(who.user_id())
            || workspace.project_dirs.is_empty()
        {
            Ok(workspace)
        } else {
            Err(ServiceError::Forbidden(format!(
                "only the owner of workspace `{}` or an admin can attach it",
                workspace.name
            )))
        }
    }

    /// The project directories of a workspace for tools, canonicalised
    /// again now; one that left the roots (a symlink changed since it was
    /// saved) or disappeared is dropped with a warning.
    pub(super) async fn project_dirs(
        &self,
        workspace: Option<WorkspaceId>,
        conversation_owner: UserId,
    ) -> Result<Vec<PathBuf>, ServiceError> {
        let Some(id) = workspace else {
            return Ok(Vec::new());
        };
        let workspace = match self.inner.store.get_workspace(id).await {
            Ok(w) => w,
            Err(StoreError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        // Attached while it had no directories, or before its owner
        // changed: its directories are for its owner and admins only.
        if !workspace.project_dirs.is_empty() && workspace.owner != Some(conversation_owner) {
            let admin = match self.inner.store.get_user(conversation_owner).await {
                Ok(user) => user.role == UserRole::Admin && user.active,
                Err(StoreError::NotFound { .. }) => false,
                Err(e) => return Err(e.into()),
            };
            if !admin {
                tracing::warn!(
                    workspace = %workspace.name,
                    "the conversation's owner may not use this workspace's directories; tools get none"
                );
                return Ok(Vec::new());
            }
        }
        let mut dirs = Vec::with_capacity(workspace.project_dirs.len());
        for dir in &workspace.project_dirs {
            match self.inner.workspace_roots.confine(dir) {
                Ok(path) => dirs.push(path),
                Err(e) => {
                    tracing::warn!(workspace = %workspace.name, error = %e, "project directory dropped");
                }
            }
        }
        Ok(dirs)
    }
}
