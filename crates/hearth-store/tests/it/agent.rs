//! The assistant's records: the keeper's audit log keeps private words private, and a tools
//! setting that cannot be read gives no tools.

use hearth_store::{ChildLimits, PersonRole, Secret, Store};
use rusqlite::Connection;

fn private_child() -> ChildLimits {
    ChildLimits {
        prompt: None,
        hours: None,
        topics: vec![],
        keeper_sees: false,
    }
}

#[test]
fn the_audit_log_withholds_the_words_of_people_whose_chats_are_private() {
    let store = Store::open_in_memory().unwrap();
    let ana = store.setup("Smiths", "Ana", "correct horse").unwrap();
    let leo = store
        .add_person_as("Leo", &Secret::Pin("2468".into()), PersonRole::Child)
        .unwrap();
    store.set_child_limits(leo.id, &private_child()).unwrap();
    store
        .audit_tool(
            leo.id,
            "create_note",
            r#"{"content":"my secret diary"}"#,
            "done",
        )
        .unwrap();
    store
        .audit_tool(ana.id, "create_note", r#"{"content":"milk"}"#, "done")
        .unwrap();
    // A name or arguments as long as a request body are cut, not kept whole.
    store
        .audit_tool(
            leo.id,
            &"x".repeat(100_000),
            &"y".repeat(100_000),
            "not_allowed",
        )
        .unwrap();
    let log = store.audit_log(10).unwrap();
    assert_eq!(log.len(), 3);
    assert!(log[0].tool.chars().count() <= 80, "{}", log[0].tool.len());
    assert!(log[0].arguments.chars().count() <= 2100);
    let leo_row = &log[2];
    assert_eq!(leo_row.tool, "create_note");
    assert_eq!(leo_row.outcome, "done");
    assert!(
        !leo_row.arguments.contains("secret"),
        "{}",
        leo_row.arguments
    );
    assert!(
        leo_row.arguments.contains("withheld"),
        "{}",
        leo_row.arguments
    );
    // The keeper's own calls are the keeper's to read.
    assert!(log[1].arguments.contains("milk"));
}

#[test]
fn a_damaged_tools_setting_gives_no_tools() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hearth.db");
    let ben = {
        let store = Store::open(&path).unwrap();
        store.setup("Smiths", "Ana", "correct horse").unwrap();
        store
            .add_person("Ben", &Secret::Password("ben-password".into()))
            .unwrap()
    };
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE users SET tools = 'calculator' WHERE id = ?1",
            [ben.id],
        )
        .unwrap();
    let store = Store::open(&path).unwrap();
    assert_eq!(store.person_tools(ben.id).unwrap(), Some(vec![]));
}
