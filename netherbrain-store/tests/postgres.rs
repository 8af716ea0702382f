//! Postgres backend: focused scenarios, each in its own database.

mod scenarios;
mod support;

scenario_tests!(support::postgres();
    users_roundtrip_and_conflicts, api_keys, presets_and_workspaces, conversations_create_update,
    list_paging_and_filters, sessions_one_running, concurrent_create_session_is_busy,
    append_and_events, search, mailbox, bad_input_changes_nothing,
    concurrent_appends_keep_every_message,
);
