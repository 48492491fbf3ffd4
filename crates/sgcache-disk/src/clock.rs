//! Injectable time source. Trim, markUsed and the mtimes written by puts all read the clock, so
//! tests can replay Go's `TestCacheTrim` timeline exactly.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// Whether [`Clock::now`] is the operating system's wall clock. A file just written then
    /// already carries "now" as its mtime (the kernel stamps every write), so puts skip
    /// setting it again: one `utimensat` less per output and per index entry (~1 700 per
    /// fresh `go build std`). Go sets it anyway, "mainly for tests" (`putIndexEntry`).
    fn is_wall_clock(&self) -> bool {
        false
    }
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
    fn is_wall_clock(&self) -> bool {
        true
    }
}

/// A clock that only moves when told to (for tests of time-dependent behaviour).
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    /// A clock showing `unix_secs` seconds after the epoch.
    pub fn at_unix(unix_secs: u64) -> Self {
        ManualClock(Mutex::new(UNIX_EPOCH + Duration::from_secs(unix_secs)))
    }
    /// Sets the time.
    pub fn set(&self, t: SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }
    /// Sets the time to `unix_secs` seconds after the epoch.
    pub fn set_unix(&self, unix_secs: u64) {
        self.set(UNIX_EPOCH + Duration::from_secs(unix_secs));
    }
    /// Moves the time forward.
    pub fn advance(&self, d: Duration) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *g += d;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Unix nanoseconds of `t` (negative before the epoch, saturating at the i64 range).
pub fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// Go's `time.Unix()`: whole seconds, rounded toward negative infinity.
pub fn unix_secs(t: SystemTime) -> i64 {
    unix_nanos(t).div_euclid(1_000_000_000)
}

/// `a - b` in signed nanoseconds.
pub(crate) fn signed_diff_nanos(a: SystemTime, b: SystemTime) -> i128 {
    match a.duration_since(b) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}
