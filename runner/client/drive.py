"""Running the protocol core's steps with a transport: once blocking, once on an asyncio event loop.

A step generator yields actions (and, for a watch, events); ``perform`` turns an action into its
outcome, which is sent back into the generator. These four loops are the only place where the two
clients differ in how they run the shared logic.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Awaitable, Callable, Generator, Iterator, TypeVar

from runner.events import Event

T = TypeVar("T")


def run_steps(steps: Generator[Any, Any, T], perform: Callable[[Any], Any]) -> T:
    """Run ``steps`` to the end, performing each action with ``perform``; returns their result."""
    outcome: Any = None
    try:
        while True:
            try:
                action = steps.send(outcome)
            except StopIteration as stop:
                return stop.value
            outcome = perform(action)
    finally:
        steps.close()


def stream_steps(steps: Generator[Any, Any, None], perform: Callable[[Any], Any]) -> Iterator[Event]:
    """Like :func:`run_steps`, passing the events the steps yield on to the caller."""
    outcome: Any = None
    try:
        while True:
            try:
                item = steps.send(outcome)
            except StopIteration:
                return
            if isinstance(item, Event):
                outcome = None
                yield item
            else:
                outcome = perform(item)
    finally:
        steps.close()


async def arun_steps(steps: Generator[Any, Any, T], perform: Callable[[Any], Awaitable[Any]]) -> T:
    """:func:`run_steps` with an awaitable ``perform``."""
    outcome: Any = None
    try:
        while True:
            try:
                action = steps.send(outcome)
            except StopIteration as stop:
                return stop.value
            outcome = await perform(action)
    finally:
        steps.close()


async def astream_steps(steps: Generator[Any, Any, None], perform: Callable[[Any], Awaitable[Any]]) -> AsyncIterator[Event]:
    """:func:`stream_steps` with an awaitable ``perform``."""
    outcome: Any = None
    try:
        while True:
            try:
                item = steps.send(outcome)
            except StopIteration:
                return
            if isinstance(item, Event):
                outcome = None
                yield item
            else:
                outcome = await perform(item)
    finally:
        steps.close()
