"""Simulation scenarios shared by the CI tests and the long-run command.

Each returns a report dict of figures in protocol periods (and asserts
nothing: the callers decide what must hold).
"""

from __future__ import annotations

import random
import statistics

from gossip_sim import Sim

from meshd.gossip import EventKind, GossipConfig


def crash_scenario(n: int, *, seed: int = 1, crashes: int = 3, loss: float = 0.05,
                   slow: int = 2, config: GossipConfig | None = None,
                   settle_s: float = 5.0, after_s: float = 60.0) -> tuple[Sim, dict]:
    """``n`` converged members with loss and slow members; ``crashes`` crash at once."""
    cfg = config or GossipConfig.lan()
    sim = Sim(cfg, seed=seed, loss=loss, delay_s=(0.001, 0.020))
    names = sim.converged(n)
    period = cfg.probe_interval_s
    for name in names[1:1 + slow]:
        sim.freeze(name, every_s=period, stop_s=0.8 * period)
    victims = names[-crashes:]
    sim.run_until(settle_s)
    for v in victims:
        sim.crash(v)
    t0 = sim.now
    sim.run_until(t0 + after_s)
    live = sim.live()
    report: dict = {"members": n, "seed": seed, "loss": loss, "slow": slow, "crashes": crashes,
                    "false_failures": len(sim.false_failures()), "undetected": 0}
    first_suspect, first_fail, all_fail = [], [], []
    for v in victims:
        sus = sim.first(EventKind.SUSPECT, v, t0)
        fail = sim.first(EventKind.FAIL, v, t0)
        report["undetected"] += sum(1 for o in live if o not in fail)
        if sus:
            first_suspect.append((min(sus.values()) - t0) / period)
        if fail:
            first_fail.append((min(fail.values()) - t0) / period)
            all_fail.append((max(fail.values()) - t0) / period)
    report["first_suspect_periods"] = round(statistics.mean(first_suspect), 2) if first_suspect else None
    report["first_fail_periods"] = round(statistics.mean(first_fail), 2) if first_fail else None
    report["all_fail_periods"] = round(max(all_fail), 2) if all_fail else None
    report["dissemination_periods"] = (
        round(max(all_fail) - min(first_fail), 2) if all_fail else None)
    return sim, report


def overload_scenario(n: int, *, seed: int = 1, every_s: float = 10.0, stop_s: float = 6.0,
                      crash_at_s: float = 30.0, after_s: float = 120.0,
                      config: GossipConfig | None = None) -> tuple[Sim, dict]:
    """Every member starved, as ``n`` agents sharing a few cores: each one is frozen about
    ``stop_s`` of every ``every_s`` (its own period x 0.7-1.3 and stop x 0.5-1.5, random phase;
    messages wait, as in a socket buffer); one member crashes at ``crash_at_s``."""
    cfg = config or GossipConfig.lan()
    sim = Sim(cfg, seed=seed, delay_s=(0.001, 0.020))
    names = sim.converged(n)
    rng = random.Random(seed)
    for name in names:
        sim.freeze(name, every_s=every_s * rng.uniform(0.7, 1.3), stop_s=stop_s * rng.uniform(0.5, 1.5))
    sim.run_until(crash_at_s)
    victim = names[-1]
    sim.crash(victim)
    t0 = sim.now
    sim.run_until(t0 + after_s)
    fail = sim.first(EventKind.FAIL, victim, t0)
    live = sim.live()
    return sim, {
        "members": n, "seed": seed, "every_s": every_s, "stop_s": stop_s,
        "false_failures": len(sim.false_failures()),
        "members_failed_falsely": len({m for _, _, m in sim.false_failures()}),
        "undetected": sum(1 for o in live if o not in fail),
        "crash_first_fail_s": round(min(fail.values()) - t0, 1) if fail else None,
        "crash_all_fail_s": round(max(fail.values()) - t0, 1) if len(fail) == len(live) else None,
        "max_health_score": max(sim.cores[m].status().health_score for m in live),
    }


def load_per_member(n: int, *, seed: int = 1, periods: int = 20,
                    config: GossipConfig | None = None) -> float:
    """Messages sent per member per protocol period in a quiet cluster of ``n``."""
    cfg = config or GossipConfig.lan()
    sim = Sim(cfg, seed=seed)
    sim.converged(n)
    sim.run_until(2 * cfg.probe_interval_s)
    before = sum(sim.sent.values())
    sim.run_until(sim.now + periods * cfg.probe_interval_s)
    return (sum(sim.sent.values()) - before) / n / periods


def partition_scenario(n: int, *, seed: int = 1, cut_s: float = 40.0,
                       heal_s: float = 60.0, config: GossipConfig | None = None) -> tuple[Sim, dict]:
    """Split ``n`` members in two for ``cut_s``, then reconnect them."""
    cfg = config or GossipConfig.lan()
    sim = Sim(cfg, seed=seed, delay_s=(0.001, 0.010))
    names = sim.converged(n)
    half = set(names[: n // 2])
    sim.run_until(2.0)
    sim.cut(half, set(names) - half)
    sim.run_until(sim.now + cut_s)
    a, b = names[0], names[-1]
    split = sim.state_of(a, b), sim.state_of(b, a)
    sim.heal()
    t0 = sim.now
    healed_at = None
    step = cfg.probe_interval_s
    while sim.now < t0 + heal_s:
        sim.run_until(sim.now + step)
        if all(c.status().members_alive == n for c in sim.cores.values()):
            healed_at = sim.now
            break
    return sim, {"members": n, "seed": seed, "split_states": [s.name for s in split],
                 "healed_after_periods": None if healed_at is None
                 else round((healed_at - t0) / cfg.probe_interval_s, 1)}


def join_scenario(n: int, *, seed: int = 1, seeds: int = 3, spread_s: float = 10.0,
                  run_s: float = 40.0, config: GossipConfig | None = None) -> tuple[Sim, dict]:
    """``n`` members start one by one over ``spread_s`` and join through the first ``seeds``."""
    cfg = config or GossipConfig.lan()
    sim = Sim(cfg, seed=seed, loss=0.01)
    names = [f"n{i:05d}" for i in range(n)]
    for i, name in enumerate(names):
        sim.run_until(i * spread_s / n)
        sim.add(name)
        if i:
            sim.join(name, names[: min(i, seeds)])
    sim.run_until(run_s)
    full = sum(1 for c in sim.cores.values() if c.status().members_alive == n)
    return sim, {"members": n, "seed": seed, "members_with_full_view": full,
                 "false_failures": len(sim.false_failures())}


#: The cut kinds of :func:`heal_scenario` (and of the lab: ``lab.cut``).
CUTS = ("host", "pair", "oneway")


def heal_scenario(n: int, *, seed: int = 1, cut: str = "host", cut_s: float = 15.0,
                  hold: bool = True, flush_within_s: float = 13.0, after_s: float = 20.0,
                  loss: float = 0.0, config: GossipConfig | None = None) -> tuple[Sim, dict]:
    """Cut one member (``cut``: from everyone, from one peer, or one way to it), heal, watch.

    With ``hold`` every message across the cut is delivered late, after the
    heal (a TCP backlog; see :class:`Sim`).  Reports what the *healthy*
    members (all but the cut one) said about each other from the cut on —
    ``false_failures`` and ``suspicions`` must be 0 and few — and how long
    after the heal every member saw every member alive (``healed_after_s``;
    None if not within ``after_s``, or if anyone was not alive at the end).
    """
    cfg = config or GossipConfig.local()
    sim = Sim(cfg, seed=seed, loss=loss, delay_s=(0.0005, 0.002))
    names = sim.converged(n)
    victim, peer = names[n // 2], names[0]
    sim.run_until(10 * cfg.probe_interval_s)
    t_cut = sim.now
    if cut == "host":
        sim.cut({victim}, hold=hold)
    else:
        sim.block(victim, peer, oneway=cut == "oneway", hold=hold)
    sim.run_until(t_cut + cut_s)
    cut_state = sim.state_of(peer, victim)
    t_heal = sim.now
    sim.heal(flush_within_s)
    healed_at = None
    while sim.now < t_heal + after_s:
        sim.run_until(sim.now + cfg.probe_interval_s / 4)
        if healed_at is None and all(c.status().members_alive == n for c in sim.cores.values()):
            healed_at = sim.now
    healthy = set(names) - {victim}
    if not all(c.status().members_alive == n for c in sim.cores.values()):
        healed_at = None
    return sim, {
        "members": n, "seed": seed, "cut": cut, "cut_s": cut_s, "hold": hold,
        "victim_seen_by_peer_during_cut": cut_state.name if cut_state else None,
        "false_failures": len(sim.reports(EventKind.FAIL, among=healthy, since=t_cut)),
        "suspicions": len(sim.reports(EventKind.SUSPECT, among=healthy, since=t_cut)),
        "healed_after_s": None if healed_at is None else round(healed_at - t_heal, 2),
    }
