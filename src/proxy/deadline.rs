//! A connection's deadline that moves with every request at the cost of a comparison: one timer
//! per connection, re-armed only when it fires before the deadline now in force (as nginx's
//! lazy timers). Invariant: `within` never lets a future run past the deadline last set (it may
//! wake once early, re-arm, and wait on); a deadline moved earlier re-arms the timer at once.
//!
//! Why: `tokio::time::timeout_at` per request inserts a timer into the runtime's wheel and
//! removes it again, under its lock, twice per proxied request on the fast lane (head read,
//! upstream exchange); that was the largest cost left in the lane after parsing (callgrind).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::time::{Instant, Sleep};

/// The deadline passed before the future finished.
#[derive(Debug, PartialEq, Eq)]
pub struct Elapsed;

pub struct Deadline {
    /// Armed at `at` or earlier: it fires early at worst, never late.
    timer: Pin<Box<Sleep>>,
    at: Instant,
}

impl Deadline {
    /// A deadline at `at` (one allocation, for the connection's lifetime).
    pub fn new(at: Instant) -> Deadline {
        Deadline {
            timer: Box::pin(tokio::time::sleep_until(at)),
            at,
        }
    }

    /// Moves the deadline. Later: no timer operation (the timer re-arms when it fires early);
    /// earlier: the timer is re-armed now, so it cannot fire late.
    pub fn set(&mut self, at: Instant) {
        if at < self.timer.deadline() {
            self.timer.as_mut().reset(at);
        }
        self.at = at;
    }

    /// Ready once the deadline in force has passed.
    fn poll_passed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            if Instant::now() >= self.at {
                return Poll::Ready(());
            }
            // Fired for an earlier deadline since moved on: wait for the one in force.
            let at = self.at;
            self.timer.as_mut().reset(at);
        }
    }

    /// As `tokio::time::timeout_at(self.at, f)`: `f` first, then the deadline.
    pub async fn within<F: Future>(&mut self, f: F) -> Result<F::Output, Elapsed> {
        let mut f = std::pin::pin!(f);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = f.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            self.poll_passed(cx).map(|()| Err(Elapsed))
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_later_is_kept_and_one_moved_earlier_fires_on_time() {
        let start = Instant::now();
        let mut d = Deadline::new(start + Duration::from_secs(10));
        // Moved later: the timer still fires at 10 s, is re-armed, and the wait goes on to 25 s.
        d.set(start + Duration::from_secs(25));
        let r = d.within(std::future::pending::<()>()).await;
        assert_eq!(r, Err(Elapsed));
        assert_eq!(Instant::now() - start, Duration::from_secs(25));

        // Moved earlier than the armed timer: fires at the earlier time, not the later one.
        let now = Instant::now();
        d.set(now + Duration::from_secs(60));
        d.set(now + Duration::from_secs(5));
        assert_eq!(d.within(std::future::pending::<()>()).await, Err(Elapsed));
        assert_eq!(Instant::now() - now, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_that_finishes_in_time_gives_its_output_and_keeps_the_deadline() {
        let start = Instant::now();
        let mut d = Deadline::new(start + Duration::from_secs(3));
        let v = d
            .within(async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                7
            })
            .await;
        assert_eq!(v, Ok(7));
        // The same deadline still holds for what follows: 1 s left, not 3.
        let later = d.within(tokio::time::sleep(Duration::from_secs(2))).await;
        assert_eq!(later, Err(Elapsed));
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_passed_refuses_a_pending_future_at_once() {
        let mut d = Deadline::new(Instant::now());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(d.within(std::future::pending::<()>()).await, Err(Elapsed));
        // A ready future still wins, as with `timeout_at`.
        assert_eq!(d.within(async { 1 }).await, Ok(1));
    }
}
