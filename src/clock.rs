//! Time comes from a `Clock`, so SLA, expiry and lease timeouts are tested without sleeping.

use crate::model::Time;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub trait Clock: Send + Sync {
    fn now(&self) -> Time;
}

/// The wall clock, to the millisecond (what the stores keep).
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        from_ms(Utc::now().timestamp_millis())
    }
}

/// A clock that moves only when told to.
#[derive(Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(start: Time) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.timestamp_millis())))
    }
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
    pub fn set(&self, t: Time) {
        self.0.store(t.timestamp_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        from_ms(self.0.load(Ordering::SeqCst))
    }
}

pub fn from_ms(ms: i64) -> Time {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}
