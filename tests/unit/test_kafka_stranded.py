"""When a member holding no partitions is stranded (streamgate/kafka/stranded.py): pure logic."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streamgate.config import Settings
from streamgate.kafka.stranded import GroupView, StrandedWatch
from streamgate.kafka.stuck import STUCK_EXIT


@pytest.mark.parametrize(("view", "stranded"), [
    (GroupView(stable=True, ours=0, unowned=0), False),  # a spare member: every partition has an owner
    (GroupView(stable=True, ours=2, unowned=0), True),  # the coordinator says it holds two
    (GroupView(stable=True, ours=0, unowned=1), True),  # a partition nobody holds
    (GroupView(stable=False, ours=0, unowned=0), True),  # still not stable after the wait
])
def test_view(view: GroupView, stranded: bool) -> None:
    assert view.stranded() is stranded


class _Asked(StrandedWatch):
    def __init__(self, view: GroupView) -> None:
        super().__init__(Settings(), role="admin", group="g", instance_id="g-0", topics=["t"], after_s=10)
        self.view, self.asked = view, 0

    def _view(self) -> GroupView:
        self.asked += 1
        return self.view


def test_the_group_is_asked_only_after_holding_nothing_for_after_s_and_then_once_per_after_s() -> None:
    watch = _Asked(GroupView(stable=True, ours=1, unowned=0))
    assert not watch.stranded(False, now=0.0)
    assert not watch.stranded(False, now=9.9)
    assert watch.asked == 0
    assert watch.stranded(False, now=10.0)
    assert not watch.stranded(False, now=15.0)
    assert watch.stranded(False, now=20.0)
    assert watch.asked == 2


def test_holding_partitions_resets_the_wait() -> None:
    watch = _Asked(GroupView(stable=True, ours=1, unowned=0))
    assert not watch.stranded(False, now=0.0)
    assert not watch.stranded(True, now=8.0)
    assert not watch.stranded(False, now=12.0)
    assert not watch.stranded(False, now=21.0)
    assert watch.asked == 0
    assert watch.stranded(False, now=22.0)


def test_a_spare_member_is_never_stranded() -> None:
    watch = _Asked(GroupView(stable=True, ours=0, unowned=0))
    assert not any(watch.stranded(False, now=float(t)) for t in range(0, 100, 5))
    assert watch.asked == 9


def test_exit_when_stranded_ends_the_process_with_the_restart_status() -> None:
    code = ("from streamgate.kafka.stranded import StrandedMemberError, exit_when_stranded\n"
            "with exit_when_stranded():\n"
            "    raise StrandedMemberError('sink: group g left member g-0 without partitions')\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == STUCK_EXIT
    assert "exiting for a restart" in done.stderr
