//! Daily token budgets: a run is refused once the user's or the preset's
//! tokens of the day are spent, with a message saying which and when it
//! renews; usage per day is reported.

use std::sync::Arc;

use netherbrain_core::agent::AgentCatalog;
use netherbrain_core::auth::Principal;
use netherbrain_core::conversation::{
    ConversationService, SendMessage, ServiceError, TokenBudgets,
};
use netherbrain_core::store::prelude::*;
use netherbrain_core::store::{MemoryStore, NewPreset, NewUser, UserRole};
use netherbrain_core::testing::{ScriptedProvider, ScriptedResponse};
use netherbrain_core::{Message, PresetConfig};

fn answers(n: usize) -> Arc<ScriptedProvider> {
    // Each answer spends 10 input + 5 output tokens.
    Arc::new(ScriptedProvider::new(
        (0..n).map(|i| ScriptedResponse::text(format!("answer {i}"))),
    ))
}

#[tokio::test]
async fn a_spent_user_budget_refuses_the_next_run_and_usage_shows_the_day() {
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    let bob = store
        .create_user(NewUser::new("bob", UserRole::User))
        .await
        .unwrap();
    let preset = store
        .create_preset(NewPreset::new("p", PresetConfig::new("local", "tiny")))
        .await
        .unwrap();
    let catalog = AgentCatalog::new().with_provider("local", answers(5), vec!["tiny".into()]);
    let service = ConversationService::builder(store.clone())
        .catalog(Arc::new(catalog))
        .token_budgets(TokenBudgets::default().with_user_daily_tokens(Some(30)))
        .build();
    let ada_p = Principal::of(&ada);
    let send = |who: Principal| {
        let service = service.clone();
        async move {
            let sent = service
                .send(
                    &who,
                    SendMessage::new_conversation(preset.id, vec![Message::user("hi")]),
                )
                .await?;
            service
                .runtime()
                .wait(sent.handle().session_id)
                .await
                .map_err(ServiceError::from)?;
            Ok::<_, ServiceError>(())
        }
    };
    send(ada_p).await.unwrap();
    send(ada_p).await.unwrap();
    // 30 of 30 tokens spent: refused, and nothing was created for it.
    let before = store
        .list_conversations(netherbrain_core::store::ConversationQuery::for_owner(
            ada.id,
        ))
        .await
        .unwrap()
        .items
        .len();
    let e = send(ada_p).await.unwrap_err();
    let ServiceError::BudgetExhausted {
        limit,
        used,
        ref scope,
        ..
    } = e
    else {
        panic!("expected a budget refusal, got {e:?}");
    };
    assert_eq!((limit, used), (30, 30));
    assert!(scope.contains("ada"), "{scope}");
    assert!(e.to_string().contains("renews at"), "{e}");
    let after = store
        .list_conversations(netherbrain_core::store::ConversationQuery::for_owner(
            ada.id,
        ))
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(before, after, "a refused run leaves no conversation behind");
    // Another user's budget is their own.
    send(Principal::of(&bob)).await.unwrap();

    let report = service.daily_usage(&ada_p, None, 3).await.unwrap();
    assert_eq!(report.days.len(), 3);
    assert_eq!(report.used_today, 30);
    assert_eq!(report.user_daily_tokens, Some(30));
    let today = report.days.last().unwrap();
    assert_eq!(today.total.input_tokens, 20);
    assert_eq!(today.total.output_tokens, 10);
    assert_eq!(
        today
            .by_preset
            .get(&Some(preset.id))
            .map(|u| u.total_tokens()),
        Some(30)
    );
    assert!(report.days[0].total.total_tokens() == 0);
    assert!(
        service
            .daily_usage(&Principal::of(&bob), Some(ada.id), 3)
            .await
            .is_err()
    );
    assert!(service.daily_usage(&ada_p, None, 0).await.is_err());
}

#[tokio::test]
async fn a_spent_preset_budget_refuses_every_user_of_it() {
    let store = Arc::new(MemoryStore::new());
    let ada = store
        .create_user(NewUser::new("ada", UserRole::User))
        .await
        .unwrap();
    let bob = store
        .create_user(NewUser::new("bob", UserRole::User))
        .await
        .unwrap();
    let mut config = PresetConfig::new("local", "tiny");
    config.daily_token_budget = Some(15);
    let capped = store
        .create_preset(NewPreset::new("capped", config))
        .await
        .unwrap();
    let free = store
        .create_preset(NewPreset::new("free", PresetConfig::new("local", "tiny")))
        .await
        .unwrap();
    let catalog = AgentCatalog::new().with_provider("local", answers(5), vec!["tiny".into()]);
    let service = ConversationService::builder(store.clone())
        .catalog(Arc::new(catalog))
        .build();
    let run = |who: Principal, preset| {
        let service = service.clone();
        async move {
            let sent = service
                .send(
                    &who,
                    SendMessage::new_conversation(preset, vec![Message::user("hi")]),
                )
                .await?;
            service
                .runtime()
                .wait(sent.handle().session_id)
                .await
                .map_err(ServiceError::from)?;
            Ok::<_, ServiceError>(())
        }
    };
    run(Principal::of(&ada), capped.id).await.unwrap();
    let e = run(Principal::of(&bob), capped.id).await.unwrap_err();
    assert!(
        matches!(e, ServiceError::BudgetExhausted { ref scope, .. } if scope.contains("capped")),
        "{e:?}"
    );
    run(Principal::of(&bob), free.id).await.unwrap();
}
