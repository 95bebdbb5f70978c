//! Behaviour every `Catalog` implementation must show. Run against each backend.

use std::sync::Arc;

use openkvs_store::{
    Catalog, ChannelUpdate, Error, NewChannel, NewStream, Selector, SqliteCatalog, StreamUpdate,
    Tags,
};

fn stream(name: &str) -> NewStream {
    NewStream {
        name: name.into(),
        arn: format!("arn:aws:kinesisvideo:us-east-1:123456789012:stream/{name}/1000"),
        created_ms: 1000,
        storage_tier: "HOT".into(),
        ..Default::default()
    }
}

fn channel(name: &str) -> NewChannel {
    NewChannel {
        name: name.into(),
        arn: format!("arn:aws:kinesisvideo:us-east-1:123456789012:channel/{name}/1000"),
        channel_type: "SINGLE_MASTER".into(),
        created_ms: 1000,
        message_ttl_seconds: 60,
        ..Default::default()
    }
}

async fn conformance(cat: Arc<dyn Catalog>) {
    // Create, describe by name and ARN, duplicate.
    let s = cat.create_stream(stream("cam_1")).await.unwrap();
    assert_eq!(
        cat.stream(&Selector::Name("cam_1".into())).await.unwrap(),
        s
    );
    assert_eq!(cat.stream(&Selector::Arn(s.arn.clone())).await.unwrap(), s);
    assert!(matches!(
        cat.create_stream(stream("cam_1")).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        cat.stream(&Selector::Name("nope".into())).await,
        Err(Error::NotFound { .. })
    ));

    // Listing: prefix with '_' must not act as a wildcard; pagination.
    for n in ["cam_2", "cam_3", "camX", "other"] {
        cat.create_stream(stream(n)).await.unwrap();
    }
    let page = cat.list_streams(Some("cam_"), None, 2).await.unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["cam_1", "cam_2"]
    );
    assert_eq!(page.next_after.as_deref(), Some("cam_2"));
    let page = cat
        .list_streams(Some("cam_"), page.next_after.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        ["cam_3"]
    );
    assert_eq!(page.next_after, None);
    assert_eq!(
        cat.list_streams(None, None, 100).await.unwrap().items.len(),
        5
    );

    // Update with versions.
    let sel = Selector::Name("cam_1".into());
    let stale = s.version.clone();
    let upd = StreamUpdate {
        media_type: Some("video/h264".into()),
        ..Default::default()
    };
    let s2 = cat
        .update_stream(&sel, &s.version, upd.clone())
        .await
        .unwrap();
    assert_ne!(s2.version, s.version);
    assert_eq!(s2.media_type.as_deref(), Some("video/h264"));
    assert!(matches!(
        cat.update_stream(&sel, &stale, upd).await,
        Err(Error::VersionMismatch { .. })
    ));

    // Tags: add, overwrite, limit, remove.
    let mut t = Tags::new();
    t.insert("a".into(), "1".into());
    cat.tag(&s.arn, t).await.unwrap();
    let many: Tags = (0..50).map(|i| (format!("k{i}"), String::new())).collect();
    assert!(matches!(
        cat.tag(&s.arn, many).await,
        Err(Error::TooManyTags { count: 51, .. })
    ));
    assert_eq!(
        cat.tags(&s.arn).await.unwrap().len(),
        1,
        "a failed tag call changes nothing"
    );
    cat.untag(&s.arn, vec!["a".into(), "missing".into()])
        .await
        .unwrap();
    assert!(cat.tags(&s.arn).await.unwrap().is_empty());
    assert!(matches!(
        cat.tags("arn:aws:kinesisvideo:us-east-1:1:stream/x/1")
            .await,
        Err(Error::NotFound { .. })
    ));

    // Delete with a wrong, then right version.
    assert!(matches!(
        cat.delete_stream(&sel, Some("bogus")).await,
        Err(Error::VersionMismatch { .. })
    ));
    cat.delete_stream(&sel, Some(&s2.version)).await.unwrap();
    assert!(matches!(
        cat.stream(&sel).await,
        Err(Error::NotFound { .. })
    ));

    // Channels.
    let c = cat.create_channel(channel("stand-1")).await.unwrap();
    assert!(matches!(
        cat.create_channel(channel("stand-1")).await,
        Err(Error::AlreadyExists { .. })
    ));
    let csel = Selector::Arn(c.arn.clone());
    let c2 = cat
        .update_channel(
            &csel,
            &c.version,
            ChannelUpdate {
                message_ttl_seconds: Some(120),
            },
        )
        .await
        .unwrap();
    assert_eq!(c2.message_ttl_seconds, 120);
    assert_eq!(
        cat.list_channels(Some("stand"), None, 10)
            .await
            .unwrap()
            .items,
        vec![c2.clone()]
    );
    cat.delete_channel(&csel, None).await.unwrap();
    assert!(matches!(
        cat.channel(&csel).await,
        Err(Error::NotFound { .. })
    ));

    // Concurrent creates of one name: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let cat = cat.clone();
        tasks.push(tokio::spawn(async move {
            cat.create_stream(stream("race")).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn sqlite_in_memory() {
    conformance(Arc::new(SqliteCatalog::in_memory().unwrap())).await;
}

#[tokio::test]
async fn sqlite_file_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cat = SqliteCatalog::open(dir.path()).unwrap();
    conformance(Arc::new(cat.clone())).await;
    drop(cat);
    let cat = SqliteCatalog::open(dir.path()).unwrap();
    assert!(cat.stream(&Selector::Name("cam_2".into())).await.is_ok());
    assert!(cat.stream(&Selector::Name("race".into())).await.is_ok());
}

#[cfg(feature = "postgres")]
#[path = "common/scaleout.rs"]
mod scaleout;

/// The same suite on PostgreSQL (a real server started by the test), then a second pool as a
/// second node or a restart would open it.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conformance_and_reopen() {
    use openkvs_store::{PgOptions, PgPool, PostgresCatalog};
    let Some(pg) = scaleout::Postgres::start_new() else {
        return;
    };
    let pool = PgPool::connect(&pg.url(), &PgOptions::default())
        .await
        .unwrap();
    conformance(Arc::new(PostgresCatalog::new(pool))).await;
    let pool = PgPool::connect(&pg.url(), &PgOptions::default())
        .await
        .unwrap();
    let cat = PostgresCatalog::new(pool);
    assert!(cat.stream(&Selector::Name("cam_2".into())).await.is_ok());
    assert!(cat.stream(&Selector::Name("race".into())).await.is_ok());
    // Bytewise name order whatever the database collation: '_' (0x5f) sorts after 'X' (0x58).
    let names: Vec<String> = cat
        .list_streams(Some("cam"), None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.name)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(names.iter().any(|n| n == "camX"), "{names:?}");
}
