//! Children, their keeper's limits, everyone's own settings, and the schema version that
//! brought them (4).

use hearth_store::{
    schema, ChildLimits, Error, Hours, MessageRole, PersonRole, Profile, Secret, Status, Store,
};
use rusqlite::Connection;

use crate::household;

fn limits() -> ChildLimits {
    ChildLimits {
        prompt: Some("Talk like a friendly teacher.".into()),
        hours: Some(Hours {
            from: 8 * 60,
            to: 19 * 60 + 30,
            utc_offset: 60,
            zone: None,
        }),
        topics: vec![
            "horror films".into(),
            " ".into(),
            "Horror films".into(),
            "dating".into(),
        ],
        keeper_sees: false,
    }
}

#[test]
fn a_child_is_a_role_with_limits_only_a_child_has() {
    let (store, ana, ben) = household();
    let leo = store
        .add_person_as("Leo", &Secret::Pin("2468".into()), PersonRole::Child)
        .unwrap();
    assert_eq!(leo.role, PersonRole::Child);
    assert_eq!(store.user(leo.id).unwrap().unwrap().role, PersonRole::Child);
    assert_eq!(
        store.verify_login("leo", "2468").unwrap().unwrap().role,
        PersonRole::Child
    );
    let s = store.create_session(leo.id).unwrap();
    assert_eq!(
        store.session(&s.token).unwrap().unwrap().0.role,
        PersonRole::Child
    );
    let owner = store.add_person_as("Max", &Secret::Pin("1357".into()), PersonRole::Owner);
    assert!(
        matches!(owner, Err(Error::Invalid { field: "role", .. })),
        "{owner:?}"
    );

    // A new child: the default prompt, any time, no topics, and the keeper may read their chats.
    let fresh = store
        .child_limits(leo.id)
        .unwrap()
        .expect("a child has limits");
    assert_eq!(fresh.prompt, None);
    assert_eq!(fresh.hours, None);
    assert!(fresh.topics.is_empty());
    assert!(fresh.keeper_sees);
    // Grown-ups have none, and cannot be given any.
    assert_eq!(store.child_limits(ben.id).unwrap(), None);
    assert_eq!(store.child_limits(ana.id).unwrap(), None);
    assert!(matches!(
        store.set_child_limits(ben.id, &limits()),
        Err(Error::NotFound { .. })
    ));

    let saved = store.set_child_limits(leo.id, &limits()).unwrap();
    assert_eq!(saved.topics, vec!["horror films", "dating"]);
    assert_eq!(store.child_limits(leo.id).unwrap().unwrap(), saved);
    // An empty prompt is the default again; hours outside a day are refused.
    let mut back = saved.clone();
    back.prompt = Some("  ".into());
    assert_eq!(store.set_child_limits(leo.id, &back).unwrap().prompt, None);
    back.hours = Some(Hours {
        from: 24 * 60,
        to: 0,
        utc_offset: 0,
        zone: None,
    });
    assert!(matches!(
        store.set_child_limits(leo.id, &back),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn hours_in_the_keepers_time_and_across_midnight() {
    // 08:00 to 19:30 at UTC+1; 1970-01-01 is a Thursday, time of day is all that matters.
    let day = Hours {
        from: 8 * 60,
        to: 19 * 60 + 30,
        utc_offset: 60,
        zone: None,
    };
    let at = |h: i64, m: i64| (h * 60 + m) * 60; // UTC
    assert!(!day.allows(at(6, 59))); // 07:59 local
    assert!(day.allows(at(7, 0))); // 08:00 local
    assert!(day.allows(at(18, 29)));
    assert!(!day.allows(at(18, 30)));
    let night = Hours {
        from: 22 * 60,
        to: 6 * 60,
        utc_offset: -300,
        zone: None,
    };
    assert!(night.allows(at(3, 0) + 86_400 * 400)); // 22:00 local
    assert!(night.allows(at(10, 59)));
    assert!(!night.allows(at(11, 0)));
    assert!(Hours {
        from: 0,
        to: 0,
        utc_offset: 0,
        zone: None,
    }
    .allows(at(12, 0)));
}

#[test]
fn the_keeper_reads_a_childs_chats_only_while_allowed_and_never_a_grown_ups() {
    let (store, _ana, ben) = household();
    let leo = store
        .add_person_as("Leo", &Secret::Pin("2468".into()), PersonRole::Child)
        .unwrap();
    for who in [leo.id, ben.id] {
        let c = store.create_conversation(who, None).unwrap();
        store
            .add_message(
                who,
                c.id,
                MessageRole::User,
                "secret words",
                Status::Complete,
            )
            .unwrap();
    }
    let leos = store
        .child_conversations_for_keeper(leo.id)
        .unwrap()
        .unwrap();
    assert_eq!(leos.len(), 1);
    let one = store
        .child_conversation_for_keeper(leo.id, leos[0].id)
        .unwrap()
        .unwrap();
    assert_eq!(one.messages[0].content, "secret words");
    // A grown-up's chats: never, whatever id is asked for.
    assert_eq!(store.child_conversations_for_keeper(ben.id).unwrap(), None);
    let bens = store.conversations(ben.id, None).unwrap();
    assert_eq!(
        store
            .child_conversation_for_keeper(ben.id, bens[0].id)
            .unwrap(),
        None
    );
    // Leo's conversation id asked for under Ben's name, and Ben's under Leo's: nothing.
    assert_eq!(
        store
            .child_conversation_for_keeper(leo.id, bens[0].id)
            .unwrap(),
        None
    );
    // The keeper turns it off: Leo's chats are private too.
    let mut l = store.child_limits(leo.id).unwrap().unwrap();
    l.keeper_sees = false;
    store.set_child_limits(leo.id, &l).unwrap();
    assert_eq!(store.child_conversations_for_keeper(leo.id).unwrap(), None);
    assert_eq!(
        store
            .child_conversation_for_keeper(leo.id, leos[0].id)
            .unwrap(),
        None
    );
}

#[test]
fn everyone_sets_their_own_instructions_and_language() {
    let (store, ana, ben) = household();
    assert_eq!(store.profile(ben.id).unwrap(), Profile::default());
    let p = store
        .set_profile(
            ben.id,
            &Profile {
                instructions: "  I am a nurse,\nbe precise.  ".into(),
                language: Some("FR".into()),
            },
        )
        .unwrap();
    assert_eq!(p.instructions, "I am a nurse,\nbe precise.");
    assert_eq!(p.language.as_deref(), Some("fr"));
    assert_eq!(store.profile(ben.id).unwrap(), p);
    assert_eq!(store.profile(ana.id).unwrap(), Profile::default());
    let bad = store.set_profile(
        ben.id,
        &Profile {
            instructions: String::new(),
            language: Some("<b>".into()),
        },
    );
    assert!(
        matches!(
            bad,
            Err(Error::Invalid {
                field: "language",
                ..
            })
        ),
        "{bad:?}"
    );
    let long = "x".repeat(hearth_store::MAX_INSTRUCTIONS_CHARS + 1);
    let bad = store.set_profile(
        ben.id,
        &Profile {
            instructions: long,
            language: None,
        },
    );
    assert!(
        matches!(
            bad,
            Err(Error::Invalid {
                field: "instructions",
                ..
            })
        ),
        "{bad:?}"
    );
    assert!(matches!(
        store.set_profile(999, &Profile::default()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_cut_short_reply_is_continued_in_place_only_while_it_is_the_last() {
    let (store, ana, ben) = household();
    let c = store.create_conversation(ana.id, None).unwrap();
    store
        .add_message(ana.id, c.id, MessageRole::User, "Tell me", Status::Complete)
        .unwrap();
    let a = store
        .add_message(
            ana.id,
            c.id,
            MessageRole::Assistant,
            "Once",
            Status::CutShort,
        )
        .unwrap();
    assert!(matches!(
        store.resume_cut_short(ben.id, c.id, a.id),
        Err(Error::NotFound { .. })
    ));
    let m = store.resume_cut_short(ana.id, c.id, a.id).unwrap();
    assert_eq!((m.status, m.content.as_str()), (Status::Streaming, "Once"));
    // Now streaming, not cut short: a second continue is refused.
    assert!(matches!(
        store.resume_cut_short(ana.id, c.id, a.id),
        Err(Error::NotFound { .. })
    ));
    store
        .finish_message(a.id, " upon a time", Status::CutShort)
        .unwrap();
    store
        .add_message(ana.id, c.id, MessageRole::User, "More", Status::Complete)
        .unwrap();
    assert!(matches!(
        store.resume_cut_short(ana.id, c.id, a.id),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn version_3_files_keep_their_messages_and_people_through_version_4() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.db");
    {
        let mut conn = Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        for sql in &schema::MIGRATIONS[..3] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 3).unwrap();
        tx.execute_batch(
            "INSERT INTO users (id, name, name_key, role, kind, secret_hash, created)
                 VALUES (1, 'Ana', 'ana', 'owner', 'password', 'x', 1),
                        (2, 'Ben', 'ben', 'member', 'pin', 'x', 1);
             INSERT INTO conversations (id, user_id, title, created, updated, activity)
                 VALUES (7, 2, 'Old', 1, 1, 1);
             INSERT INTO messages (id, conversation_id, role, content, status, created)
                 VALUES (3, 7, 'user', 'hello', 'complete', 1),
                        (4, 7, 'assistant', 'hi', 'stopped', 2);",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    let people = store.people().unwrap();
    assert_eq!(people[1].role, PersonRole::Member);
    let c = store.conversation(2, 7).unwrap().unwrap();
    assert_eq!(c.messages.len(), 2);
    assert_eq!(
        (c.messages[1].id, c.messages[1].status),
        (4, Status::Stopped)
    );
    // The rebuilt table still cascades from its conversation.
    store.delete_conversation(2, 7).unwrap();
    let left: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    let a = store.create_conversation(2, None).unwrap();
    store
        .add_message(2, a.id, MessageRole::Assistant, "x", Status::CutShort)
        .unwrap();
}

#[test]
fn a_reply_that_ran_out_of_room_is_stored_as_such_and_is_not_continued() {
    let (store, ana, _ben) = household();
    let c = store.create_conversation(ana.id, None).unwrap();
    let a = store
        .add_message(
            ana.id,
            c.id,
            MessageRole::Assistant,
            "Once",
            Status::Streaming,
        )
        .unwrap();
    store
        .finish_message(a.id, " upon", Status::OutOfRoom)
        .unwrap();
    let m = &store.conversation(ana.id, c.id).unwrap().unwrap().messages[0];
    assert_eq!(
        (m.content.as_str(), m.status),
        ("Once upon", Status::OutOfRoom)
    );
    assert!(store.resume_cut_short(ana.id, c.id, a.id).is_err());
}

#[test]
fn hours_that_start_when_they_end_or_in_no_time_zone_are_refused() {
    let (store, _ana, _ben) = household();
    let leo = store
        .add_person_as("Leo", &Secret::Pin("2468".into()), PersonRole::Child)
        .unwrap();
    let mut l = limits();
    // The same start and end read as "any time" before: refused in words instead.
    l.hours = Some(Hours {
        from: 9 * 60,
        to: 9 * 60,
        utc_offset: 0,
        zone: None,
    });
    assert!(matches!(
        store.set_child_limits(leo.id, &l),
        Err(Error::Invalid { field: "hours", .. })
    ));
    // An offset no time zone has, even the one whose absolute value overflows.
    for utc_offset in [i32::MIN, -15 * 60, 15 * 60, i32::MAX] {
        l.hours = Some(Hours {
            from: 8 * 60,
            to: 9 * 60,
            utc_offset,
            zone: None,
        });
        assert!(
            matches!(
                store.set_child_limits(leo.id, &l),
                Err(Error::Invalid { field: "hours", .. })
            ),
            "{utc_offset}"
        );
    }
    assert_eq!(store.child_limits(leo.id).unwrap().unwrap().hours, None);
}

/// A child's topics that cannot be read are an error, never "no topics": the checks that use
/// them fail closed.
#[test]
fn unreadable_topics_are_an_error_not_an_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.db");
    let leo = {
        let store = Store::open(&path).unwrap();
        store.setup("Smiths", "Ana", "correct horse").unwrap();
        let leo = store
            .add_person_as("Leo", &Secret::Pin("2468".into()), PersonRole::Child)
            .unwrap();
        store.set_child_limits(leo.id, &limits()).unwrap();
        leo
    };
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE users SET topics = 'horror films' WHERE id = ?1",
            [leo.id],
        )
        .unwrap();
    let store = Store::open(&path).unwrap();
    assert!(store.child_limits(leo.id).is_err());
}

#[test]
fn hours_follow_the_keepers_clocks_across_a_daylight_saving_change() {
    // 08:00 to 20:00 in Paris, saved in winter (UTC+1). On Sunday 29 March 2026 at 01:00 UTC
    // the clocks go to UTC+2: from then on 08:00 in Paris is 06:00 UTC, not 07:00.
    let paris = Hours {
        from: 8 * 60,
        to: 20 * 60,
        utc_offset: 60,
        zone: Some("Europe/Paris".into()),
    };
    let utc = |day: i64, h: i64, m: i64| day * 86_400 + (h * 60 + m) * 60;
    let (winter, summer) = (20_467, 20_542); // 14 January and Monday 30 March 2026
    assert!(!paris.allows(utc(winter, 6, 30))); // 07:30 in Paris
    assert!(paris.allows(utc(winter, 7, 0))); // 08:00
    assert!(paris.allows(utc(winter, 18, 59))); // 19:59
    assert!(!paris.allows(utc(winter, 19, 0))); // 20:00
    assert!(
        paris.allows(utc(summer, 6, 30)),
        "08:30 in Paris in summer time"
    );
    assert!(!paris.allows(utc(summer, 5, 59))); // 07:59
    assert!(
        !paris.allows(utc(summer, 18, 30)),
        "20:30 in Paris in summer time"
    );
    assert!(paris.allows(utc(summer, 17, 59))); // 19:59
                                                // The night of the change itself: 02:00 to 03:00 does not exist in Paris that night.
    let change = 20_541; // Sunday 29 March 2026
    assert_eq!(paris.local_minute(utc(change, 0, 59)), 60 + 59); // 01:59 (UTC+1)
    assert_eq!(paris.local_minute(utc(change, 1, 0)), 3 * 60); // 03:00 (UTC+2)

    // Hours saved the old way, with an offset and no zone, read as they always were.
    let old = Hours {
        zone: None,
        ..paris.clone()
    };
    assert!(!old.allows(utc(summer, 6, 30)));
    assert!(old.allows(utc(summer, 7, 0)));

    // Stored and read back with its zone; a zone Hearth does not know is refused in words.
    let (store, _ana, _ben) = household();
    let leo = store
        .add_person_as("Leo", &Secret::Pin("2468".into()), PersonRole::Child)
        .expect("Leo");
    let mut l = limits();
    l.hours = Some(paris.clone());
    store.set_child_limits(leo.id, &l).expect("save");
    let back = store.child_limits(leo.id).unwrap().unwrap();
    assert_eq!(back.hours, Some(paris.clone()));
    l.hours = Some(Hours {
        zone: Some("Mars/Olympus".into()),
        ..paris.clone()
    });
    assert!(matches!(
        store.set_child_limits(leo.id, &l),
        Err(Error::Invalid { field: "hours", .. })
    ));
    // Saved again without a zone (an older page), the zone goes too.
    l.hours = Some(old.clone());
    store.set_child_limits(leo.id, &l).expect("save");
    assert_eq!(
        store.child_limits(leo.id).unwrap().unwrap().hours,
        Some(old)
    );
}
