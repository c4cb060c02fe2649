//! The download decisions as pure functions on data: which sources to try in which order, when the registry may be asked, when to pause, when a silent parent is still worth waiting for.
//! It must not do I/O or read a clock: the fetcher (`download.rs`) and the fleet simulation (`benches/sim`) both drive it, so what the simulation measures is what the fetcher does.

use std::time::Duration;

/// A stalled parent that has this many more bytes than it sent us is not waiting upstream.
pub const STALL_SLACK: u64 = 2 << 20;
/// Passes over all sources before a download gives up (with a growing pause between).
pub const ROUNDS: u32 = 5;
/// The first round in which a node that has earlier-ranked peers may ask the registry.
pub const REGISTRY_ROUND: u32 = 2;
/// How long a peer gets to answer a status question.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a peer gets to say whether it has a blob complete.
pub const COMPLETE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a peer gets to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause before round `r` is `r` times this.
pub const ROUND_PAUSE: Duration = Duration::from_millis(300);

/// Where bytes may come from, best first; `P` names a peer (a `Peer` in the fetcher, an index
/// in the simulation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source<P> {
    /// A peer ranked earlier: asking it makes it download too, so the tree fills top-down.
    Upstream(P),
    /// Any peer that already has the complete blob.
    AnyComplete,
    Registry,
}

/// A node's sources: its upstream positions in the distribution (`Tree::upstream`: ancestors
/// nearest first, then the other earlier ones), those `usable` says may be asked, then any
/// complete peer, then the registry.
pub fn plan(
    upstream: impl Iterator<Item = usize>,
    usable: impl Fn(usize) -> bool,
) -> Vec<Source<usize>> {
    upstream
        .filter(|&r| usable(r))
        .map(Source::Upstream)
        .chain([Source::AnyComplete, Source::Registry])
        .collect()
}

/// What the filler does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Pull from source `i` of the plan, resuming at the bytes already written.
    Pull(usize),
    /// Source `i` is the registry: pull from it unless an upstream peer answers that it is
    /// getting the blob (then a hiccup of ours must not become a second registry pull).
    RegistryUnlessUpstreamGetting(usize),
    /// Source `i` is the registry, in a round before [`REGISTRY_ROUND`]: pull from it only if
    /// every upstream peer is known gone or idle ([`UpstreamAnswer::Gone`]). A crashed root's
    /// child need not sit out the rounds' pauses while the whole tree below it waits; a parent
    /// that merely answers slowly still gets its rounds.
    RegistryIfUpstreamGone(usize),
    /// Wait this long before the next round.
    Pause(Duration),
    /// Every round is spent: the download fails with the last source's error.
    Exhausted,
}

/// The order in which one download attempt walks its plan: `ROUNDS` passes over the sources,
/// a growing pause between passes, the registry held back while earlier-ranked peers may still
/// serve (a loaded parent may just be slow to answer), and the final pass going to the registry
/// whatever.
#[derive(Debug, Clone)]
pub struct FillSchedule {
    registry: Option<usize>,
    has_upstream: bool,
    len: usize,
    round: u32,
    next: usize,
    paused: bool,
}

impl FillSchedule {
    pub fn new<P>(plan: &[Source<P>]) -> Self {
        Self {
            registry: plan.iter().position(|s| matches!(s, Source::Registry)),
            has_upstream: plan.iter().any(|s| matches!(s, Source::Upstream(_))),
            len: plan.len(),
            round: 0,
            next: 0,
            paused: true,
        }
    }

    /// The round the schedule is in (0-based).
    pub fn round(&self) -> u32 {
        self.round
    }

    pub fn next_step(&mut self) -> Step {
        loop {
            if self.round >= ROUNDS {
                return Step::Exhausted;
            }
            if self.next >= self.len {
                self.round += 1;
                self.next = 0;
                self.paused = false;
                continue;
            }
            if !self.paused {
                self.paused = true;
                return Step::Pause(ROUND_PAUSE * self.round);
            }
            let i = self.next;
            self.next += 1;
            if Some(i) != self.registry {
                return Step::Pull(i);
            }
            let last_round = self.round + 1 >= ROUNDS;
            if last_round || !self.has_upstream {
                return Step::Pull(i);
            }
            return if self.round >= REGISTRY_ROUND {
                Step::RegistryUnlessUpstreamGetting(i)
            } else {
                Step::RegistryIfUpstreamGone(i)
            };
        }
    }
}

/// What a parent said about its own download when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamState {
    pub running: bool,
    pub written: u64,
}

/// What one upstream peer said when asked whether it is getting the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAnswer {
    /// It is downloading the blob or has it complete.
    Getting,
    /// It answered that it is not, or refused the connection (its fetcher is not running).
    NotGetting,
    /// No answer in time: it may be alive and loaded, or gone.
    Silent,
}

/// What the upstream peers said, taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamAnswer {
    /// At least one is getting the blob: the registry must wait.
    Getting,
    /// Every one answered that it is not, or refused: nobody upstream will bring the blob.
    Gone,
    /// None is getting it as far as anyone said, but some did not answer.
    Unsure,
    /// There was no upstream peer to ask.
    NoneToAsk,
}

impl UpstreamAnswer {
    /// The answers of all upstream peers, taken together.
    pub fn of(answers: impl IntoIterator<Item = PeerAnswer>) -> Self {
        let mut all = Self::NoneToAsk;
        for answer in answers {
            all = match (answer, all) {
                (PeerAnswer::Getting, _) | (_, Self::Getting) => return Self::Getting,
                (PeerAnswer::Silent, _) | (_, Self::Unsure) => Self::Unsure,
                (PeerAnswer::NotGetting, _) => Self::Gone,
            };
        }
        all
    }

    /// Whether `step`, a registry step, may go to the registry after this answer.
    pub fn lets_registry(self, step: Step) -> bool {
        match step {
            Step::RegistryUnlessUpstreamGetting(_) => self != Self::Getting,
            Step::RegistryIfUpstreamGone(_) => matches!(self, Self::Gone | Self::NoneToAsk),
            _ => true,
        }
    }
}

/// Whether a child whose parent sent nothing for a stall timeout keeps waiting: yes when the
/// parent is alive, still downloading and has not much more than it sent (it is itself waiting
/// upstream, and its own stall handling re-parents it, so its children must not stampede).
pub fn keeps_waiting(parent: Option<UpstreamState>, have: u64) -> bool {
    matches!(parent, Some(s) if s.running && s.written <= have.saturating_add(STALL_SLACK))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranking::Tree;

    fn steps(plan: &[Source<usize>]) -> Vec<Step> {
        let mut s = FillSchedule::new(plan);
        let mut out = Vec::new();
        loop {
            let step = s.next_step();
            out.push(step);
            if step == Step::Exhausted {
                return out;
            }
        }
    }

    #[test]
    fn the_root_goes_to_the_registry_at_once_and_retries_it_every_round() {
        let plan = plan(Tree::flat(1).upstream(0), |_| true);
        assert_eq!(plan, vec![Source::AnyComplete, Source::Registry]);
        let s = steps(&plan);
        assert_eq!(&s[..2], &[Step::Pull(0), Step::Pull(1)]);
        assert_eq!(
            s.iter().filter(|s| **s == Step::Pull(1)).count(),
            ROUNDS as usize
        );
    }

    #[test]
    fn a_child_holds_the_registry_back_then_asks_whether_upstream_is_getting_it() {
        let plan = plan(Tree::flat(1).upstream(2), |_| true);
        assert_eq!(
            plan,
            vec![
                Source::Upstream(1),
                Source::Upstream(0),
                Source::AnyComplete,
                Source::Registry
            ]
        );
        let s = steps(&plan);
        let registry: Vec<(usize, Step)> = s
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Step::Pull(3) | Step::RegistryUnlessUpstreamGetting(3)))
            .map(|(i, s)| (i, *s))
            .collect();
        let early: Vec<Step> = s
            .iter()
            .filter(|s| matches!(s, Step::RegistryIfUpstreamGone(3)))
            .copied()
            .collect();
        // Rounds 0 and 1 go only if upstream is gone; rounds 2 and 3 unless upstream is
        // getting it; round 4 pulls whatever.
        assert_eq!(early.len(), REGISTRY_ROUND as usize);
        assert_eq!(registry.len(), (ROUNDS - REGISTRY_ROUND) as usize);
        assert!(matches!(registry.last().unwrap().1, Step::Pull(3)));
        assert!(registry[..registry.len() - 1]
            .iter()
            .all(|(_, s)| matches!(s, Step::RegistryUnlessUpstreamGetting(3))));
        assert_eq!(s[0], Step::Pull(0), "the parent first");
        let pauses: Vec<Duration> = s
            .iter()
            .filter_map(|s| match s {
                Step::Pause(d) => Some(*d),
                _ => None,
            })
            .collect();
        assert_eq!(
            pauses,
            (1..ROUNDS).map(|r| ROUND_PAUSE * r).collect::<Vec<_>>()
        );
        assert_eq!(*s.last().unwrap(), Step::Exhausted);
    }

    #[test]
    fn an_early_registry_step_needs_every_upstream_peer_gone() {
        use PeerAnswer::*;
        let early = Step::RegistryIfUpstreamGone(3);
        let later = Step::RegistryUnlessUpstreamGetting(3);
        let gone = UpstreamAnswer::of([NotGetting, NotGetting]);
        assert_eq!(gone, UpstreamAnswer::Gone);
        assert!(gone.lets_registry(early) && gone.lets_registry(later));
        let unsure = UpstreamAnswer::of([NotGetting, Silent, NotGetting]);
        assert_eq!(unsure, UpstreamAnswer::Unsure);
        assert!(
            !unsure.lets_registry(early),
            "a slow parent gets its rounds"
        );
        assert!(unsure.lets_registry(later));
        let getting = UpstreamAnswer::of([Silent, Getting, NotGetting]);
        assert_eq!(getting, UpstreamAnswer::Getting);
        assert!(!getting.lets_registry(early) && !getting.lets_registry(later));
        assert_eq!(UpstreamAnswer::of([]), UpstreamAnswer::NoneToAsk);
        assert!(UpstreamAnswer::of([]).lets_registry(early));
    }

    #[test]
    fn unusable_peers_are_left_out_of_the_plan() {
        let plan = plan(Tree::flat(1).upstream(3), |r| r != 2);
        assert_eq!(plan[0], Source::Upstream(1));
        assert!(!plan.contains(&Source::Upstream(2)));
    }

    #[test]
    fn a_silent_parent_is_waited_for_only_while_it_waits_upstream_itself() {
        let have = 10 << 20;
        let waiting = UpstreamState {
            running: true,
            written: have + STALL_SLACK,
        };
        assert!(keeps_waiting(Some(waiting), have));
        let sitting_on_bytes = UpstreamState {
            written: have + STALL_SLACK + 1,
            ..waiting
        };
        assert!(!keeps_waiting(Some(sitting_on_bytes), have));
        let finished = UpstreamState {
            running: false,
            ..waiting
        };
        assert!(!keeps_waiting(Some(finished), have));
        assert!(!keeps_waiting(None, have), "a parent that does not answer");
    }
}
