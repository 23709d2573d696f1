"""Faust's slow-processing diagnostic must not crash the worker on a partition whose fetch
position is being reset (streams/consumer.ClarionConsumer.verify_event_path)."""

from __future__ import annotations

from unittest import mock

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.subscription_state import SubscriptionState
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from streams.consumer import ClarionConsumer


async def test_aiokafka_asserts_on_the_position_of_a_partition_awaiting_its_reset() -> None:
    # What the diagnostic meets after `seek_to_committed` sought a partition to its start.
    state = SubscriptionState()
    state.assign_from_user({TopicPartition("t", 0)})
    tp_state = state.subscription.assignment.state_value(TopicPartition("t", 0))
    tp_state.await_reset(0)  # seek_to_beginning: OffsetResetStrategy.EARLIEST
    with pytest.raises(AssertionError):
        tp_state.position  # noqa: B018


def test_the_diagnostic_skips_a_partition_without_a_position() -> None:
    consumer = object.__new__(ClarionConsumer)  # only the override runs
    with mock.patch.object(driver.Consumer, "verify_event_path", side_effect=AssertionError):
        assert consumer.verify_event_path(0.0, TP("t", 0)) is None


def test_the_diagnostic_runs_for_a_partition_with_a_position() -> None:
    consumer = object.__new__(ClarionConsumer)
    with mock.patch.object(driver.Consumer, "verify_event_path") as faust_check:
        consumer.verify_event_path(1.5, TP("t", 0))
    faust_check.assert_called_once_with(1.5, TP("t", 0))
