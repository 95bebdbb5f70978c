//! The retention task: deletes fragments older than each stream's `DataRetentionInHours`.

use std::time::Duration;

use crate::{AppState, now_ms};

/// How often the task runs. KVS does not promise to-the-second deletion either; a minute keeps
/// the catalog scan negligible even with thousands of streams.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(60);

/// One pass over all streams; returns how many fragments were deleted.
pub async fn expire_once(st: &AppState) -> store::Result<u64> {
    let now = now_ms();
    let mut after: Option<String> = None;
    let mut deleted = 0;
    loop {
        let page = st.catalog.list_streams(None, after.as_deref(), 500).await?;
        for s in &page.items {
            if s.data_retention_hours == 0 {
                continue;
            }
            let cutoff = now - i64::from(s.data_retention_hours) * 3_600_000;
            match st.fragments.expire(&s.arn, cutoff).await {
                Ok(n) if n > 0 => {
                    tracing::info!(stream = %s.name, fragments = n, retention_hours = s.data_retention_hours, "expired old fragments");
                    deleted += n;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(stream = %s.name, error = %e, "retention pass failed for a stream")
                }
            }
        }
        match page.next_after {
            Some(a) => after = Some(a),
            None => return Ok(deleted),
        }
    }
}

/// Runs [`expire_once`] every [`RETENTION_INTERVAL`] until the process ends.
pub async fn run(st: AppState) {
    let mut tick = tokio::time::interval(RETENTION_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(e) = expire_once(&st).await {
            tracing::error!(error = %e, "retention pass failed");
        }
    }
}
