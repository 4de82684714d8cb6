//! Asynchronous notifications (`LISTEN`/`NOTIFY`).

/// A notification delivered by the server to a session that `LISTEN`s on its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    process_id: i32,
    channel: String,
    payload: String,
}

impl Notification {
    /// A notification (as decoded from a `NotificationResponse`).
    pub fn new(process_id: i32, channel: impl Into<String>, payload: impl Into<String>) -> Self {
        Notification {
            process_id,
            channel: channel.into(),
            payload: payload.into(),
        }
    }

    /// The process ID of the notifying backend.
    pub fn process_id(&self) -> i32 {
        self.process_id
    }

    /// The channel name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The payload (empty if none was given).
    pub fn payload(&self) -> &str {
        &self.payload
    }
}
