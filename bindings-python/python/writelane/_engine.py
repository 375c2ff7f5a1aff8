"""The sans-IO engine itself, for hosts that drive it with their own clock and IO.

Values are the core's JSON forms as Python dicts (the shapes of ``tests/vectors``);
``now`` is integer milliseconds on a clock the caller chooses and never moves backwards.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional

from . import _native
from ._errors import UsageError
from ._policy import Policy, PolicyLike, coerce_policy, coerce_seed


def _ms(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError("invalid_argument", f"{field}: expected int milliseconds, found {type(value).__name__}")
    if value < 0 or value >= 1 << 64:
        raise UsageError("invalid_argument", f"{field}: must be in 0..2**64, found {value}")
    return value


def _op(value: Any) -> int:
    return _ms(value, "op")


class Engine:
    """The core's sans-IO write-discipline engine, one call at a time.

    Run loop: :meth:`submit` writes, drain :meth:`poll_command` and carry each command
    out, feed results with :meth:`handle`, and call :meth:`handle_timeout` when
    :meth:`poll_timeout` says. Misuse raises :class:`writelane.UsageError` with ``kind``.
    The engine is safe to share between threads (calls are serialised), but one driver
    is the intended use; :class:`writelane.Lane` is the threaded driver.

    Shared lanes (``lanes.mode = "shared"``) need an ``owner`` (unique per process); they
    emit ``store`` commands, which the host carries out with a lease store
    (:func:`writelane.stores.apply`) and answers with a ``store_reply`` input. A host with a
    store runs :meth:`writelane.Policy.for_store` of its policy, as ``Lane`` does.
    """

    def __init__(self, policy: PolicyLike = None, *, seed: Optional[int] = 0, owner: Optional[str] = None) -> None:
        if owner is not None and not isinstance(owner, str):
            raise UsageError("invalid_argument", f"owner: expected str or None, found {type(owner).__name__}")
        self._native = _native.NativeEngine(coerce_policy(policy), coerce_seed(seed), owner)

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return Policy(self._native.policy())

    def submit(
        self,
        entity: str,
        now: int,
        *,
        expected: Optional[str] = None,
        deadline_ms: Optional[int] = None,
        holder: Optional[str] = None,
        no_read: bool = False,
    ) -> int:
        """Start one logical write of ``entity``; returns its op id (from 1). ``holder``
        describes the writer in lease records (shared lanes); ``no_read``: the writer has
        no read function, so the engine never commands a read (``expected`` is then
        refused with ``expected_needs_read``)."""
        if not isinstance(entity, str):
            raise UsageError("invalid_argument", f"entity: expected str, found {type(entity).__name__}")
        if expected is not None and not isinstance(expected, str):
            raise UsageError("invalid_argument", "expected: expected str or None")
        if deadline_ms is not None:
            _ms(deadline_ms, "deadline_ms")
        if holder is not None and not isinstance(holder, str):
            raise UsageError("invalid_argument", "holder: expected str or None")
        if not isinstance(no_read, bool):
            raise UsageError("invalid_argument", "no_read: expected bool")
        return int(self._native.submit(entity, _ms(now, "now"), expected, deadline_ms, holder, no_read))

    def submit_update(
        self,
        entity: str,
        now: int,
        *,
        deadline_ms: Optional[int] = None,
        holder: Optional[str] = None,
    ) -> int:
        """Start one update of ``entity`` (group commit): a change the host applies to the
        entity's document when the engine says so (an ``apply`` action from
        :meth:`poll_action`). Updates always read, so they take no ``expected``. Returns its
        op id."""
        if not isinstance(entity, str):
            raise UsageError("invalid_argument", f"entity: expected str, found {type(entity).__name__}")
        if deadline_ms is not None:
            _ms(deadline_ms, "deadline_ms")
        if holder is not None and not isinstance(holder, str):
            raise UsageError("invalid_argument", "holder: expected str or None")
        return int(self._native.submit_update(entity, _ms(now, "now"), deadline_ms, holder))

    def handle(self, now: int, input: Dict[str, Any]) -> None:  # noqa: A002
        """Feed one input: ``{"type": "read_done", "op": 1, "token": "v1"}``, ``write_done``,
        ``read_failed``/``write_failed`` with a ``failure`` dict, ``store_reply`` with a
        ``reply`` dict, ``apply_done`` with ``results``, or ``cancel``."""
        if not isinstance(input, dict):
            raise UsageError("invalid_argument", f"input: expected a dict, found {type(input).__name__}")
        try:
            text = json.dumps(input)
        except (TypeError, ValueError) as exc:
            raise UsageError("invalid_argument", f"input: not representable as JSON: {exc}") from None
        self._native.handle(_ms(now, "now"), text)

    def handle_timeout(self, now: int) -> None:
        """Fire every timer due at or before ``now``."""
        self._native.handle_timeout(_ms(now, "now"))

    def poll_command(self) -> Optional[Dict[str, Any]]:
        """The next command (``read``, ``write``, ``store`` or ``finish``), or ``None``."""
        text = self._native.poll_command()
        return None if text is None else json.loads(text)

    def poll_command_for(self, op: int) -> Optional[Dict[str, Any]]:
        """The pending command of one op, or ``None``."""
        text = self._native.poll_command_for(_op(op))
        return None if text is None else json.loads(text)

    def poll_action(self) -> Optional[Dict[str, Any]]:
        """The next command or batch step, or ``None``: :meth:`poll_command` for hosts that
        submit updates, which also returns ``{"type": "apply", "op": L, "ops": [...]}``
        (run each op's change in order on the document the leader read, then feed
        ``{"type": "apply_done", "op": L, "results": [{"op": ..., "applied": ...,
        "code": ...}]}`` in the same order)."""
        text = self._native.poll_action()
        return None if text is None else json.loads(text)

    def poll_action_for(self, op: int) -> Optional[Dict[str, Any]]:
        """The pending command or batch step of one op, or ``None``."""
        text = self._native.poll_action_for(_op(op))
        return None if text is None else json.loads(text)

    def poll_timeout(self) -> Optional[int]:
        """When :meth:`handle_timeout` must next be called, or ``None``."""
        return self._native.poll_timeout()

    def poll_timeout_for(self, op: int) -> Optional[int]:
        """When one op's timer fires, or ``None``."""
        return self._native.poll_timeout_for(_op(op))

    def poll_event(self) -> Optional[Dict[str, Any]]:
        """The next telemetry event in the core's JSON form, or ``None``."""
        text = self._native.poll_event()
        return None if text is None else json.loads(text)

    def stats(self) -> Dict[str, Any]:
        """Counters and budget levels now."""
        return json.loads(self._native.stats())  # type: ignore[no-any-return]

    def export_state(self) -> Dict[str, Any]:
        """What the engine learned: committed tokens and budget levels."""
        return json.loads(self._native.export_state())  # type: ignore[no-any-return]

    def import_state(self, state: Dict[str, Any]) -> None:
        """Restore what :meth:`export_state` returned."""
        if not isinstance(state, dict):
            raise UsageError("invalid_argument", f"state: expected a dict, found {type(state).__name__}")
        self._native.import_state(json.dumps(state))
