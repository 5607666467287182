//! Writing a reply to the database as it streams, without losing any of it.
//!
//! Text the database refuses (the disk is full for a moment) stays in memory and goes with the
//! next write. How the reply ended is written together with its last text, in one commit, so a
//! reply never reads as complete while part of it is missing. If the text still cannot be
//! written a good while after the reply ended, the reply is marked as cut short instead
//! (interrupted, or failed): what was saved is kept, the page says the reply was cut short, and
//! the log says what was lost.

use std::time::{Duration, Instant};

use hearth_store::{Status, Store};

/// How often a streaming reply is written to the database.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How long a reply that has ended keeps trying to save the rest of its text. A full disk is
/// usually noticed and cleared within minutes; the reply waits that long rather than lose text.
pub(super) const KEEP_TRYING_FOR: Duration = Duration::from_secs(300);
/// The longest pause between two tries to save the end of a reply.
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// One reply's way into the database.
pub(super) struct Saver<'a> {
    store: &'a Store,
    message_id: i64,
    /// Text streamed but not yet written.
    unsaved: String,
    last_write: Instant,
    /// When writing started to fail, while it fails.
    failing_since: Option<Instant>,
    /// The message is gone (its conversation was deleted): nothing more to write.
    gone: bool,
}

impl<'a> Saver<'a> {
    pub(super) fn new(store: &'a Store, message_id: i64) -> Saver<'a> {
        Saver {
            store,
            message_id,
            unsaved: String::new(),
            last_write: Instant::now(),
            failing_since: None,
            gone: false,
        }
    }

    /// Adds streamed text, and writes what is unsaved if the last write was long enough ago.
    pub(super) fn push(&mut self, text: &str) {
        if self.gone {
            return;
        }
        self.unsaved.push_str(text);
        if self.last_write.elapsed() >= FLUSH_EVERY {
            self.write();
        }
    }

    /// Tries to write the unsaved text now; on failure it stays for the next try.
    pub(super) fn write(&mut self) {
        self.last_write = Instant::now();
        if self.unsaved.is_empty() || self.gone {
            return;
        }
        match self.store.append_to_message(self.message_id, &self.unsaved) {
            Ok(()) => {
                self.unsaved.clear();
                self.recovered();
            }
            Err(e) => self.failed(&e),
        }
    }

    /// Writes the rest of the text and how the reply ended (`status`), trying again with longer
    /// and longer pauses for `keep_trying` if the database refuses. Returns the status stored:
    /// `status`, or a cut-short one (see [`Saver::give_up`]) if the text could not be saved in
    /// time.
    pub(super) async fn finish(mut self, status: Status, keep_trying: Duration) -> Status {
        let ended = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            if self.gone {
                return status;
            }
            match self
                .store
                .finish_message(self.message_id, &self.unsaved, status)
            {
                Ok(()) => {
                    self.unsaved.clear();
                    self.recovered();
                    return status;
                }
                Err(e) => self.failed(&e),
            }
            if self.gone {
                return status;
            }
            let left = keep_trying.saturating_sub(ended.elapsed());
            if left.is_zero() {
                return self.give_up(keep_trying);
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    fn failed(&mut self, e: &hearth_store::Error) {
        if let hearth_store::Error::NotFound { .. } = e {
            // Deleted while it streamed: there is nowhere to keep its text, and no one to keep
            // it for.
            self.gone = true;
            self.unsaved.clear();
            return;
        }
        if self.failing_since.is_none() {
            self.failing_since = Some(Instant::now());
            tracing::warn!(
                "cannot save a reply as it is written ({e}); Hearth keeps its text in memory and \
                 tries again. If the disk is full, free some space."
            );
        }
    }

    fn recovered(&mut self) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                "a reply could be saved again after {:.1} s; none of its text was lost",
                since.elapsed().as_secs_f64()
            );
        }
    }

    /// The text could not be written for too long: keep what was saved, and say it was cut
    /// short. Interrupted says it best; if even that does not fit (the word is longer than
    /// "streaming"), failed does (shorter, so it needs no room), and the page offers a retry.
    /// Returns the status stored.
    fn give_up(self, tried_for: Duration) -> Status {
        let lost = self.unsaved.chars().count();
        tracing::error!(
            "a reply lost its last {lost} characters: the database refused them for {} s after \
             the reply ended. The saved part is kept and marked as cut short. Is the disk full?",
            tried_for.as_secs()
        );
        let mut why = None;
        for status in [Status::Interrupted, Status::Failed] {
            match self.store.set_message_status(self.message_id, status) {
                Ok(()) => return status,
                Err(e) => why = Some(e),
            }
        }
        tracing::error!(
            "cannot mark that reply as cut short either ({}); it still reads as being written, \
             and the next start of Hearth marks it interrupted",
            why.map(|e| e.to_string()).unwrap_or_default()
        );
        Status::Interrupted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_store::{Message, MessageRole};

    /// A store whose disk is full, and an empty streaming reply in it that has already filled
    /// every byte it could get; returns the store, the reply and the text it holds.
    fn full_disk_and_a_reply() -> (Store, Message, i64, String) {
        let store = Store::open_in_memory().expect("store");
        let ann = store
            .setup("Smiths", "Ann", "correct horse")
            .expect("setup");
        let c = store.create_conversation(ann.id, None).expect("chat");
        let reply = store
            .add_message(ann.id, c.id, MessageRole::Assistant, "", Status::Streaming)
            .expect("reply");
        store.set_disk_full_for_tests(true).expect("full");
        let mut stored = String::new();
        for size in [1000, 100, 10, 1] {
            let piece = "s".repeat(size);
            while store.append_to_message(reply.id, &piece).is_ok() {
                stored.push_str(&piece);
            }
        }
        (store, reply, ann.id, stored)
    }

    fn stored(store: &Store, user: i64, reply: &Message) -> (String, Status) {
        let c = store
            .conversation(user, reply.conversation_id)
            .expect("read")
            .expect("chat");
        let m = c.messages.into_iter().find(|m| m.id == reply.id).unwrap();
        (m.content, m.status)
    }

    #[tokio::test]
    async fn a_reply_that_ends_while_the_disk_is_full_is_complete_once_all_of_it_is_stored() {
        let (store, reply, user, before) = full_disk_and_a_reply();
        let store = std::sync::Arc::new(store);
        let mut saver = Saver::new(&store, reply.id);
        saver.push(" and then the end.");
        saver.write();
        assert_eq!(
            stored(&store, user, &reply),
            (before.clone(), Status::Streaming)
        );
        // The disk frees up while the reply is trying to finish.
        let freer = {
            let (store, reply) = (store.clone(), reply.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert_eq!(stored(&store, user, &reply).1, Status::Streaming);
                store.set_disk_full_for_tests(false).expect("free");
            })
        };
        let status = saver
            .finish(Status::Complete, Duration::from_secs(120))
            .await;
        freer.await.expect("freed");
        assert_eq!(status, Status::Complete);
        assert_eq!(
            stored(&store, user, &reply),
            (before + " and then the end.", Status::Complete)
        );
    }

    #[tokio::test]
    async fn a_reply_that_can_never_be_stored_is_marked_cut_short_not_complete() {
        let (store, reply, user, before) = full_disk_and_a_reply();
        let mut saver = Saver::new(&store, reply.id);
        saver.push(" and then the end.");
        let status = saver
            .finish(Status::Complete, Duration::from_millis(300))
            .await;
        // Cut short, in words the page shows; the disk here is too full for "interrupted".
        assert_eq!(status, Status::Failed);
        assert_eq!(
            stored(&store, user, &reply),
            (before.clone(), Status::Failed)
        );

        // With a few bytes to spare, it says interrupted.
        store
            .set_message_content(user, reply.id, &before[10..])
            .expect("room made");
        let mut saver = Saver::new(&store, reply.id);
        saver.push(&"more ".repeat(100));
        let status = saver
            .finish(Status::Stopped, Duration::from_millis(300))
            .await;
        assert_eq!(status, Status::Interrupted);
        assert_eq!(
            stored(&store, user, &reply),
            (before[10..].to_string(), Status::Interrupted)
        );
    }

    #[tokio::test]
    async fn a_deleted_reply_stops_trying_at_once() {
        let (store, reply, user, _) = full_disk_and_a_reply();
        store.set_disk_full_for_tests(false).expect("free");
        store
            .delete_conversation(user, reply.conversation_id)
            .expect("deleted");
        let mut saver = Saver::new(&store, reply.id);
        saver.push("more");
        saver.write();
        let finish = saver.finish(Status::Complete, Duration::from_secs(600));
        let status = tokio::time::timeout(Duration::from_secs(60), finish)
            .await
            .expect("no retrying for a reply that no longer exists");
        assert_eq!(status, Status::Complete);
    }
}
