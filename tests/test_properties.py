"""Property tests of the configuration and submit surface (hypothesis).

The rule: every input either works or raises a ``LaneError`` subclass whose
message names the problem — never another exception type, never a hang,
never a crash — and a queue that refused an input still serves the next one.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import WAIT
from pylane import (
    DeadLetterQueue,
    LaneConfig,
    LaneError,
    PriorityBoostConfig,
    QueueManagerBuilder,
    RateLimitConfig,
    RetryPolicy,
)
from pylane.alerts import AlertManager
from pylane.monitor import MonitorConfig

# Anything a user might pass where a number, a duration or a name goes.
weird = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5), st.binary(max_size=3),
    st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=2)),
    st.lists(st.integers(), max_size=2), st.just(object()),
    st.just(10**400), st.just(1e300), st.just(-0.0),
)

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def works_or_lane_error(make):
    """Calls make(); anything but success or a LaneError fails the test."""
    try:
        return make()
    except LaneError as error:
        assert str(error), "a LaneError with no message"
        return None


CONFIG_CALLS = [
    lambda v: LaneConfig.new(v, 4),
    lambda v: LaneConfig.new(1, v),
    lambda v: LaneConfig("x", priority=v),
    lambda v: LaneConfig(v),
    lambda v: LaneConfig.new(1, 2).with_timeout(v),
    lambda v: LaneConfig.new(1, 2).with_timeout(1, grace=v),
    lambda v: LaneConfig.new(1, 2).with_pressure_threshold(v),
    lambda v: LaneConfig.new(1, 2).with_rate_limit(v),
    lambda v: LaneConfig.new(1, 2).with_retry_policy(v),
    lambda v: LaneConfig.new(1, 2).with_priority_boost(v),
    lambda v: RetryPolicy(v),
    lambda v: RetryPolicy(2, v, 1.0),
    lambda v: RetryPolicy(2, 0.1, v),
    lambda v: RetryPolicy(2, 0.1, 1.0, v),
    lambda v: RetryPolicy.fixed(2, v),
    lambda v: RetryPolicy.exponential(v),
    lambda v: RateLimitConfig.new(v, 1),
    lambda v: RateLimitConfig.new(5, v),
    lambda v: RateLimitConfig(5, v),
    lambda v: PriorityBoostConfig.new(v),
    lambda v: PriorityBoostConfig.standard(v),
    lambda v: PriorityBoostConfig.new(10).with_boost(v, 1),
    lambda v: PriorityBoostConfig.new(10).with_boost(1, v),
    lambda v: PriorityBoostConfig(True, 10, v),
    lambda v: DeadLetterQueue(v),
    lambda v: QueueManagerBuilder().with_max_workers(v),
    lambda v: QueueManagerBuilder().with_dlq(v),
    lambda v: QueueManagerBuilder().with_lane(v, LaneConfig.new(1, 2)),
    lambda v: QueueManagerBuilder().with_lane("x", v),
    lambda v: QueueManagerBuilder().with_lane("x", LaneConfig.new(1, 2), v),
    lambda v: QueueManagerBuilder().with_storage(v),
    lambda v: QueueManagerBuilder().with_metrics(v),
    lambda v: AlertManager.with_queue_depth_alerts(v, 10),
    lambda v: AlertManager.with_latency_alerts(1.0, v),
    lambda v: MonitorConfig(interval=v),
]


@pytest.mark.parametrize("call", range(len(CONFIG_CALLS)))
@PROPERTY
@given(value=weird)
def test_configuration_works_or_raises_a_lane_error(call, value):
    works_or_lane_error(lambda: CONFIG_CALLS[call](value))


@pytest.fixture(scope="module")
def shared():
    manager = (QueueManagerBuilder().with_lane("work", LaneConfig.new(1, 2))
               .with_max_workers(2).build())
    manager.start()
    yield manager
    manager.shutdown()
    manager.drain(WAIT)


@PROPERTY
@given(lane=weird, payload=weird)
def test_submit_surface_works_or_raises_a_lane_error(shared, lane, payload):
    for call in (
        lambda: shared.submit(lane, lambda: payload).result(WAIT),
        lambda: shared.run("work", lambda: payload),
        lambda: shared.cancel(lane),
        lambda: shared.pause_lane(lane),
        lambda: shared.resume_lane(lane),
        lambda: shared.drain(payload),  # idle: any valid timeout returns at once
    ):
        try:
            works_or_lane_error(call)
        except TypeError as error:
            # A non-callable command is the one TypeError we keep (as
            # ThreadPoolExecutor.submit does); nothing here passes one.
            pytest.fail(f"TypeError escaped: {error}")
    assert shared.run("work", lambda: "still serving") == "still serving"


@PROPERTY
@given(command_type=weird, payload=st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                   max_size=3),
    max_leaves=20))
def test_sdk_submit_works_or_raises_a_lane_error(sdk_lane, command_type, payload):
    try:
        result = sdk_lane.submit("query", command_type, payload)
    except LaneError as error:
        assert str(error)
        return
    assert result == payload  # unregistered types echo the payload


@pytest.fixture(scope="module")
def sdk_lane():
    from pylane import Lane
    lane = Lane()
    lane.start()
    yield lane
    lane.shutdown()
    lane.drain(WAIT)
