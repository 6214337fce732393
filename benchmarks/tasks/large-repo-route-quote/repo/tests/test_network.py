import pytest

from depot.network import ROUTE_COUNT, cheapest, inconsistent_routes, quote, route


def test_every_route_module_is_consistent():
    assert inconsistent_routes() == {}


@pytest.mark.parametrize("number", [1, 42, 83, 120])
def test_light_parcels_pay_base_fee_and_weight_only(number):
    r = route(number)
    assert quote(number, 2) == round(r.BASE_FEE + r.PER_KG * 2, 2)


@pytest.mark.parametrize("number", [7, 83])
def test_heavy_parcels_pay_the_heavy_factor(number):
    r = route(number)
    weight = r.HEAVY_FROM_KG + 5
    assert quote(number, weight) == round((r.BASE_FEE + r.PER_KG * weight) * r.HEAVY_FACTOR, 2)


def test_cheapest_route():
    numbers = [3, 5, 8]
    best = cheapest(numbers, 1)
    assert all(quote(best, 1) <= quote(n, 1) for n in numbers)


def test_unknown_route():
    with pytest.raises(KeyError):
        route(ROUTE_COUNT + 1)
