//! Progress bars for long commands, drawn on stderr only when it is a terminal (indicatif
//! hides them otherwise), so piped or redirected output stays clean.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use std::io::Write;
use std::time::{Duration, Instant};
use trellis_rpc::Backend;

/// A bar counting `len` steps of `what` (e.g. "files hashed").
pub fn bar(len: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg:>18} [{bar:32}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what);
    bar
}

/// The bar a running node draws (the start-up sync), if any: log lines are written with it
/// suspended, so that they never interleave with its redraws.
static LOG_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn set_log_bar(bar: Option<ProgressBar>) {
    *LOG_BAR.lock() = bar;
}

/// Where the node's logs go: stderr, around the bar of [`LOG_BAR`].
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // The formatter writes one event per call.
        let bar = LOG_BAR.lock().clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

/// How far a node that started behind has caught up, in the chain's time: from the block it
/// had at start-up (`start_age_ms` old then) to the clock, `elapsed_ms` later, when its
/// committed block is `age_ms` old. `None` once it is within `ready_ms` of the clock.
fn sync_position(
    start_age_ms: u64,
    elapsed_ms: u64,
    age_ms: u64,
    ready_ms: u64,
) -> Option<(u64, u64)> {
    if age_ms <= ready_ms {
        return None;
    }
    let len = start_age_ms + elapsed_ms;
    Some((len.saturating_sub(age_ms), len))
}

/// While a node starts more than [`trellis_rpc::rest::SYNCING_BEHIND_MS`] behind the clock (it
/// was offline, or joins an older chain), draws a bar of the chain time caught up, with the
/// committed height, until it is within that margin (when `/health/ready` says it is). Nothing
/// is drawn for a node that starts up to date, or when stderr is not a terminal.
pub async fn show_sync<B: Backend>(chain: B) {
    let ready = trellis_rpc::rest::SYNCING_BEHIND_MS;
    let start = chain.health();
    if start.block_age_ms <= ready {
        return;
    }
    let started = Instant::now();
    let bar = ProgressBar::with_draw_target(
        Some(start.block_age_ms / 1000),
        ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>24} [{bar:32}] {percent}% of the chain time, eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    set_log_bar(Some(bar.clone()));
    /// Clears the bar and stops suspending logs for it however the task ends (caught up, or
    /// aborted at shutdown).
    struct Cleared(ProgressBar);
    impl Drop for Cleared {
        fn drop(&mut self) {
            self.0.finish_and_clear();
            set_log_bar(None);
        }
    }
    let cleared = Cleared(bar.clone());
    loop {
        let h = chain.health();
        let elapsed = started.elapsed().as_millis() as u64;
        match sync_position(start.block_age_ms, elapsed, h.block_age_ms, ready) {
            None => break,
            Some((pos, len)) => {
                bar.set_length(len / 1000);
                bar.set_position(pos / 1000);
                bar.set_message(match h.peers {
                    Some(0) if h.validators > 1 => format!("block {}, no peers yet", h.height),
                    _ => format!("syncing block {}", h.height),
                });
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(cleared);
    let h = chain.health();
    tracing::info!(
        height = h.height,
        blocks = h.height.saturating_sub(start.height),
        seconds = started.elapsed().as_secs(),
        "caught up with the chain"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_position_counts_chain_time_caught_up_against_a_moving_clock() {
        // Started an hour behind; 10 s later the committed block is 30 min old.
        assert_eq!(
            sync_position(3_600_000, 10_000, 1_800_000, 30_000),
            Some((1_810_000, 3_610_000))
        );
        // No block committed yet: nothing caught up, and the distance grows with the clock.
        assert_eq!(
            sync_position(3_600_000, 10_000, 3_610_000, 30_000),
            Some((0, 3_610_000))
        );
        // Within the readiness margin: done.
        assert_eq!(sync_position(3_600_000, 60_000, 30_000, 30_000), None);
    }
}
