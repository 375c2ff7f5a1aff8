"""Policies: a preset plus overrides, validated by the core."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Union

from . import _native
from ._errors import PolicyError

#: every preset name, in documentation order
PRESETS = tuple(_native.PRESETS)

_MAX_SEED = (1 << 64) - 1


def _kind(value: object) -> str:
    return type(value).__name__


class Policy:
    """A complete, validated writelane policy.

    Build one with :meth:`Policy.preset` (``"iam"`` is the default preset,
    ``"aws-standard"`` reproduces the AWS SDK standard retry mode), :meth:`Policy.from_json`
    or :meth:`Policy.from_dict`. Every field is checked by the core; a bad one raises
    :class:`writelane.PolicyError` naming the field. Policies are immutable values.
    """

    __slots__ = ("_json", "_dict")

    def __init__(self, _effective_json: str) -> None:
        """Internal: use the class methods. ``_effective_json`` is the core's form."""
        self._json = _effective_json
        self._dict: Dict[str, Any] = json.loads(_effective_json)

    @classmethod
    def preset(cls, name: str = "iam", **overrides: Any) -> "Policy":
        """The preset ``name`` with ``overrides`` of top-level fields merged in, e.g.
        ``Policy.preset("iam", deadline_ms=30_000, retry={"conflict": {"max_attempts": 5}})``.
        """
        if not isinstance(name, str):
            raise PolicyError("preset", f"expected a string, found {_kind(name)}")
        for key in ("preset",):
            if key in overrides:
                raise PolicyError(key, "give the preset as the first argument")
        return cls.from_dict({"preset": name, **overrides})

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> "Policy":
        """A policy from a dict of the JSON form (an optional ``preset``, an optional
        ``service``, and overrides of any field)."""
        if not isinstance(document, Mapping):
            raise PolicyError("$", f"expected a dict, found {_kind(document)}")
        for key in document:
            if not isinstance(key, str):
                raise PolicyError("$", f"field names must be strings, found {_kind(key)}")
        try:
            text = json.dumps(dict(document), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise PolicyError(_bad_path(document), f"not representable as JSON: {exc}") from None
        return cls.from_json(text)

    @classmethod
    def from_json(cls, text: str) -> "Policy":
        """A policy from JSON text: a preset name as a JSON string, or an object of
        overrides."""
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError:
                raise PolicyError("$", "policy JSON is not UTF-8") from None
        if not isinstance(text, str):
            raise PolicyError("$", f"expected JSON text, found {_kind(text)}")
        return cls(_native.policy_json(text))

    def for_store(self) -> "Policy":
        """The policy a lane with a lease store runs, by the core's rule: the same policy
        with ``lanes.mode = "shared"``, whatever the preset or the overrides said."""
        return Policy(_native.policy_for_store(self._json))

    def to_json(self) -> str:
        """The effective policy as JSON; :meth:`from_json` gives the same policy back."""
        return self._json

    def to_dict(self) -> Dict[str, Any]:
        """The effective policy as a dict (a copy)."""
        copy: Dict[str, Any] = json.loads(self._json)
        return copy

    @property
    def name(self) -> str:
        """The preset this policy started from."""
        return str(self._dict["preset"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Policy) and self._dict == other._dict

    def __hash__(self) -> int:
        return hash(self._json)

    def __repr__(self) -> str:
        return f"Policy(preset={self.name!r})"


def _bad_path(document: Mapping[str, Any]) -> str:
    """The top-level field whose value cannot be serialised, or ``$``."""
    for key, value in document.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return str(key)
    return "$"


PolicyLike = Union[None, str, Mapping[str, Any], Policy]


def coerce_policy(policy: PolicyLike) -> str:
    """The JSON text of a policy argument: ``None`` (the ``iam`` preset), a preset name,
    JSON text, a dict or a :class:`Policy`."""
    if policy is None:
        return json.dumps("iam")
    if isinstance(policy, Policy):
        return policy.to_json()
    if isinstance(policy, str):
        stripped = policy.strip()
        if stripped.startswith(("{", '"', "[")) or stripped in ("null", "true", "false"):
            return policy
        return json.dumps(policy)
    if isinstance(policy, Mapping):
        return Policy.from_dict(policy).to_json()
    raise PolicyError(
        "policy",
        f"expected a preset name, JSON text, a dict or a writelane.Policy, found {_kind(policy)}",
    )


def coerce_seed(seed: object) -> int:
    """A jitter seed: ``None`` draws one from the OS, else an integer in ``0..2**64``."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise PolicyError("seed", f"expected an integer, found {_kind(seed)}")
    if seed < 0 or seed > _MAX_SEED:
        raise PolicyError("seed", f"must be in 0..=2**64-1, found {seed}")
    return seed
