"""The video state machine, the one place that decides which transitions are legal.

    CREATED --complete_upload--> PROCESSING --finish--> READY
                                 PROCESSING --fail----> FAILED --retry--> PROCESSING

Every state change in control names its event and goes through ``next_state``
(see store._transition), so no other code compares states to allow a change.
"""

from __future__ import annotations

from enum import StrEnum

from control.errors import IllegalTransition


class VideoState(StrEnum):
    CREATED = "CREATED"
    PROCESSING = "PROCESSING"
    READY = "READY"
    FAILED = "FAILED"


class Event(StrEnum):
    COMPLETE_UPLOAD = "complete_upload"
    RETRY = "retry"
    FINISH = "finish"
    FAIL = "fail"


# event -> (the state it starts from, the state it leads to, why it is refused otherwise)
_RULES: dict[Event, tuple[VideoState, VideoState, str]] = {
    Event.COMPLETE_UPLOAD: (VideoState.CREATED, VideoState.PROCESSING,
                            "an upload can be completed only for a CREATED video"),
    Event.RETRY: (VideoState.FAILED, VideoState.PROCESSING,
                  "only a FAILED video can be retried"),
    Event.FINISH: (VideoState.PROCESSING, VideoState.READY,
                   "only a PROCESSING video can become READY"),
    Event.FAIL: (VideoState.PROCESSING, VideoState.FAILED,
                 "only a PROCESSING video can fail"),
}

TRANSITIONS: frozenset[tuple[VideoState, VideoState]] = frozenset(
    (source, target) for source, target, _ in _RULES.values())


def target_of(event: Event) -> VideoState:
    return _RULES[event][1]


def next_state(current: VideoState, event: Event) -> VideoState:
    """The state ``event`` leads to from ``current``; IllegalTransition with the rule
    and both states when the event is not allowed there."""
    source, target, rule = _RULES[event]
    if current is not source:
        raise IllegalTransition(
            f"the video is {current.value} and cannot move to {target.value}: {rule}")
    return target
