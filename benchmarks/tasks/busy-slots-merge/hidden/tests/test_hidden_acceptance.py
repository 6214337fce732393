from calendar_tools.slots import free, merge


def test_touching_slots_merge_into_one_block():
    assert merge([(540, 600), (600, 660)]) == [(540, 660)]


def test_a_chain_of_touching_slots_merges_in_any_order():
    assert merge([(660, 720), (540, 600), (600, 660)]) == [(540, 720)]


def test_slots_with_a_gap_stay_apart():
    assert merge([(540, 600), (601, 660)]) == [(540, 600), (601, 660)]


def test_free_time_has_no_gap_between_back_to_back_meetings():
    assert free([(540, 600), (600, 660)], 480, 720) == [(480, 540), (660, 720)]


def test_contained_slot_is_absorbed():
    assert merge([(540, 720), (600, 660)]) == [(540, 720)]
