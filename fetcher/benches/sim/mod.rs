//! The fleet simulator shared by `--bench fleet` (fleet-scale tables) and `--bench p2p` (the same scenario as each namespace run, side by side): a discrete-event model of links, hops, zones and failures driving the fetcher's own ranking, tree, plan, fill schedule, stall rule and forwarding chunk.
//! It must not re-decide what the fetcher decides: every choice of source comes from `ranking` and `schedule`; it models only time and bytes.
//!
//! The model: every node's link carries `rate` each way, shared equally by the flows open on it;
//! a hop forwards in the fetcher's upload chunks (`serve::CHUNK`) and each chunk pays the hop's
//! one-way latency (more across zones); a source sends only bytes it has. A killed node's
//! connections reset at once (a crash) or go silent (a vanished node, found by the stall
//! timeout). Sources are tried, resumed, waited for and given up on exactly as `schedule` says.
#![allow(dead_code)]

use classcache_core::digest::Digest;
use classcache_core::fetcher::stripes::Stripes;
use classcache_fetcher::ranking::{self, Member, Tree};
use classcache_fetcher::schedule::{
    self, FillSchedule, PeerAnswer, Source, Step, UpstreamAnswer, UpstreamState,
};
use classcache_fetcher::serve::CHUNK;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// How a killed node's peers find out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// The process died: its connections reset, peers move on after one round trip.
    Crash,
    /// The node vanished: nothing answers; peers wait out timeouts.
    Vanish,
}

#[derive(Debug, Clone)]
pub struct Params {
    pub nodes: usize,
    pub size: u64,
    /// Bytes per second, each way, per node (and the registry's egress).
    pub rate: f64,
    pub registry_rate: f64,
    /// One-way latency within a zone and across zones, seconds.
    pub latency: f64,
    pub cross_latency: f64,
    /// Zone of each node (index into zone names).
    pub zones: Vec<u16>,
    /// A zone behind a shaped link of this rate each way (the lab's zone b).
    pub shaped_zone: Option<(u16, f64)>,
    /// The registry's zone, when crossing into it counts (the lab's proxy sits in zone a).
    pub registry_zone: Option<u16>,
    pub fanout: usize,
    /// Stripes, each down its own tree of fanout `stripes` (1: one stream, fanout `fanout`).
    pub stripes: usize,
    pub zone_aware: bool,
    pub stall: f64,
    pub upload_cap: usize,
    pub max_hops: u32,
    /// Nodes killed at random moments in `kill_window` (fractions of the physical limit).
    pub kills: usize,
    pub kill_window: (f64, f64),
    pub failure: Failure,
    /// Nodes' own requests arrive uniformly within this many seconds.
    pub start_spread: f64,
    /// From a node's own request to its blob download: the manifest and config from the
    /// registry first (a peer's request for the blob starts the download at once).
    pub manifest_delay: f64,
    /// Unpack, verify, fsync and publish after the blob is complete, seconds.
    pub tail: f64,
    pub seed: u64,
    /// The blob's digest (what ranks the nodes); None: one made from the seed.
    pub digest: Option<Digest>,
    /// Kills at given moments (seconds, node), on top of the random `kills`.
    pub kill_plan: Vec<(f64, usize)>,
}

impl Params {
    pub fn limit(&self) -> f64 {
        self.size as f64 / self.rate
    }
}

/// SplitMix64: deterministic per seed, so a row can be rerun exactly.
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    /// A node's download starts (its own request, or a peer's).
    Start {
        node: usize,
        hops: u32,
    },
    /// A lane takes its schedule's next step.
    Step(Lane),
    Arrive {
        flow: usize,
        upto: u64,
    },
    Stall(usize),
    Kill(usize),
}

/// One stripe's download at one node.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Lane {
    node: usize,
    stripe: usize,
}

struct Queued {
    t: f64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    /// Earliest first out of a max-heap; ties in insertion order.
    fn cmp(&self, o: &Self) -> Ordering {
        o.t.total_cmp(&self.t).then(o.seq.cmp(&self.seq))
    }
}

/// Arrivals a lane remembers; a child lags its parent by a chunk or two, rarely more.
const RECENT: usize = 8;

#[derive(Default, Clone)]
struct LaneState {
    /// Position in the stripe's order.
    pos: usize,
    /// Bytes of the stripe this node has, from the stripe's start.
    have: u64,
    /// The last few (bytes had, since when): when the bytes a child asks for came in.
    recent: std::collections::VecDeque<(u64, f64)>,
    done: bool,
    failed: bool,
    schedule: Option<FillSchedule>,
    flow: Option<usize>,
    /// Flows from this lane waiting for bytes it does not have yet.
    waiters: Vec<usize>,
}

#[derive(Default, Clone)]
struct Node {
    alive: bool,
    started: bool,
    hops: u32,
    done_at: Option<f64>,
    lanes_done: usize,
    /// Open flows out of and into this node: its link is shared among them.
    uploads: usize,
    downloads: usize,
    uploaded: u64,
    lanes: Vec<LaneState>,
}

struct Flow {
    /// None: the registry.
    src: Option<usize>,
    dst: Lane,
    open: bool,
    in_flight: bool,
    /// When the sender is free for the next chunk.
    busy_until: f64,
    last_byte: f64,
    latency: f64,
    /// Crosses the shaped zone link, into the zone (true) or out of it (false).
    shaped: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub last: f64,
    pub p50: f64,
    pub p99: f64,
    pub registry_copies: f64,
    pub max_upload_copies: f64,
    pub cross_copies: f64,
    pub max_zone_entry_copies: f64,
    pub failed: usize,
    pub survivors: usize,
}

struct Sim<'a> {
    p: &'a Params,
    tree: Tree,
    /// Per stripe: the node at each position of the stripe's order.
    at: Vec<Vec<usize>>,
    /// Per stripe: its byte range.
    layout: Stripes,
    nodes: Vec<Node>,
    flows: Vec<Flow>,
    queue: BinaryHeap<Queued>,
    seq: u64,
    now: f64,
    registry_flows: usize,
    shaped_flows: [usize; 2],
    registry_bytes: u64,
    cross_bytes: u64,
    zone_entry: Vec<u64>,
}

impl<'a> Sim<'a> {
    fn new(p: &'a Params, digest: &Digest) -> Self {
        let ids: Vec<String> = (0..p.nodes).map(|i| format!("node-{i}")).collect();
        let zone_names: Vec<String> = (0..=*p.zones.iter().max().unwrap_or(&0))
            .map(|z| format!("zone-{z}"))
            .collect();
        let members = ids.iter().enumerate().map(|(i, id)| Member {
            id,
            zone: Some(zone_names[p.zones[i] as usize].as_str()),
        });
        // The fetcher's own cut: the same count and ranges every node computes.
        let layout = Stripes::new(p.size, p.stripes, p.nodes);
        let stripes = layout.count();
        let fanout = if stripes > 1 { stripes } else { p.fanout };
        let dist = ranking::distribution(digest, members, fanout, p.zone_aware);
        let node_of: Vec<usize> = dist
            .order
            .iter()
            .map(|id| id["node-".len()..].parse().unwrap())
            .collect();
        let at: Vec<Vec<usize>> = (0..stripes)
            .map(|j| {
                let order = if stripes > 1 {
                    dist.stripe_order(j, stripes)
                } else {
                    (0..p.nodes).collect()
                };
                order.into_iter().map(|at| node_of[at]).collect()
            })
            .collect();
        let mut nodes = vec![
            Node {
                alive: true,
                lanes: vec![LaneState::default(); stripes],
                ..Node::default()
            };
            p.nodes
        ];
        for (j, order) in at.iter().enumerate() {
            for (pos, &n) in order.iter().enumerate() {
                nodes[n].lanes[j].pos = pos;
            }
        }
        Sim {
            p,
            tree: dist.tree,
            at,
            layout,
            nodes,
            flows: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0.0,
            registry_flows: 0,
            shaped_flows: [0, 0],
            registry_bytes: 0,
            cross_bytes: 0,
            zone_entry: vec![0; zone_names.len()],
        }
    }

    fn lane(&self, l: Lane) -> &LaneState {
        &self.nodes[l.node].lanes[l.stripe]
    }

    fn lane_mut(&mut self, l: Lane) -> &mut LaneState {
        &mut self.nodes[l.node].lanes[l.stripe]
    }

    fn stripe_len(&self, stripe: usize) -> u64 {
        self.layout.len(stripe)
    }

    fn push(&mut self, t: f64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            t,
            seq: self.seq,
            ev,
        });
    }

    fn zone(&self, n: Option<usize>) -> Option<u16> {
        match n {
            Some(n) => Some(self.p.zones[n]),
            None => self.p.registry_zone,
        }
    }

    fn latency(&self, a: Option<usize>, b: usize) -> f64 {
        match self.zone(a) {
            Some(z) if z != self.p.zones[b] => self.p.cross_latency,
            _ => self.p.latency,
        }
    }

    /// What a failed connection attempt to a dead node costs the asker.
    fn dead_peer_cost(&self, latency: f64) -> f64 {
        match self.p.failure {
            Failure::Crash => 2.0 * latency,
            Failure::Vanish => schedule::CONNECT_TIMEOUT.as_secs_f64(),
        }
    }

    /// The plan of a lane, as `Node::plan` builds it (every peer usable: the simulation has no
    /// suspects), in positions of the stripe's order.
    fn plan(&self, l: Lane) -> Vec<Source<usize>> {
        schedule::plan(self.tree.upstream(self.lane(l).pos), |_| true)
    }

    fn start(&mut self, n: usize, hops: u32) {
        if !self.nodes[n].alive || self.nodes[n].started {
            return;
        }
        self.nodes[n].started = true;
        self.nodes[n].hops = hops;
        for stripe in 0..self.at.len() {
            let l = Lane { node: n, stripe };
            let schedule = FillSchedule::new(&self.plan(l));
            self.lane_mut(l).schedule = Some(schedule);
            self.step(l);
        }
    }

    fn step(&mut self, l: Lane) {
        loop {
            let node = &self.nodes[l.node];
            let lane = &node.lanes[l.stripe];
            if !node.alive || lane.done || lane.failed || lane.flow.is_some() {
                return;
            }
            let step = self
                .lane_mut(l)
                .schedule
                .as_mut()
                .expect("started")
                .next_step();
            let rtt = 2.0 * self.p.latency;
            let (i, gated) = match step {
                Step::Exhausted => {
                    self.lane_mut(l).failed = true;
                    return;
                }
                Step::Pause(d) => {
                    self.push(self.now + d.as_secs_f64(), Ev::Step(l));
                    return;
                }
                Step::Pull(i) => (i, false),
                Step::RegistryUnlessUpstreamGetting(i) | Step::RegistryIfUpstreamGone(i) => {
                    (i, true)
                }
            };
            let plan = self.plan(l);
            if gated {
                let answers = plan.iter().filter_map(|s| match s {
                    Source::Upstream(r) => Some(self.answer(self.at[l.stripe][*r], l.stripe)),
                    _ => None,
                });
                let answer = UpstreamAnswer::of(answers);
                if !answer.lets_registry(step) {
                    // A vanished peer keeps the asker until the status timeout.
                    let wait = match answer {
                        UpstreamAnswer::Unsure => schedule::STATUS_TIMEOUT.as_secs_f64(),
                        _ => rtt,
                    };
                    self.push(self.now + wait, Ev::Step(l));
                    return;
                }
            }
            match plan[i] {
                Source::Upstream(r) => return self.ask(l, self.at[l.stripe][r]),
                Source::AnyComplete => {
                    let complete = (0..self.p.nodes).find(|&c| {
                        let c = &self.nodes[c];
                        c.alive && c.lanes[l.stripe].done && c.uploads < self.p.upload_cap
                    });
                    match complete {
                        Some(c) => return self.ask(l, c),
                        // Everyone answers "not complete" within a round trip; a vanished
                        // node makes the asker wait out the timeout.
                        None => {
                            let any_vanished = self.p.failure == Failure::Vanish
                                && self.nodes.iter().any(|x| !x.alive);
                            if any_vanished {
                                let t = schedule::COMPLETE_TIMEOUT.as_secs_f64();
                                self.push(self.now + t, Ev::Step(l));
                                return;
                            }
                            continue;
                        }
                    }
                }
                Source::Registry => {
                    let t = self.now + 2.0 * self.latency(None, l.node);
                    return self.open(None, l, t);
                }
            }
        }
    }

    /// What peer `n` answers when asked whether it is getting `stripe`, as the fetcher's
    /// status endpoint and client would.
    fn answer(&self, n: usize, stripe: usize) -> PeerAnswer {
        let u = &self.nodes[n];
        match (u.alive, self.p.failure) {
            (true, _) if u.started && !u.lanes[stripe].failed => PeerAnswer::Getting,
            (true, _) | (false, Failure::Crash) => PeerAnswer::NotGetting,
            (false, Failure::Vanish) => PeerAnswer::Silent,
        }
    }

    /// Lane `l` asks peer `p` for its stripe.
    fn ask(&mut self, l: Lane, p: usize) {
        let lat = self.latency(Some(p), l.node);
        let peer = &self.nodes[p];
        if !peer.alive {
            let t = self.now + self.dead_peer_cost(lat);
            return self.push(t, Ev::Step(l));
        }
        if peer.uploads >= self.p.upload_cap || peer.lanes[l.stripe].failed {
            return self.push(self.now + 2.0 * lat, Ev::Step(l));
        }
        let mut ready = self.now + 2.0 * lat;
        if !peer.started {
            let hops = self.nodes[l.node].hops + 1;
            if hops > self.p.max_hops {
                return self.push(ready, Ev::Step(l));
            }
            // The peer first reads the archive's manifest (`serve::start_for_peer`), then
            // starts the download and serves it as it comes.
            let at = self.now + lat + self.p.manifest_delay;
            self.push(at, Ev::Start { node: p, hops });
            ready = at + lat;
        }
        self.open(Some(p), l, ready);
    }

    fn open(&mut self, src: Option<usize>, dst: Lane, ready: f64) {
        let shaped = self.p.shaped_zone.and_then(|(z, _)| {
            let into = self.p.zones[dst.node] == z;
            (self.zone(src).is_some_and(|s| s == z) != into).then_some(into)
        });
        let f = self.flows.len();
        self.flows.push(Flow {
            src,
            dst,
            open: true,
            in_flight: false,
            busy_until: ready,
            last_byte: ready,
            latency: self.latency(src, dst.node),
            shaped,
        });
        match src {
            Some(p) => self.nodes[p].uploads += 1,
            None => self.registry_flows += 1,
        }
        self.nodes[dst.node].downloads += 1;
        if let Some(into) = shaped {
            self.shaped_flows[into as usize] += 1;
        }
        self.lane_mut(dst).flow = Some(f);
        self.push(ready + self.p.stall, Ev::Stall(f));
        self.send(f);
    }

    fn close(&mut self, f: usize) {
        let flow = &mut self.flows[f];
        if !flow.open {
            return;
        }
        flow.open = false;
        let (src, dst, shaped) = (flow.src, flow.dst, flow.shaped);
        match src {
            Some(p) => self.nodes[p].uploads -= 1,
            None => self.registry_flows -= 1,
        }
        self.nodes[dst.node].downloads -= 1;
        if let Some(into) = shaped {
            self.shaped_flows[into as usize] -= 1;
        }
        if self.lane(dst).flow == Some(f) {
            self.lane_mut(dst).flow = None;
        }
    }

    /// Sends the flow's next chunk if its source has bytes past the receiver's.
    fn send(&mut self, f: usize) {
        let flow = &self.flows[f];
        if !flow.open || flow.in_flight {
            return;
        }
        let (src, dst) = (flow.src, flow.dst);
        let have = self.lane(dst).have;
        let len = self.stripe_len(dst.stripe);
        let (avail, avail_at, src_rate) = match src {
            None => (len, 0.0, self.p.registry_rate / self.registry_flows as f64),
            Some(p) => {
                let s = &self.nodes[p];
                if !s.alive {
                    return;
                }
                let lane = &s.lanes[dst.stripe];
                let avail = if lane.done { len } else { lane.have };
                let upto = (have + CHUNK as u64).min(avail);
                // Older than what is remembered: there long before this flow asked.
                let since = lane
                    .recent
                    .iter()
                    .find(|(had, _)| *had >= upto)
                    .map_or(0.0, |(_, t)| *t);
                (avail, since, self.p.rate / s.uploads as f64)
            }
        };
        if avail <= have {
            if let Some(p) = src {
                self.nodes[p].lanes[dst.stripe].waiters.push(f);
            }
            return;
        }
        let bytes = (avail - have).min(CHUNK as u64);
        let mut rate = src_rate.min(self.p.rate / self.nodes[dst.node].downloads as f64);
        if let (Some(into), Some((_, link))) = (flow.shaped, self.p.shaped_zone) {
            rate = rate.min(link / self.shaped_flows[into as usize] as f64);
        }
        // The sender is free from the end of its last chunk; the bytes were there from when
        // the source got them (never later than now).
        let start = flow.busy_until.max(avail_at.min(self.now));
        let end = start + bytes as f64 / rate;
        let arrive = end + flow.latency;
        let flow = &mut self.flows[f];
        flow.busy_until = end;
        flow.in_flight = true;
        self.push(
            arrive.max(self.now),
            Ev::Arrive {
                flow: f,
                upto: have + bytes,
            },
        );
    }

    fn arrive(&mut self, f: usize, upto: u64) {
        let flow = &mut self.flows[f];
        if !flow.open {
            return;
        }
        flow.in_flight = false;
        let (src, dst) = (flow.src, flow.dst);
        if src.is_some_and(|p| !self.nodes[p].alive) {
            // The chunk died with its sender.
            return;
        }
        self.flows[f].last_byte = self.now;
        let bytes = upto - self.lane(dst).have;
        match src {
            Some(p) => self.nodes[p].uploaded += bytes,
            None => self.registry_bytes += bytes,
        }
        if let Some(z) = self.zone(src) {
            if z != self.p.zones[dst.node] {
                self.cross_bytes += bytes;
                self.zone_entry[self.p.zones[dst.node] as usize] += bytes;
            }
        }
        let now = self.now;
        let lane = self.lane_mut(dst);
        lane.have = upto;
        if lane.recent.len() == RECENT {
            lane.recent.pop_front();
        }
        lane.recent.push_back((upto, now));
        let waiters = std::mem::take(&mut lane.waiters);
        for w in waiters {
            self.send(w);
        }
        if upto >= self.stripe_len(dst.stripe) {
            self.lane_mut(dst).done = true;
            self.close(f);
            let node = &mut self.nodes[dst.node];
            node.lanes_done += 1;
            if node.lanes_done == node.lanes.len() {
                node.done_at = Some(now);
            }
        } else {
            self.send(f);
        }
    }

    /// No byte for the stall timeout: wait on if the parent is itself waiting upstream
    /// (`schedule::keeps_waiting`), else move on.
    fn stall(&mut self, f: usize) {
        let flow = &self.flows[f];
        if !flow.open {
            return;
        }
        let silent_since = flow.last_byte;
        if self.now - silent_since < self.p.stall - 1e-9 {
            return self.push(silent_since + self.p.stall, Ev::Stall(f));
        }
        let (src, dst, lat) = (flow.src, flow.dst, flow.latency);
        let mut cost = 0.0;
        if let Some(p) = src {
            let parent = &self.nodes[p];
            let lane = &parent.lanes[dst.stripe];
            let answer = parent.alive.then_some(UpstreamState {
                running: parent.started && !lane.done && !lane.failed,
                written: lane.have,
            });
            cost = if parent.alive {
                2.0 * lat
            } else {
                match self.p.failure {
                    Failure::Crash => 2.0 * lat,
                    Failure::Vanish => schedule::STATUS_TIMEOUT.as_secs_f64(),
                }
            };
            if schedule::keeps_waiting(answer, self.lane(dst).have) {
                self.flows[f].last_byte = self.now + cost;
                return self.push(self.now + cost + self.p.stall, Ev::Stall(f));
            }
        }
        self.close(f);
        self.push(self.now + cost, Ev::Step(dst));
    }

    fn kill(&mut self, n: usize) {
        self.nodes[n].alive = false;
        for f in 0..self.flows.len() {
            let flow = &self.flows[f];
            if !flow.open {
                continue;
            }
            if flow.dst.node == n {
                self.close(f);
            } else if flow.src == Some(n) && self.p.failure == Failure::Crash {
                let (dst, lat) = (flow.dst, flow.latency);
                self.close(f);
                self.push(self.now + lat, Ev::Step(dst));
            }
        }
    }

    fn run(mut self, rng: &mut Rng) -> Outcome {
        let p = self.p;
        for n in 0..p.nodes {
            let t = rng.unit() * p.start_spread + p.manifest_delay;
            self.push(t, Ev::Start { node: n, hops: 0 });
        }
        for (t, n) in random_kills(rng, p.nodes, p.kills, p.kill_window) {
            self.push(t * p.limit(), Ev::Kill(n));
        }
        for &(t, n) in &p.kill_plan {
            self.push(t, Ev::Kill(n));
        }
        while let Some(q) = self.queue.pop() {
            self.now = q.t;
            match q.ev {
                Ev::Start { node, hops } => self.start(node, hops),
                Ev::Step(l) => self.step(l),
                Ev::Arrive { flow, upto } => self.arrive(flow, upto),
                Ev::Stall(f) => self.stall(f),
                Ev::Kill(n) => self.kill(n),
            }
        }
        self.outcome()
    }

    fn outcome(&self) -> Outcome {
        let p = self.p;
        let survivors: Vec<&Node> = self.nodes.iter().filter(|n| n.alive).collect();
        let failed = survivors.iter().filter(|n| n.done_at.is_none()).count();
        let mut times: Vec<f64> = survivors
            .iter()
            .filter_map(|n| n.done_at.map(|d| d + p.tail))
            .collect();
        times.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            times
                .get(((times.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        let size = p.size as f64;
        Outcome {
            last: times.last().copied().unwrap_or(f64::NAN),
            p50: pct(0.5),
            p99: pct(0.99),
            registry_copies: self.registry_bytes as f64 / size,
            max_upload_copies: self.nodes.iter().map(|n| n.uploaded).max().unwrap_or(0) as f64
                / size,
            cross_copies: self.cross_bytes as f64 / size,
            max_zone_entry_copies: self.zone_entry.iter().copied().max().unwrap_or(0) as f64 / size,
            failed,
            survivors: survivors.len(),
        }
    }
}

/// `count` distinct nodes of `nodes`, each with a moment drawn uniformly from `window`, in time
/// order: the random kills of a run, simulated or on the namespace hosts (`--bench p2p`). The
/// same seed gives the same plan, so a run can be replayed.
pub fn random_kills(
    rng: &mut Rng,
    nodes: usize,
    count: usize,
    window: (f64, f64),
) -> Vec<(f64, usize)> {
    let mut victims: Vec<usize> = (0..nodes).collect();
    let mut plan: Vec<(f64, usize)> = (0..count.min(nodes))
        .map(|k| {
            // A partial Fisher-Yates shuffle: the first `count` slots are distinct nodes.
            let pick = k + rng.below(nodes - k);
            victims.swap(k, pick);
            (window.0 + (window.1 - window.0) * rng.unit(), victims[k])
        })
        .collect();
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));
    plan
}

pub fn simulate(p: &Params) -> Outcome {
    let mut rng = Rng(p.seed);
    let digest = p
        .digest
        .clone()
        .unwrap_or_else(|| Digest::of(&p.seed.to_le_bytes()));
    Sim::new(p, &digest).run(&mut rng)
}
