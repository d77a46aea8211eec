"""Turns at the service: a bound on jobs at the service, held per worker thread."""

from __future__ import annotations

import threading

from watcher.turns import ServiceTurns


def take_in_thread(turns: ServiceTurns) -> tuple[threading.Thread, list[bool]]:
    taken: list[bool] = []
    thread = threading.Thread(target=lambda: taken.append(turns.take()), daemon=True)
    thread.start()
    return thread, taken


def test_a_thread_waits_for_a_turn_until_one_is_given_back() -> None:
    turns = ServiceTurns(1)
    assert turns.take()
    assert turns.take()  # the same thread holds one already: no second turn, no wait
    thread, taken = take_in_thread(turns)
    thread.join(0.3)
    assert taken == []  # waiting
    turns.give_back()
    thread.join(5)
    assert taken == [True]


def test_giving_back_twice_frees_one_turn_only() -> None:
    turns = ServiceTurns(1)
    assert turns.take()
    turns.give_back()
    turns.give_back()  # holds none now: nothing to give
    first, first_taken = take_in_thread(turns)
    first.join(5)
    second, second_taken = take_in_thread(turns)
    second.join(0.3)
    assert first_taken == [True] and second_taken == []


def test_a_stop_ends_the_wait_without_a_turn() -> None:
    stop = threading.Event()
    turns = ServiceTurns(1, stop)
    assert turns.take()
    thread, taken = take_in_thread(turns)
    stop.set()
    thread.join(5)
    assert taken == [False]


def test_no_size_means_no_bound() -> None:
    turns = ServiceTurns(None)
    threads = [take_in_thread(turns) for _ in range(5)]
    for thread, _ in threads:
        thread.join(5)
    assert [taken for _, taken in threads] == [[True]] * 5
