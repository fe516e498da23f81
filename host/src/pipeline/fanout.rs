//! An event routed to several targets ends when the last of them has ended it: each target's
//! copy of the slot shares one [`Fanout`], and the target that ends it last reports the event,
//! with the worst of the targets' endings ([`Ended::worst`]). Until then its position is not
//! acknowledged, so a target that is down holds back the source's commit, never the other
//! targets' deliveries.

use crate::observe::counters::Ended;
use std::sync::Mutex;

#[derive(Debug)]
pub(crate) struct Fanout {
    /// Targets still to end the event, and the worst ending so far.
    state: Mutex<(usize, Option<Ended>)>,
}

impl Fanout {
    /// An event going to `targets` targets.
    pub(crate) fn new(targets: usize) -> Self {
        Fanout {
            state: Mutex::new((targets, None)),
        }
    }

    /// One target ended it so; `Some` (how the event ended) if that was the last one.
    pub(crate) fn end(&self, how: Ended) -> Option<Ended> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (left, worst) = &mut *state;
        *worst = Some(worst.map_or(how, |w| w.worst(how)));
        *left = left.saturating_sub(1);
        match *left {
            0 => *worst,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_target_reports_the_worst_ending() {
        let f = Fanout::new(3);
        assert_eq!(f.end(Ended::Delivered), None);
        assert_eq!(f.end(Ended::DeadLettered), None);
        assert_eq!(f.end(Ended::Delivered), Some(Ended::DeadLettered));
        let f = Fanout::new(2);
        assert_eq!(f.end(Ended::Released), None);
        assert_eq!(f.end(Ended::Dropped), Some(Ended::Released));
    }
}
