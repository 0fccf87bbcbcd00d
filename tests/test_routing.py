"""Routing: which grid manager gets a report, and which crew is recommended."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pyproj import Geod

from dispatch.routing import (
    Calendar,
    CrewCandidate,
    GridManager,
    OnCall,
    WeeklyHours,
    choose_manager,
    on_duty,
    rank_crews,
)

SH = ZoneInfo("Asia/Shanghai")
COMMUNITY = "320104008004"  # 蓝旗新村社区
GRID = "320104008004001"
NEAR, FAR = "320104008004002", "320104008004003"  # adjacent grids, nearest first
OTHER = "320104008005001"  # not adjacent: its managers never count

# Real 2024 calendar: Mon 3 June is an ordinary weekday, Mon 10 June is 端午节 (a public
# holiday), Sat 14 September is an adjusted working day (调休) before 中秋节.
CALENDAR = Calendar(holidays=frozenset({datetime(2024, 6, 10).date()}),
                    extra_workdays=frozenset({datetime(2024, 9, 14).date()}))


def at(month: int, day: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """A 2024 wall-clock time in Shanghai."""
    return datetime(2024, month, day, hh, mm, ss, tzinfo=SH)


MON_10 = at(6, 3, 10)
MON_19 = at(6, 3, 19)
SAT_10 = at(6, 8, 10)
HOLIDAY_10 = at(6, 10, 10)
ADJUSTED_SAT_10 = at(9, 14, 10)


def manager(user_id: int, kind: str = "primary", grid: str = GRID, *,
            hours: tuple[WeeklyHours, ...] | None = None, active: bool = True) -> GridManager:
    return GridManager(user_id, grid, kind, hours, active)


def hours(*spans: tuple[int, int, int]) -> tuple[WeeklyHours, ...]:
    """Weekly hours from (weekday, start hour, end hour) triples."""
    return tuple(WeeklyHours(day, time(start), time(end)) for day, start, end in spans)


TUESDAYS = hours((1, 9, 17))  # a manager who is off on every day tested below but Tuesday
SATURDAY_MORNING = hours((5, 8, 12))
WEEK_ROTA = (at(6, 1, 0), at(6, 17, 0))  # an on-call entry covering every test day in June


def rota(user_id: int, area: str, starts: datetime = WEEK_ROTA[0],
         ends: datetime = WEEK_ROTA[1]) -> OnCall:
    return OnCall(user_id, area, starts, ends)


# -- on_duty ---------------------------------------------------------------------------


@pytest.mark.parametrize("when, manager_hours, active, expected", [
    pytest.param(MON_10, None, True, True, id="default-weekday-hours"),
    # Shifts are half-open: a manager is on at 09:00:00 and off at 17:00:00.
    pytest.param(at(6, 3, 9), None, True, True, id="09:00-is-on"),
    pytest.param(at(6, 3, 8, 59, 59), None, True, False, id="08:59:59-is-off"),
    pytest.param(at(6, 3, 16, 59, 59), None, True, True, id="16:59:59-is-on"),
    pytest.param(at(6, 3, 17), None, True, False, id="17:00-is-off"),
    pytest.param(MON_19, None, True, False, id="weekday-evening"),
    pytest.param(SAT_10, None, True, False, id="weekend"),
    pytest.param(HOLIDAY_10, None, True, False, id="holiday-on-a-monday"),
    pytest.param(HOLIDAY_10, hours((0, 8, 20)), True, False, id="holiday-beats-custom-hours"),
    pytest.param(ADJUSTED_SAT_10, None, True, True, id="adjusted-working-saturday"),
    pytest.param(at(9, 14, 8), hours((0, 7, 9)), True, True, id="adjusted-saturday-uses-monday"),
    # A worked weekend takes nobody off duty who works that weekday anyway (found by a
    # routing audit: Saturday's own hours were replaced by Monday's).
    pytest.param(ADJUSTED_SAT_10, SATURDAY_MORNING, True, True,
                 id="adjusted-saturday-keeps-saturday-hours"),
    pytest.param(SAT_10, SATURDAY_MORNING, True, True, id="custom-saturday-morning"),
    pytest.param(at(6, 8, 12), SATURDAY_MORNING, True, False, id="custom-hours-end-is-off"),
    pytest.param(MON_10, SATURDAY_MORNING, True, False, id="custom-hours-replace-default"),
    pytest.param(MON_10, (), True, False, id="empty-hours-never-on"),
    pytest.param(MON_10, None, False, False, id="inactive"),
    # "24:00" is stored as time.max: its last microsecond is on duty too (found by a routing
    # audit: the span was half-open at 23:59:59.999999, with nobody on duty for that moment).
    pytest.param(at(6, 3, 23, 59, 59).replace(microsecond=999_999),
                 (WeeklyHours(0, time(20), time.max), WeeklyHours(1, time(0), time(8))), True, True,
                 id="24:00-covers-the-last-microsecond"),
    # 01:30 UTC is 09:30 in Shanghai; 09:30 UTC is 17:30 there.
    pytest.param(datetime(2024, 6, 3, 1, 30, tzinfo=UTC), None, True, True, id="utc-0130-on"),
    pytest.param(datetime(2024, 6, 3, 9, 30, tzinfo=UTC), None, True, False, id="utc-0930-off"),
    # Sunday 23:30 UTC is already Monday 07:30 in Shanghai: the local weekday decides.
    pytest.param(datetime(2024, 6, 2, 23, 30, tzinfo=UTC), hours((0, 7, 8)), True, True,
                 id="utc-sunday-is-shanghai-monday"),
])
def test_on_duty(when, manager_hours, active, expected):
    assert on_duty(manager(1, hours=manager_hours, active=active), when, SH, CALENDAR) is expected


def test_naive_time_is_rejected():
    with pytest.raises(ValueError, match="aware"):
        on_duty(manager(1), datetime(2024, 6, 3, 10), SH, CALENDAR)


@pytest.mark.parametrize("build, message", [
    (lambda: WeeklyHours(0, time(17), time(9)), "after its start"),
    (lambda: WeeklyHours(7, time(9), time(17)), "weekday"),
    (lambda: GridManager(1, GRID, "deputy", None), "kind"),
    (lambda: OnCall(1, GRID, WEEK_ROTA[1], WEEK_ROTA[0]), "ends before"),
    (lambda: OnCall(1, GRID, datetime(2024, 6, 1), datetime(2024, 6, 2)), "aware"),
])
def test_invalid_schedule_data_is_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# -- choose_manager ----------------------------------------------------------------------

CASES = [
    # (id, when, managers, on_call, adjacent, duty_desk, expected user, grid, reason, shortfall)
    ("on-duty-primary-before-lower-id-backup", MON_10, [manager(11, "backup"), manager(12)],
     [], [], [], 12, GRID, "on_duty_primary", None),
    ("primary-off-backup-on", MON_10, [manager(11, hours=TUESDAYS), manager(12, "backup")],
     [], [], [], 12, GRID, "on_duty_backup", None),
    ("two-primaries-lowest-id", MON_10, [manager(15), manager(13)], [], [], [],
     13, GRID, "on_duty_primary", None),
    ("inactive-primary-ignored", MON_10, [manager(11, active=False), manager(12, "backup")],
     [], [], [], 12, GRID, "on_duty_backup", None),
    ("evening-grid-rota-beats-community", MON_19, [manager(11)],
     [rota(21, COMMUNITY, at(6, 3, 17)), rota(22, GRID, at(6, 3, 18))], [], [],
     22, GRID, "on_call", "grid_manager_off_duty"),
    ("evening-community-rota", MON_19, [manager(11)], [rota(21, COMMUNITY)], [], [],
     21, GRID, "on_call", "grid_manager_off_duty"),
    ("rota-tie-earliest-start", MON_19, [manager(11)],
     [rota(23, GRID, at(6, 3, 18)), rota(24, GRID, at(6, 3, 17))], [], [],
     24, GRID, "on_call", "grid_manager_off_duty"),
    ("rota-tie-lowest-id", MON_19, [manager(11)], [rota(26, GRID), rota(25, GRID)], [], [],
     25, GRID, "on_call", "grid_manager_off_duty"),
    ("rota-ended-or-elsewhere-ignored", MON_19, [manager(11)],
     [rota(21, GRID, at(6, 3, 8), at(6, 3, 19)), rota(22, NEAR), rota(23, "320104008005")],
     [], [5], 5, GRID, "community_duty_desk", "grid_manager_off_duty"),
    ("weekend-on-call", SAT_10, [manager(11), manager(12, "backup")], [rota(21, COMMUNITY)],
     [NEAR], [], 21, GRID, "on_call", "grid_manager_off_duty"),
    ("holiday-on-call", HOLIDAY_10, [manager(11)], [rota(21, GRID)], [NEAR], [],
     21, GRID, "on_call", "grid_manager_off_duty"),
    # On a holiday nobody's weekly hours apply, adjacent managers' included.
    ("holiday-no-rota-skips-adjacent", HOLIDAY_10, [manager(11), manager(31, grid=NEAR)], [],
     [NEAR], [7], 7, GRID, "community_duty_desk", "grid_manager_off_duty"),
    ("holiday-no-one-else", HOLIDAY_10, [manager(11)], [], [NEAR], [],
     None, None, None, "no_one_available"),
    ("adjusted-working-saturday", ADJUSTED_SAT_10, [manager(11)], [rota(21, GRID)], [], [],
     11, GRID, "on_duty_primary", None),
    ("custom-saturday-morning", SAT_10, [manager(11, hours=SATURDAY_MORNING)],
     [rota(21, GRID)], [], [], 11, GRID, "on_duty_primary", None),
    ("custom-hours-ended", at(6, 8, 12), [manager(11, hours=SATURDAY_MORNING)],
     [rota(21, GRID)], [], [], 21, GRID, "on_call", "grid_manager_off_duty"),
    ("09:00-on", at(6, 3, 9), [manager(11)], [rota(21, GRID)], [], [],
     11, GRID, "on_duty_primary", None),
    ("17:00-off", at(6, 3, 17), [manager(11)], [rota(21, GRID)], [], [],
     21, GRID, "on_call", "grid_manager_off_duty"),
    ("utc-when-0930-shanghai", datetime(2024, 6, 3, 1, 30, tzinfo=UTC), [manager(11)],
     [rota(21, GRID)], [], [], 11, GRID, "on_duty_primary", None),
    ("adjacent-in-given-order", MON_10,
     [manager(11, hours=TUESDAYS), manager(31, grid=NEAR), manager(30, grid=FAR)], [],
     [NEAR, FAR], [5], 31, NEAR, "adjacent_grid", "grid_manager_off_duty"),
    ("adjacent-skips-grid-off-duty", MON_10,
     [manager(11, hours=TUESDAYS), manager(31, grid=NEAR, hours=TUESDAYS),
      manager(32, "backup", grid=FAR), manager(33, grid=FAR)], [],
     [NEAR, FAR], [5], 33, FAR, "adjacent_grid", "grid_manager_off_duty"),
    ("adjacent-backup-when-primary-off", MON_10,
     [manager(11, hours=TUESDAYS), manager(30, grid=NEAR, hours=TUESDAYS),
      manager(34, "backup", grid=NEAR)], [], [NEAR], [],
     34, NEAR, "adjacent_grid", "grid_manager_off_duty"),
    ("no-active-manager-adjacent", MON_10, [manager(11, active=False), manager(31, grid=NEAR)],
     [], [NEAR], [], 31, NEAR, "adjacent_grid", "no_grid_manager"),
    ("non-adjacent-manager-ignored", MON_10, [manager(41, grid=OTHER)], [], [NEAR], [9, 6],
     6, GRID, "community_duty_desk", "no_grid_manager"),
    ("duty-desk-lowest-id", MON_19, [manager(11)], [], [NEAR], [9, 6, 8],
     6, GRID, "community_duty_desk", "grid_manager_off_duty"),
    ("nobody", MON_19, [manager(11)], [], [NEAR, FAR], [],
     None, None, None, "no_one_available"),
    ("nobody-at-all", MON_10, [], [], [], [], None, None, None, "no_one_available"),
]


@pytest.mark.parametrize(
    "when, managers, on_call, adjacent, duty_desk, user_id, grid_code, reason, shortfall",
    [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_choose_manager(when, managers, on_call, adjacent, duty_desk,
                        user_id, grid_code, reason, shortfall):
    decision = choose_manager(grid_code=GRID, community_code=COMMUNITY, when=when, tz=SH,
                              managers=managers, adjacent_grids=adjacent, on_call=on_call,
                              duty_desk=duty_desk, calendar=CALENDAR)
    assert (decision.user_id, decision.grid_code, decision.reason, decision.shortfall) == (
        user_id, grid_code, reason, shortfall)
    assert decision.considered and any(GRID in line for line in decision.considered)


def test_considered_traces_every_step_tried():
    decision = choose_manager(
        grid_code=GRID, community_code=COMMUNITY, when=HOLIDAY_10, tz=SH,
        managers=[manager(11), manager(12, "backup"), manager(13, active=False)],
        adjacent_grids=[NEAR], on_call=[], duty_desk=[], calendar=CALENDAR)
    assert decision.considered == (
        "local time Mon 2024-06-10 10:00 Asia/Shanghai, public holiday",
        f"grid {GRID}: no manager on duty (2 off duty, 1 inactive)",
        f"on-call: nobody covers grid {GRID} or community {COMMUNITY}",
        f"adjacent grid {NEAR}: no active manager",
        "community duty desk: nobody listed",
    )


def test_considered_names_the_chosen_on_call_scope():
    decision = choose_manager(grid_code=GRID, community_code=COMMUNITY, when=MON_19, tz=SH,
                              managers=[manager(11)], adjacent_grids=[], duty_desk=[],
                              on_call=[rota(7, COMMUNITY)])
    assert decision.considered[1:] == (f"grid {GRID}: no manager on duty (1 off duty)",
                                       f"on-call: user 7 covers community {COMMUNITY}")


# -- rank_crews --------------------------------------------------------------------------

LON, LAT = 118.7969, 32.0603  # the incident, in central Nanjing
CHAIN = ("3201040080040010101", "32010400800400101", GRID, COMMUNITY, "320104008", "320104")
WHEN = at(6, 3, 10)
_GEOD = Geod(ellps="WGS84")


def crew(crew_id: int, metres: float | None = 100.0, *, load: int = 0,
         idle_min: float | None = 30, skills: frozenset[str] = frozenset({"plumbing"}),
         status: str = "available", areas: frozenset[str] = frozenset({COMMUNITY}),
         bearing: float = 0.0) -> CrewCandidate:
    """A crew `metres` from the incident (None = position unknown), idle for `idle_min`."""
    lon = lat = None
    if metres is not None:
        lon, lat, _ = _GEOD.fwd(LON, LAT, bearing, metres)
    idle_since = None if idle_min is None else WHEN - timedelta(minutes=idle_min)
    return CrewCandidate(crew_id, f"crew-{crew_id}", skills, status, areas, lon, lat, load,
                         idle_since)


def rank(candidates, **kwargs):
    return rank_crews(candidates, skill="plumbing", lon=LON, lat=LAT, area_codes=CHAIN,
                      when=WHEN, **kwargs)


def ids(ranked) -> list[int]:
    return [r.crew_id for r in ranked]


@pytest.mark.parametrize("candidate, reason", [
    (crew(1, skills=frozenset({"electrical"})), "lacks skill plumbing"),
    (crew(2, status="busy"), "busy"),
    (crew(3, status="off"), "off"),
    (crew(4, areas=frozenset({"320104008005"})), "outside service area"),
    (crew(5, skills=frozenset(), status="off", areas=frozenset()), "lacks skill plumbing"),
])
def test_ineligible_crews_are_excluded_with_reason(candidate, reason):
    ranked, excluded = rank([candidate, crew(9)])
    assert ids(ranked) == [9]
    assert [(e.crew_id, e.name, e.reason) for e in excluded] == [
        (candidate.crew_id, candidate.name, reason)]


@pytest.mark.parametrize("area", ["320104", "320104008", GRID, "3201040080040010101"])
def test_service_area_at_any_level_of_the_chain(area):
    ranked, _ = rank([crew(1, areas=frozenset({area}))])
    assert ids(ranked) == [1] and f"serves {area}" in ranked[0].reasons


@pytest.mark.parametrize("candidates, expected", [
    pytest.param([crew(1, 900), crew(2, 150), crew(3, 400, bearing=180)], [2, 3, 1],
                 id="nearest-first"),
    pytest.param([crew(1, 150, load=3), crew(2, 900)], [1, 2],
                 id="distance-beats-load"),
    pytest.param([crew(1, 500.0, load=2), crew(2, 500.6, load=1, bearing=90)], [2, 1],
                 id="within-1m-tie-broken-by-load"),
    pytest.param([crew(1, 500, load=2), crew(2, 502, load=1)], [1, 2],
                 id="2m-apart-is-not-a-tie"),
    pytest.param([crew(1, 300, idle_min=10), crew(2, 300.5, idle_min=45)], [2, 1],
                 id="then-longest-idle"),
    pytest.param([crew(1, 300, idle_min=None), crew(2, 300, idle_min=1)], [2, 1],
                 id="unknown-idle-counts-as-just-free"),
    pytest.param([crew(3, 300), crew(2, 300, bearing=90), crew(1, 300, bearing=180)], [1, 2, 3],
                 id="then-crew-id"),
    pytest.param([crew(1, None), crew(2, 5000), crew(3, None, load=0), crew(4, 10)],
                 [4, 2, 1, 3], id="unknown-position-last"),
    pytest.param([crew(1, None, load=2), crew(2, None, load=1)], [2, 1],
                 id="unknown-positions-by-load"),
])
def test_ranking_order(candidates, expected):
    ranked, excluded = rank(candidates)
    assert ids(ranked) == expected and not excluded
    assert [r.rank for r in ranked] == list(range(1, len(expected) + 1))


def test_distance_is_geodesic_metres():
    ranked, _ = rank([crew(1, 1234.5)])
    assert ranked[0].distance_m == pytest.approx(1234.5, abs=0.01)


def test_reasons_explain_the_place():
    ranked, _ = rank([crew(1, 1234, load=2, idle_min=35, areas=frozenset({GRID, "320104"})),
                      crew(2, 80, load=1, idle_min=125), crew(3, None, idle_min=None)])
    reasons = {r.crew_id: r.reasons for r in ranked}
    assert reasons[1] == ("skill plumbing", "available", f"serves {GRID}", "1.2 km away",
                          "2 open jobs", "idle 35 min")
    assert reasons[2][3:] == ("80 m away", "1 open job", "idle 2 h 5 min")
    assert reasons[3][3:] == ("position unknown", "no open jobs", "idle time unknown")


def test_travel_time_ranks_instead_of_distance():
    def travel_time(from_lon, from_lat, to_lon, to_lat):
        assert (to_lon, to_lat) == (LON, LAT)
        # North of the incident is across the river: 20 min by road; south is 6 min.
        return 1200.0 if from_lat > LAT else 360.0

    ranked, _ = rank([crew(1, 300), crew(2, 2000, bearing=180), crew(3, None)],
                     travel_time=travel_time)
    assert ids(ranked) == [2, 1, 3]
    assert [r.travel_time_s for r in ranked] == [360.0, 1200.0, None]
    assert ranked[0].distance_m == pytest.approx(2000, abs=0.01)
    assert "6 min travel (ranked by travel time)" in ranked[0].reasons


def test_travel_time_ties_within_a_second_use_load():
    ranked, _ = rank([crew(1, 100, load=3), crew(2, 900, load=0)],
                     travel_time=lambda *_: 300.0)
    assert ids(ranked) == [2, 1]


@pytest.mark.parametrize("seed", range(5))
def test_deterministic_on_shuffled_input(seed):
    candidates = [crew(1, 500.0, load=1), crew(2, 500.4, bearing=90, load=1, idle_min=40),
                  crew(3, 500.8, bearing=180, load=1, idle_min=40), crew(4, 120),
                  crew(5, None), crew(6, None, load=0, idle_min=90), crew(7, status="busy"),
                  crew(8, skills=frozenset()), crew(9, 2000, idle_min=None)]
    expected = rank(candidates)
    shuffled = candidates[:]
    random.Random(seed).shuffle(shuffled)
    assert rank(shuffled) == expected
    assert ids(expected[0]) == [4, 2, 3, 1, 9, 6, 5]


def test_area_codes_as_a_set_are_accepted():
    ranked, _ = rank_crews([crew(1, areas=frozenset({GRID, COMMUNITY}))], skill="plumbing",
                           lon=LON, lat=LAT, area_codes=frozenset(CHAIN), when=WHEN)
    assert f"serves {GRID}" in ranked[0].reasons
