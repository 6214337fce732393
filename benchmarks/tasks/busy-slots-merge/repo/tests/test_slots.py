import pytest

from calendar_tools.slots import busy_minutes, free, label, merge


def test_overlapping_slots_merge():
    assert merge([(600, 700), (540, 620)]) == [(540, 700)]


def test_separate_slots_stay_apart():
    assert merge([(540, 600), (660, 720)]) == [(540, 600), (660, 720)]


def test_back_to_back_meetings_are_one_busy_block():
    assert merge([(540, 600), (600, 660)]) == [(540, 660)]


def test_free_time_around_meetings():
    assert free([(600, 660)], 540, 1020) == [(540, 600), (660, 1020)]


def test_busy_minutes_counts_overlaps_once():
    assert busy_minutes([(540, 600), (570, 630)]) == 90


def test_label():
    assert label((545, 630)) == "09:05-10:30"


def test_reversed_slot_is_rejected():
    with pytest.raises(ValueError):
        merge([(600, 540)])
