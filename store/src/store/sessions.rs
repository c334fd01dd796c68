//! Sessions: what authenticating a token needs, kept in memory; ending one session or all of
//! an account's.

use super::Store;
use crate::access::Actor;
use crate::error::{Result, StoreError};
use crate::model::{UserId, now_ms};
use crate::sessions::Session;

/// Clears the session cache when dropped: held by every directory write, so the clearing comes
/// after its commit (and happens on every way out of it).
pub(crate) struct DirectoryWrite<'a>(&'a Store);

impl Drop for DirectoryWrite<'_> {
    fn drop(&mut self) {
        self.0.inner.sessions.clear();
    }
}

/// Ended sessions kept per account until they expire; one more ends every session of the account.
pub(crate) const MAX_REVOKED_SESSIONS: usize = 1000;

impl Store {
    /// Marks a directory write: the session cache is cleared when the returned guard drops.
    pub(crate) fn directory_write(&self) -> DirectoryWrite<'_> {
        DirectoryWrite(self)
    }

    /// What authenticating a token of user `id` needs, from memory when it is there (no database
    /// read); `None` when the user does not exist. Directory writes clear what is kept.
    pub async fn session(&self, id: UserId) -> Result<Option<Session>> {
        if let Some(session) = self.inner.sessions.get(id) {
            crate::metrics::STORE.sessions_from_memory.inc();
            return Ok(Some(session));
        }
        crate::metrics::STORE.sessions_from_database.inc();
        let generation = self.inner.sessions.generation();
        let Some(user) = self.inner.backend.user_by_id(id).await? else {
            return Ok(None);
        };
        let revoked = self.inner.backend.revoked_sessions(id).await?.into();
        let session = Session {
            tokens_valid_after: user.tokens_valid_after,
            revoked,
            actor: self.actor_for(&user).await?,
        };
        self.inner.sessions.put(id, &session, generation);
        Ok(Some(session))
    }

    /// Ends one session of the actor: its tokens carry `sid` and expire at `expires` (ms); the
    /// other sessions (another browser, the CLI) go on. Every instance hears of it.
    /// More than `MAX_REVOKED_SESSIONS` ended sessions at once end every session of the account
    /// (the list each authentication checks stays short).
    pub async fn revoke_session(&self, actor: &Actor, sid: &str, expires: i64) -> Result<()> {
        let over = {
            let _changed = self.directory_write();
            self.inner.backend.revoke_session(actor.user_id, sid, expires, MAX_REVOKED_SESSIONS).await?
        };
        if over { self.revoke_tokens(actor).await } else { Ok(()) }
    }

    /// Ends every session of the actor's own account (tokens issued until now are refused).
    pub async fn revoke_tokens(&self, actor: &Actor) -> Result<()> {
        let _changed = self.directory_write();
        let Some(mut user) = self.inner.backend.user_by_id(actor.user_id).await? else {
            return Err(StoreError::NotFound { kind: "user", id: actor.user_id.to_string() });
        };
        user.tokens_valid_after = now_ms();
        self.inner.backend.update_user(&user).await
    }
}
