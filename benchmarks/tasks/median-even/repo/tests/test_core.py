import pytest

from statkit import mean, median, mode, spread


def test_mean_of_integers():
    assert mean([1, 2, 3, 4]) == 2.5


def test_median_of_odd_length_is_the_middle_value():
    assert median([5, 1, 3]) == 3


def test_median_of_even_length_averages_the_two_middle_values():
    assert median([1, 2, 3, 4]) == 2.5


def test_mode_prefers_the_smallest_of_equally_common_values():
    assert mode([3, 1, 3, 1, 2]) == 1


def test_spread():
    assert spread([4, -2, 7]) == 9


@pytest.mark.parametrize("fn", [mean, median, mode, spread])
def test_empty_input_is_an_error(fn):
    with pytest.raises(ValueError):
        fn([])
