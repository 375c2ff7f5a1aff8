//! What the engine keeps per entity, for the engine's whole life: the committed token, the
//! lane flag and queue, the budget, spike-detection state and counters, laid out so that an
//! idle entity stays small.

use std::collections::VecDeque;

use super::types::{Counters, OpId};
use crate::backoff::Bucket;

/// One field of [`Counters`]. Updates name the field they move, so that an entity can keep
/// the counters most entities never move out of line (see [`Entity::counter_mut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counter {
    Submitted,
    Committed,
    GaveUp,
    Reads,
    Writes,
    Conflicts,
    Retries,
    BudgetRefusals,
    StaleRevisions,
    LaneWaits,
    LaneWaitMs,
    Spikes,
    StoreOps,
}

impl Counter {
    const ALL: [Counter; 13] = [
        Counter::Submitted,
        Counter::Committed,
        Counter::GaveUp,
        Counter::Reads,
        Counter::Writes,
        Counter::Conflicts,
        Counter::Retries,
        Counter::BudgetRefusals,
        Counter::StaleRevisions,
        Counter::LaneWaits,
        Counter::LaneWaitMs,
        Counter::Spikes,
        Counter::StoreOps,
    ];
}

/// The [`Counter`]s before this one are moved by nearly every write.
const FIRST_RARE: usize = Counter::Conflicts as usize;
const COUNTERS: usize = Counter::ALL.len();

impl Counters {
    pub(super) fn field_mut(&mut self, which: Counter) -> &mut u64 {
        match which {
            Counter::Submitted => &mut self.submitted,
            Counter::Committed => &mut self.committed,
            Counter::GaveUp => &mut self.gave_up,
            Counter::Reads => &mut self.reads,
            Counter::Writes => &mut self.writes,
            Counter::Conflicts => &mut self.conflicts,
            Counter::Retries => &mut self.retries,
            Counter::BudgetRefusals => &mut self.budget_refusals,
            Counter::StaleRevisions => &mut self.stale_revisions,
            Counter::LaneWaits => &mut self.lane_waits,
            Counter::LaneWaitMs => &mut self.lane_wait_ms,
            Counter::Spikes => &mut self.spikes,
            Counter::StoreOps => &mut self.store_ops,
        }
    }
}

/// What the engine keeps per entity for the engine's whole life. Entities are never
/// forgotten, so an idle one must be small: what only contended, conflicting or shared-lane
/// entities need lives in `extra`. The name is kept by [`crate::entities::Entities`].
#[derive(Debug, Default)]
pub(super) struct Entity {
    /// The last committed token; a boxed `str` since it is replaced, never grown.
    pub(super) committed: Option<Box<str>>,
    /// A write holds the lane; which one is never asked (that op has `holds_lane`).
    pub(super) busy: bool,
    /// The entity's own budget, when the policy gives entities one.
    pub(super) bucket: Option<Bucket>,
    /// The counters before [`FIRST_RARE`], in [`Counter`] order.
    pub(super) hot: [u64; FIRST_RARE],
    /// Allocated when first needed; see [`EntityExtra`].
    pub(super) extra: Option<Box<EntityExtra>>,
}

/// The state of an entity that has been contended, has conflicted or is written through
/// shared lanes.
#[derive(Debug, Default)]
pub(super) struct EntityExtra {
    /// Writes waiting for the lane. Its buffer is freed when it drains, so a burst of
    /// writers long past does not stay in memory.
    pub(super) queue: VecDeque<OpId>,
    /// Spike-detection state, allocated at the entity's first conflict when spike
    /// detection is on.
    pub(super) spike: Option<Box<SpikeState>>,
    /// The counters from [`FIRST_RARE`] on, in [`Counter`] order.
    pub(super) rare: [u64; COUNTERS - FIRST_RARE],
}

impl EntityExtra {
    /// Give a drained queue's buffer back (see `queue`).
    pub(super) fn free_drained_queue(&mut self) {
        if self.queue.is_empty() {
            self.queue = VecDeque::new();
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct SpikeState {
    /// Conflict times inside the spike window, oldest first.
    pub(super) recent_conflicts: VecDeque<u64>,
    pub(super) cooling_until: Option<u64>,
}

impl Entity {
    pub(super) fn extra(&mut self) -> &mut EntityExtra {
        self.extra.get_or_insert_with(Box::default)
    }

    pub(super) fn cooling_until(&self) -> Option<u64> {
        self.extra.as_ref()?.spike.as_ref()?.cooling_until
    }

    pub(super) fn spike_mut(&mut self) -> Option<&mut SpikeState> {
        self.extra.as_mut()?.spike.as_deref_mut()
    }

    pub(super) fn queued(&self) -> usize {
        self.extra.as_ref().map_or(0, |x| x.queue.len())
    }

    /// The first waiting write, taken off the queue.
    pub(super) fn pop_waiting(&mut self) -> Option<OpId> {
        let extra = self.extra.as_mut()?;
        let next = extra.queue.pop_front();
        extra.free_drained_queue();
        next
    }

    pub(super) fn remove_waiting(&mut self, id: OpId) {
        let Some(extra) = self.extra.as_mut() else {
            return;
        };
        extra.queue.retain(|&q| q != id);
        extra.free_drained_queue();
    }

    pub(super) fn counter_mut(&mut self, which: Counter) -> &mut u64 {
        let i = which as usize;
        match i.checked_sub(FIRST_RARE) {
            None => &mut self.hot[i],
            Some(rare) => &mut self.extra().rare[rare],
        }
    }

    pub(super) fn counters(&self) -> Counters {
        let rare = self
            .extra
            .as_ref()
            .map_or([0; COUNTERS - FIRST_RARE], |x| x.rare);
        let mut counters = Counters::default();
        for (&which, n) in Counter::ALL.iter().zip(self.hot.into_iter().chain(rare)) {
            *counters.field_mut(which) = n;
        }
        counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn an_entity_reports_each_counter_where_the_engine_does() {
        for (i, &which) in Counter::ALL.iter().enumerate() {
            assert_eq!(which as usize, i);
            let mut entity = Entity::default();
            let mut global = Counters::default();
            *entity.counter_mut(which) += 7;
            *global.field_mut(which) += 7;
            assert_eq!(entity.counters(), global);
            assert_eq!(entity.extra.is_some(), i >= FIRST_RARE);
        }
    }
}
