import pytest

from depot.network import ROUTE_COUNT, quote, route


@pytest.mark.parametrize("number", range(1, ROUTE_COUNT + 1))
def test_every_route_quotes_by_the_same_rules(number):
    r = route(number)
    light, heavy = r.HEAVY_FROM_KG - 1, r.HEAVY_FROM_KG + 1
    assert quote(number, light) == round(r.BASE_FEE + r.PER_KG * light, 2)
    assert quote(number, r.HEAVY_FROM_KG) == round(r.BASE_FEE + r.PER_KG * r.HEAVY_FROM_KG, 2)
    assert quote(number, heavy) == round((r.BASE_FEE + r.PER_KG * heavy) * r.HEAVY_FACTOR, 2)


def test_route_83_light_parcel():
    r = route(83)
    assert quote(83, 2) == round(r.BASE_FEE + r.PER_KG * 2, 2)
