import pytest

from statkit import median


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2, 3, 4], 2.5),
        ([4, 1, 3, 2], 2.5),
        ([1, 1, 2, 10], 1.5),
        ([-3, -1], -2.0),
        ([7, 7], 7),
        ([5], 5),
        ([9, 2, 4], 4),
    ],
)
def test_median(values, expected):
    assert median(values) == expected


def test_median_does_not_reorder_its_input():
    data = [3, 1, 2, 0]
    median(data)
    assert data == [3, 1, 2, 0]


def test_median_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        median([])
