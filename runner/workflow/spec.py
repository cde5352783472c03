"""Reading the input specifications of ``/object_info`` and checking values against them.

``/object_info`` mixes two generations of spec shapes (old-style combo lists, new-style
``["COMBO", {"options": [...]}]``, V3 dynamic combos whose chosen option brings sub-inputs).
This module turns them into one small :class:`InputSpec` so the converter and the override
validator never look at the raw shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Types the web UI draws as widgets (a value typed into the node) rather than as sockets.
SCALAR_WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN"})
COMBO = "COMBO"
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
# Values the UI stores in the extra "control after generate" widget that follows a seed.
CONTROL_AFTER_GENERATE_VALUES = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})


@dataclass(frozen=True)
class InputSpec:
    """One input of a node class, normalised from its ``/object_info`` spec."""

    name: str
    type: str
    options: dict[str, Any] = field(default_factory=dict)
    required: bool = True
    choices: tuple[Any, ...] | None = None
    # For a V3 dynamic combo: option key -> the sub-inputs that option adds (names already dotted).
    sub_inputs: dict[str, tuple["InputSpec", ...]] = field(default_factory=dict)

    @property
    def is_widget(self) -> bool:
        """True when the UI shows this input as a widget (and saves a value for it)."""
        if self.options.get("forceInput"):
            return False
        return self.type in SCALAR_WIDGET_TYPES or self.type in (COMBO, DYNAMIC_COMBO)

    @property
    def has_control_widget(self) -> bool:
        """True when the UI adds a "control after generate" widget right after this one."""
        return bool(self.options.get("control_after_generate"))

    @property
    def upload_kind(self) -> str | None:
        """``"image"``/``"video"``/``"audio"``/``"file"`` for inputs with an upload button, else None."""
        for key, value in self.options.items():
            if key.endswith("_upload") and value:
                return key[: -len("_upload")]
        return None

    def describe(self) -> str:
        """Short human description: type plus the limits a user must respect."""
        if self.choices is not None:
            shown = ", ".join(repr(c) for c in self.choices[:8])
            more = f", ... ({len(self.choices)} in all)" if len(self.choices) > 8 else ""
            return f"one of [{shown}{more}]" if self.choices else "a choice (the server lists none)"
        parts = [self.type]
        if "min" in self.options:
            parts.append(f"min {self.options['min']}")
        if "max" in self.options:
            parts.append(f"max {self.options['max']}")
        return ", ".join(parts)


def _parse_one(name: str, raw: Any, required: bool) -> InputSpec:
    if isinstance(raw, str):  # old-style hidden input: "prompt": "PROMPT"
        return InputSpec(name=name, type=raw, required=required)
    if not isinstance(raw, (list, tuple)) or not raw:
        return InputSpec(name=name, type="UNKNOWN", required=required)
    head = raw[0]
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
    if isinstance(head, list):  # old-style combo: the list itself is the type
        return InputSpec(name=name, type=COMBO, options=options, required=required, choices=tuple(head))
    if head == COMBO:
        return InputSpec(
            name=name, type=COMBO, options=options, required=required, choices=tuple(options.get("options") or ())
        )
    if head == DYNAMIC_COMBO:
        subs: dict[str, tuple[InputSpec, ...]] = {}
        keys = []
        for option in options.get("options") or ():
            key = option.get("key")
            keys.append(key)
            subs[key] = tuple(
                _prefixed(spec, name) for spec in parse_input_groups(option.get("inputs") or {}, None)
            )
        return InputSpec(
            name=name, type=DYNAMIC_COMBO, options=options, required=required, choices=tuple(keys), sub_inputs=subs
        )
    return InputSpec(name=name, type=str(head), options=options, required=required)


def _prefixed(spec: InputSpec, parent: str) -> InputSpec:
    return InputSpec(
        name=f"{parent}.{spec.name}",
        type=spec.type,
        options=spec.options,
        required=spec.required,
        choices=spec.choices,
        sub_inputs={k: tuple(_prefixed(s, parent) for s in v) for k, v in spec.sub_inputs.items()},
    )


def parse_input_groups(groups: dict[str, Any], order: dict[str, list[str]] | None) -> list[InputSpec]:
    """Required then optional inputs (hidden ones left out), in widget order when ``order`` is given."""
    specs: list[InputSpec] = []
    for group in ("required", "optional"):
        entries = groups.get(group) or {}
        names = list((order or {}).get(group) or entries.keys())
        names += [n for n in entries if n not in names]  # input_order may be missing newer inputs
        for name in names:
            if name in entries:
                specs.append(_parse_one(name, entries[name], group == "required"))
    return specs


def class_inputs(info: dict[str, Any]) -> list[InputSpec]:
    """The visible inputs of one ``/object_info`` class entry, in the UI's widget order."""
    return parse_input_groups(info.get("input") or {}, info.get("input_order"))


def all_input_specs(info: dict[str, Any], chosen: dict[str, Any] | None = None) -> dict[str, InputSpec]:
    """Every input name a prompt may carry for this class, dynamic sub-inputs included.

    ``chosen`` (the node's current inputs) selects which option of each dynamic combo is active;
    without it the sub-inputs of every option are returned.
    """
    found: dict[str, InputSpec] = {}

    def visit(spec: InputSpec) -> None:
        found[spec.name] = spec
        if spec.type == DYNAMIC_COMBO:
            selected = None if chosen is None else chosen.get(spec.name)
            for key, subs in spec.sub_inputs.items():
                if selected is None or key == selected:
                    for sub in subs:
                        visit(sub)

    for spec in class_inputs(info):
        visit(spec)
    return found


def check_value(spec: InputSpec, value: Any) -> tuple[Any, str | None]:
    """Coerce ``value`` the way the server would and return ``(value, problem or None)``."""
    kind = spec.type
    if kind in (COMBO, DYNAMIC_COMBO):
        choices = spec.choices or ()
        if value not in choices:
            return value, f"{value!r} is not {spec.describe()}"
        return value, None
    if kind == "BOOLEAN":
        if isinstance(value, bool):
            return value, None
        return value, f"{value!r} is not a boolean (use true or false)"
    if kind == "STRING":
        if isinstance(value, (dict, list)):
            return value, f"{value!r} is not a string"
        return value if isinstance(value, str) else str(value), None
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            return value, f"{value!r} is not a number ({kind})"
        try:
            number: int | float = int(value) if kind == "INT" else float(value)
        except (TypeError, ValueError):
            return value, f"{value!r} is not a number ({kind})"
        if kind == "INT" and isinstance(value, float) and not value.is_integer():
            return value, f"{value!r} is not a whole number (INT)"
        low, high = spec.options.get("min"), spec.options.get("max")
        if low is not None and number < low:
            return number, f"{number} is below the minimum {low}"
        if high is not None and number > high:
            return number, f"{number} is above the maximum {high}"
        return number, None
    # A socket type: only a link can feed it.
    return value, f"input takes a link of type {kind}, not a literal value"
