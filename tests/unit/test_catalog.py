"""The device catalogue: 12 categories, 360 types, calibrated to the real platform's volume."""

import shutil

import pytest

from data import catalog


@pytest.fixture(scope="module")
def categories():
    return catalog.load_categories()


@pytest.fixture(scope="module")
def types(categories):
    return catalog.load_device_types(categories=categories)


def test_sizes(categories, types):
    assert len(categories) == 12
    assert len(types) == 360
    per_category = {c.code: sum(t.category == c.code for t in types) for c in categories}
    assert set(per_category.values()) == {30}
    assert sum(c.device_share for c in categories) == pytest.approx(1.0)


def test_seed_scale_volume(categories, types):
    # the real platform: 510,000 devices sending 8.4 million readings a day
    readings = catalog.expected_readings_per_day(
        devices_total=510_000, categories=categories, device_types=types
    )
    assert readings == pytest.approx(8_400_000, rel=0.01)


def test_healthy_simulation_stays_normal(types):
    for t in types:
        if t.value_kind == "analog":
            assert t.level(t.baseline) == 0, t.code
            assert t.level(t.baseline + t.daily_amplitude) == 0, t.code


def test_levels_on_boundaries(types):
    two_sided = next(t for t in types if t.alarm_min is not None and t.alarm_max is not None)
    assert two_sided.level(two_sided.normal_max) == 0
    assert two_sided.level(two_sided.alarm_max) == 1
    assert two_sided.level(two_sided.alarm_max + 1e-9) == 2
    assert two_sided.level(two_sided.alarm_min - 1e-9) == 2
    upper_only = next(t for t in types if t.alarm_min is None and t.value_kind == "analog")
    assert upper_only.level(upper_only.normal_min - 1000) == 1
    binary = next(t for t in types if t.value_kind == "binary")
    assert (binary.level(0), binary.level(1)) == (0, 2)


def _broken_copy(tmp_path, replace_line):
    source = catalog.REFERENCE_DIR / "device_types.csv"
    target = tmp_path / "device_types.csv"
    shutil.copy(source, target)
    lines = target.read_text(encoding="utf-8").splitlines()
    lines[1] = replace_line(lines[1])
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda line: line.replace(",weather,", ",hail,", 1), "unknown category 'hail'"),
        (lambda line: line.replace(",analog,", ",digital,", 1), "value_kind"),
        (lambda line: line.replace(",1800,", ",soon,", 1), "interval_s = 'soon' is not a number"),
        (lambda line: line.replace(",-5,38,-10,40,", ",-5,38,0,40,", 1), "alarm_min 0.0 is above"),
    ],
)
def test_validation_names_row_and_field(tmp_path, categories, mutate, message):
    path = _broken_copy(tmp_path, mutate)
    with pytest.raises(catalog.CatalogError) as caught:
        catalog.load_device_types(path=path, categories=categories)
    assert message in str(caught.value)
    assert "line 2" in str(caught.value)


def test_duplicate_codes_are_refused(tmp_path, categories):
    source = (catalog.REFERENCE_DIR / "device_types.csv").read_text(encoding="utf-8").splitlines()
    duplicate = source[2].split(",")
    duplicate[0] = "999"
    duplicate[1] = source[1].split(",")[1]
    path = tmp_path / "device_types.csv"
    path.write_text("\n".join([*source, ",".join(duplicate)]) + "\n", encoding="utf-8")
    with pytest.raises(catalog.CatalogError, match="duplicate code"):
        catalog.load_device_types(path=path, categories=categories)
