//! The user's long-term memories as the API sees them: each principal
//! manages their own; an admin reaches another user's only by naming the
//! user (`user_id`), like API keys.

use super::{ConversationService, ServiceError};
use crate::auth::{Principal, keys::target_user};
use crate::ids::{MemoryId, UserId};
use crate::memory::Memories;
use crate::store::MemoryRecord;

impl ConversationService {
    /// The memories use-cases (limits, embeddings, recall) the `memory`
    /// tool set and the run's injection share.
    #[must_use]
    pub fn memories(&self) -> &Memories {
        &self.inner.memories
    }

    async fn memory_owner(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
    ) -> Result<UserId, ServiceError> {
        Ok(target_user(self.inner.store.as_ref(), who, user_id).await?)
    }

    /// The memories of `who` (admins: of `user_id`), newest first.
    ///
    /// # Errors
    ///
    /// `Forbidden` for another user's without admin rights; `NotFound` for
    /// an unknown `user_id`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), netherbrain_core::conversation::ServiceError> {
    /// use std::sync::Arc;
    /// use netherbrain_core::auth::Principal;
    /// use netherbrain_core::conversation::ConversationService;
    /// use netherbrain_core::store::prelude::*;
    /// use netherbrain_core::store::{MemoryStore, NewUser, UserRole};
    ///
    /// let store = Arc::new(MemoryStore::new());
    /// let ada = store.create_user(NewUser::new("ada", UserRole::User)).await?;
    /// let bob = store.create_user(NewUser::new("bob", UserRole::User)).await?;
    /// let service = ConversationService::builder(store).build();
    /// service.create_memory(&Principal::of(&ada), None, "likes tea").await?;
    /// assert_eq!(service.list_memories(&Principal::of(&ada), None).await?.len(), 1);
    /// assert!(service.list_memories(&Principal::of(&bob), None).await?.is_empty());
    /// assert!(service.list_memories(&Principal::of(&bob), Some(ada.id)).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list_memories(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
    ) -> Result<Vec<MemoryRecord>, ServiceError> {
        let owner = self.memory_owner(who, user_id).await?;
        self.inner.memories.list(owner).await
    }

    /// Records a memory for `who` (admins: for `user_id`), without a
    /// source conversation.
    ///
    /// # Errors
    ///
    /// As [`list_memories`](Self::list_memories); `Invalid` for an empty or
    /// over-long text; `Conflict` when the memory is full.
    pub async fn create_memory(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
        content: &str,
    ) -> Result<MemoryRecord, ServiceError> {
        let owner = self.memory_owner(who, user_id).await?;
        self.inner
            .memories
            .remember(owner, None, content, None, None)
            .await
    }

    /// Changes the text of a memory of `who` (admins: of `user_id`).
    ///
    /// # Errors
    ///
    /// As [`create_memory`](Self::create_memory); `NotFound` for a memory
    /// of another user.
    pub async fn update_memory(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
        id: MemoryId,
        content: &str,
    ) -> Result<MemoryRecord, ServiceError> {
        let owner = self.memory_owner(who, user_id).await?;
        self.inner.memories.update(owner, id, content).await
    }

    /// Deletes a memory of `who` (admins: of `user_id`).
    ///
    /// # Errors
    ///
    /// As [`update_memory`](Self::update_memory).
    pub async fn delete_memory(
        &self,
        who: &Principal,
        user_id: Option<UserId>,
        id: MemoryId,
    ) -> Result<(), ServiceError> {
        let owner = self.memory_owner(who, user_id).await?;
        self.inner.memories.forget(owner, id).await
    }
}
