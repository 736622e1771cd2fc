"""cerebro.schedule: the pure MOP policy (which config runs next on a free worker), no server.

Worker *j* serves training partition *j* (and validation partition *j*), so "config c wants
worker j" means "c's next unit is partition j".
"""

from __future__ import annotations

import random

import numpy as np

from cerebro.schedule import ConfigView, partition_order, pick, pick_any

SEED = 20240611


def view(
    config_id: int,
    *,
    epoch: int = 0,
    done: list[int] | None = None,
    valid_done: list[int] | None = None,
    priority: int = 0,
    seed: int = SEED,
    n_train: int = 4,
    n_valid: int = 0,
    workload_id: int = 1,
) -> ConfigView:
    return ConfigView(
        config_id=config_id,
        workload_id=workload_id,
        epoch=epoch,
        partitions_done=list(done or []),
        valid_done=list(valid_done or []),
        priority=priority,
        workload_seed=seed,
        n_train=n_train,
        n_valid=n_valid,
    )


def wanting(worker: int, config_id: int, **kw) -> ConfigView:
    """A config in its training phase whose next partition is ``worker``: the partitions
    before ``worker`` in its order of this epoch are done."""
    epoch, n = kw.get("epoch", 0), kw.get("n_train", 4)
    order = partition_order(kw.get("seed", SEED), config_id, epoch + 1, n)
    return view(config_id, done=order[: order.index(worker)], **kw)


def progress(c: ConfigView) -> float:
    return c.epoch + (len(c.partitions_done) + len(c.valid_done)) / (c.n_train + c.n_valid)


def workers_for(c: ConfigView, n_workers: int) -> dict[int, str]:
    """Worker -> kind of unit, for every worker on which ``c`` alone would be picked."""
    out = {}
    for w in range(n_workers):
        got = pick([c], w, set(), random.Random(0))
        if got is not None:
            assert got[0] is c
            out[w] = got[1]
    return out


# --- the per-epoch partition order ------------------------------------------------------


def test_partition_order_is_a_permutation_reproducible_from_the_seed_alone():
    for n in (1, 2, 5, 8):
        for cid in range(6):
            for epoch in (1, 2, 7):
                order = partition_order(SEED, cid, epoch, n)
                assert sorted(order) == list(range(n))
                assert all(type(p) is int for p in order)  # goes into SQL parameters
                random.seed(cid)  # global random state plays no part
                np.random.seed(epoch)
                assert partition_order(SEED, cid, epoch, n) == order


def test_partition_order_is_reshuffled_each_epoch_and_depends_on_the_seed():
    n = 8
    by_epoch = {tuple(partition_order(SEED, 0, e, n)) for e in range(1, 21)}
    assert len(by_epoch) > 10  # 8! orders: a fixed or rarely changing order fails
    by_seed = {tuple(partition_order(s, 0, 1, n)) for s in range(20)}
    assert len(by_seed) > 10
    # bigint seeds of either sign are accepted (the workload seed is a PostgreSQL bigint)
    for s in (-1, -(2**63), 2**63 - 1):
        assert sorted(partition_order(s, 3, 2, n)) == list(range(n))


def test_configs_of_an_epoch_are_rotations_of_one_permutation():
    """Latin square: config c visits perm[(c + k) mod n], so configs 0..n-1 start on
    different partitions and no two of them want the same partition at the same step."""
    n = 5
    for epoch in (1, 2, 3):
        base = partition_order(SEED, 0, epoch, n)
        orders = [partition_order(SEED, c, epoch, n) for c in range(n)]
        for c, order in enumerate(orders):
            assert order == [base[(c + k) % n] for k in range(n)]
        for k in range(n):
            assert sorted(o[k] for o in orders) == list(range(n))
    # config ids n apart share an order (the rotation is taken modulo n)
    assert partition_order(SEED, 2, 1, n) == partition_order(SEED, 2 + n, 1, n)


# --- pick: which partitions a config may take -------------------------------------------


def test_a_training_config_wants_exactly_its_next_partition():
    for done_count in range(4):
        order = partition_order(SEED, 1, 3, 4)
        c = view(1, epoch=2, done=order[:done_count])
        assert workers_for(c, 6) == {order[done_count]: "train"}


def test_an_epoch_visits_every_partition_once_in_the_seeded_order_then_validates():
    """Drive one config through two epochs with pick alone, offering every worker in turn."""
    n_train, n_valid = 5, 3
    c = view(9, n_train=n_train, n_valid=n_valid)
    for epoch in (1, 2):
        visits = []
        while True:
            choices = [
                (w, got) for w in range(8) if (got := pick([c], w, set(), random.Random(w)))
            ]
            if not choices:
                break
            assert len(choices) == 1 or all(k == "valid" for _, (_, k) in choices)
            w, (_, kind) = choices[0]
            visits.append((kind, w))
            if kind == "train":
                assert w not in c.partitions_done
                c.partitions_done.append(w)
            else:
                assert w not in c.valid_done
                c.valid_done.append(w)
        assert visits == [("train", p) for p in partition_order(SEED, 9, epoch, n_train)] + [
            ("valid", p) for p in range(n_valid)
        ]
        c.epoch, c.partitions_done, c.valid_done = epoch, [], []


def test_never_a_partition_already_visited_this_epoch():
    order = partition_order(SEED, 4, 1, 6)
    done = order[:4]
    c = view(4, done=done, n_train=6)
    for w in done:
        assert pick([c], w, set(), random.Random(w)) is None
    # duplicates in the done list (a retried unit) do not make it revisit either
    c2 = view(4, done=done + done[:2], n_train=6)
    assert workers_for(c2, 6) == {order[4]: "train"}


def test_validation_units_come_after_all_training_partitions():
    order = partition_order(SEED, 2, 1, 3)
    c = view(2, done=order[:2], n_train=3, n_valid=2)
    assert workers_for(c, 4) == {order[2]: "train"}  # valid partitions 0 and 1 wait
    c.partitions_done.append(order[2])
    assert workers_for(c, 4) == {0: "valid", 1: "valid"}  # not worker 2: no such partition
    c.valid_done.append(1)
    assert workers_for(c, 4) == {0: "valid"}
    c.valid_done.append(0)
    assert workers_for(c, 4) == {}


def test_without_a_validation_set_a_trained_epoch_wants_nothing():
    c = view(3, done=[0, 1, 2, 3], n_valid=0)
    assert workers_for(c, 4) == {}


def test_never_a_busy_config():
    a, b = wanting(0, 1), wanting(0, 2, epoch=3)
    assert progress(a) < progress(b)
    assert pick([a, b], 0, {1}, random.Random(0)) == (b, "train")
    assert pick([a, b], 0, {1, 2}, random.Random(0)) is None
    assert pick([a], 0, {2}, random.Random(0)) == (a, "train")  # others' ids do not matter


# --- pick: the order among configs that fit ---------------------------------------------


def test_least_progress_first_across_epochs_even_against_priority():
    behind = wanting(0, 1, epoch=1, priority=0)
    ahead = wanting(0, 2, epoch=2, priority=100)
    assert progress(behind) < progress(ahead)
    for s in range(20):
        for configs in ([behind, ahead], [ahead, behind]):
            assert pick(configs, 0, set(), random.Random(s)) == (behind, "train")


def test_least_progress_first_within_an_epoch():
    """Configs 0..3 of one epoch reach worker 0 at different steps of their rotation; the
    further on a config is, the higher its priority, and still the least advanced wins."""
    configs = [wanting(0, cid, epoch=5) for cid in range(4)]
    assert len({len(c.partitions_done) for c in configs}) == 4
    for c in configs:
        c.priority = 10 * len(c.partitions_done)
    least = min(configs, key=progress)
    for s in range(20):
        shuffled = random.Random(s).sample(configs, 4)
        assert pick(shuffled, 0, set(), random.Random(s)) == (least, "train")


def test_validation_units_count_towards_progress():
    ahead = view(1, done=[0, 1, 2, 3], valid_done=[2], n_valid=3, priority=5)
    behind = view(2, done=[3, 2, 1, 0], valid_done=[], n_valid=3, priority=0)
    for s in range(20):
        for configs in ([ahead, behind], [behind, ahead]):
            assert pick(configs, 0, set(), random.Random(s)) == (behind, "valid")
    # a config still validating epoch 1 comes before one training epoch 2
    training = view(3, epoch=1, done=[1, 2, 3], n_valid=3, priority=5)
    assert pick([training, ahead], 0, set(), random.Random(0)) == (ahead, "valid")


def test_progress_is_the_share_of_the_epochs_units_done():
    """Across workloads with different unit counts: 3 of 8 units (with validation) is less
    progress than 2 of 4 (without), though it has trained more partitions."""
    with_valid = view(1, done=[1, 2, 3], n_valid=4, workload_id=1, priority=0)
    without = next(
        c
        for c in (wanting(0, cid, workload_id=2, priority=5) for cid in range(2, 6))
        if len(c.partitions_done) == 2
    )
    assert progress(with_valid) < progress(without)
    for s in range(10):
        assert pick([without, with_valid], 0, set(), random.Random(s)) == (with_valid, "train")


def test_priority_breaks_progress_ties():
    low = view(1, epoch=2, done=[1, 2, 3], priority=1)
    high = view(2, epoch=2, done=[3, 2, 1], priority=7)  # same progress, both want worker 0
    for s in range(20):
        for configs in ([low, high], [high, low]):
            assert pick(configs, 0, set(), random.Random(s)) == (high, "train")
    low.priority = 8
    assert pick([low, high], 0, set(), random.Random(0)) == (low, "train")


def test_ties_are_broken_at_random_and_reproducibly_by_the_rng():
    a = view(1, done=[1, 2, 3])
    b = view(2, done=[1, 2, 3])  # same progress, same priority, both can only take 0
    winners = [pick([a, b], 0, set(), random.Random(s))[0].config_id for s in range(40)]
    assert set(winners) == {1, 2}  # not always the first (or the last) of the list
    assert winners == [pick([a, b], 0, set(), random.Random(s))[0].config_id for s in range(40)]


def test_none_when_nothing_fits():
    rng = random.Random(0)
    assert pick([], 0, set(), rng) is None
    a = wanting(2, 1)
    assert pick([a], 0, set(), rng) is None  # wants another worker
    assert pick([a], 2, {1}, rng) is None  # busy
    finished = view(3, done=[0, 1, 2, 3], valid_done=[0, 1], n_valid=2)
    assert pick([finished], 0, set(), rng) is None
    assert pick([a, finished], 3, set(), rng) is None


# --- pick_any: one server, any worker runs any partition -------------------------------------


def test_next_unit_follows_the_order_then_validates_the_rest():
    c = view(5, n_train=3, n_valid=2)
    order = partition_order(SEED, 5, 1, 3)
    assert c.next_unit() == ("train", order[0])
    c.partitions_done = order[:2]
    assert c.next_unit() == ("train", order[2])
    c.partitions_done = order
    assert c.next_unit() == ("valid", 0)
    c.valid_done = [0]
    assert c.next_unit() == ("valid", 1)
    c.valid_done = [1, 0]
    assert c.next_unit() is None


def test_pick_any_runs_a_config_on_any_worker_in_its_own_order():
    """Whatever partition comes next, the config is offered; the unit is that partition."""
    for cid in range(6):
        c = wanting(3, cid)  # next partition: 3
        assert pick_any([c], set(), random.Random(0)) == (c, "train", 3)
        assert pick_any([c], {cid}, random.Random(0)) is None  # busy elsewhere


def test_pick_any_fewest_epochs_then_priority_then_the_cached_model_then_progress():
    behind = view(1, epoch=0, done=[])
    ahead = view(2, epoch=1, done=[], priority=100)
    for s in range(20):
        # fewer completed epochs wins over priority and over a cached model
        assert pick_any([ahead, behind], set(), random.Random(s), {2})[0] is behind
    # within an epoch: the cached model wins over less progress (the worker keeps its
    # config for the rest of the epoch), and without a cached one the least progress wins
    mid = view(5, done=partition_order(SEED, 5, 1, 4)[:2])
    fresh = view(6, done=[])
    for s in range(20):
        for configs in ([mid, fresh], [fresh, mid]):
            assert pick_any(configs, set(), random.Random(s), {5})[0] is mid
            assert pick_any(configs, set(), random.Random(s), {6})[0] is fresh
            assert pick_any(configs, set(), random.Random(s))[0] is fresh
            assert pick_any(configs, set(), random.Random(s), {5, 6})[0] is fresh
    a, b = view(3, done=[]), view(4, done=[])
    for s in range(20):
        for configs in ([a, b], [b, a]):
            assert pick_any(configs, set(), random.Random(s), {4})[0] is b  # b's model is here
            assert pick_any(configs, set(), random.Random(s), {3})[0] is a
    b.priority = 1  # priority before the cache
    assert pick_any([a, b], set(), random.Random(0), {3})[0] is b
    winners = {pick_any([a, view(4)], set(), random.Random(s))[0].config_id for s in range(40)}
    assert winners == {3, 4}  # ties at random


def test_pick_any_none_when_every_config_is_busy_or_done():
    finished = view(3, done=[0, 1, 2, 3], valid_done=[0, 1], n_valid=2)
    assert pick_any([], set(), random.Random(0)) is None
    assert pick_any([finished, view(4)], {4}, random.Random(0)) is None


def test_advance_records_mid_epoch_units_and_refuses_the_epochs_last():
    c = view(1, n_train=3, n_valid=2)
    order = partition_order(SEED, 1, 1, 3)
    assert c.advance("train", order[0]) and c.partitions_done == [order[0]]
    assert c.advance("train", order[0]) and c.partitions_done == [order[0]]  # read back
    assert c.advance("train", order[1]) and c.advance("train", order[2])
    assert c.partitions_done == order and c.next_unit() == ("valid", 0)
    assert c.advance("valid", 0) and c.valid_done == [0]
    assert not c.advance("valid", 1)  # the epoch's last unit: read the config again
    assert c.valid_done == [0]
    t = view(2, n_train=2, done=[1])
    assert not t.advance("train", 0) and t.partitions_done == [1]  # no validation set
