//! Bounded polling. Every wait in the tests has a deadline; a timeout reports what was
//! awaited and the last thing observed.

use std::time::{Duration, Instant};

use anyhow::anyhow;

/// Deadline for things that normally take well under a second (generous for a loaded
/// 2-core CI machine).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls `probe` until it returns `Ok`, at most until `timeout` has passed. `Err` means
/// "not yet" and its text is reported if the deadline passes.
pub fn wait_until<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        match probe() {
            Ok(value) => return Ok(value),
            Err(err) if start.elapsed() >= timeout => {
                return Err(anyhow!(
                    "timed out after {:.1}s waiting for {what}; last observation: {err:#}",
                    start.elapsed().as_secs_f64()
                ));
            }
            Err(_) => {}
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// Asserts that `probe` keeps returning `Ok` for the whole `duration` (used for "stays
/// ready", "never connects" checks). Returns the first failure.
pub fn holds_for(
    duration: Duration,
    what: &str,
    mut probe: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < duration {
        probe().map_err(|err| {
            anyhow!(
                "{what} stopped holding after {:.1}s: {err:#}",
                start.elapsed().as_secs_f64()
            )
        })?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_first_success() {
        let mut calls = 0;
        let value = wait_until(Duration::from_secs(5), "third call", || {
            calls += 1;
            if calls < 3 {
                Err(anyhow!("call {calls}"))
            } else {
                Ok(calls)
            }
        })
        .unwrap();
        assert_eq!(value, 3);
    }

    #[test]
    fn times_out_with_last_observation() {
        let err = wait_until(
            Duration::from_millis(100),
            "never",
            || -> anyhow::Result<()> { Err(anyhow!("still no")) },
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("waiting for never"), "{text}");
        assert!(text.contains("still no"), "{text}");
    }

    #[test]
    fn holds_for_reports_failure() {
        let mut calls = 0;
        let err = holds_for(Duration::from_secs(5), "stable", || {
            calls += 1;
            if calls > 2 {
                Err(anyhow!("broke"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("broke"));
    }
}
