//! The names of keys and channels, under the configured prefix.

use netherbrain_core::SessionId;

/// Key and channel names of one deployment.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The stream of a session's events (entry id `<seq>-0`).
    pub(crate) fn events(&self, session: SessionId) -> String {
        format!("{}:events:{session}", self.prefix)
    }

    /// The channel a session's new events are published on.
    pub(crate) fn live(&self, session: SessionId) -> String {
        format!("{}:live:{session}", self.prefix)
    }

    /// The session a [`live`](Self::live) channel is about.
    pub(crate) fn live_session(&self, channel: &str) -> Option<SessionId> {
        channel
            .strip_prefix(&self.prefix)?
            .strip_prefix(":live:")?
            .parse()
            .ok()
    }

    /// The channel conversation-feed notices go out on.
    pub(crate) fn feed(&self) -> String {
        format!("{}:feed", self.prefix)
    }

    /// The channel a process hears its commands on.
    pub(crate) fn commands(&self, owner: &str) -> String {
        format!("{}:commands:{owner}", self.prefix)
    }

    /// The list a command's reply is pushed to.
    pub(crate) fn ack(&self, id: &str) -> String {
        format!("{}:ack:{id}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_channels_name_their_session() {
        let keys = Keys::new("nb");
        let id = SessionId::new();
        assert_eq!(keys.live_session(&keys.live(id)), Some(id));
        assert_eq!(keys.live_session(&keys.events(id)), None);
        assert_eq!(keys.live_session("other:live:x"), None);
    }
}
