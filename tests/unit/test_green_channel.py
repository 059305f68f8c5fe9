from datetime import UTC, datetime, timedelta

from app.domain.green_channel import TargetStatus, evaluate, percentile

DOOR = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
DNT = [
    {
        "code": "dnt",
        "name": "Door to needle",
        "from": "door",
        "to": "treatment_start",
        "minutes": 60,
    }
]


def test_met_missed_pending() -> None:
    met = evaluate(DNT, {"door": DOOR, "treatment_start": DOOR + timedelta(minutes=40)}, DOOR)
    assert met[0].status is TargetStatus.MET and met[0].actual_minutes == 40
    missed = evaluate(DNT, {"door": DOOR, "treatment_start": DOOR + timedelta(minutes=75)}, DOOR)
    assert missed[0].status is TargetStatus.MISSED
    assert evaluate(DNT, {"door": DOOR}, DOOR + timedelta(minutes=30))[0].status == "pending"
    late = evaluate(DNT, {"door": DOOR}, DOOR + timedelta(minutes=61))
    assert late[0].status is TargetStatus.MISSED and late[0].actual_minutes is None
    assert evaluate(DNT, {}, DOOR)[0].status is TargetStatus.PENDING


def test_exactly_on_target_is_met() -> None:
    on_time = {"door": DOOR, "treatment_start": DOOR + timedelta(minutes=60)}
    assert evaluate(DNT, on_time, DOOR)[0].status is TargetStatus.MET


def test_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([10.0], 0.9) == 10.0
    assert percentile([10.0, 20.0, 30.0, 40.0], 0.5) == 25.0
    assert percentile([float(i) for i in range(1, 11)], 0.9) == 9.1
