"""Base class, shared field types and loading helpers for the strict pydantic configs."""

from __future__ import annotations

import json
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

T = TypeVar("T", bound="StrictModel")


class StrictModel(BaseModel):
    """A config model that rejects unknown fields, validates on assignment, and never takes
    a boolean for a number (pydantic would read ``batch_size: true`` as 1)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _misplaced_bool(value, field.annotation):
            if isinstance(value, bool):
                raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
            raise ValueError(f"expected numbers, got a boolean in {value!r}")
        return value


def _members(tp: Any) -> list[Any]:
    """The types a field annotation admits, with Optional/Union/Annotated unwrapped."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _members(get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        return [m for a in get_args(tp) for m in _members(a)]
    return [tp]


def _misplaced_bool(value: Any, tp: Any) -> bool:
    """Whether ``value`` is, or holds, a boolean where ``tp`` wants a number (int/float)
    and no boolean (looking into lists, tuples and dict values)."""
    members = _members(tp)
    if isinstance(value, bool):
        numeric = any(m is int or m is float for m in members)
        return numeric and not any(m is bool or m is Any or m is object for m in members)
    for m in members:
        origin, args = get_origin(m), get_args(m)
        if isinstance(value, list | tuple) and origin in (list, tuple, set, frozenset, Sequence):
            if origin is tuple and args and args[-1] is not Ellipsis:
                pairs = list(zip(value, args, strict=False))
            else:
                pairs = [(x, args[0] if args else Any) for x in value]
            if any(_misplaced_bool(x, a) for x, a in pairs):
                return True
        elif (
            isinstance(value, dict)
            and origin in (dict, Mapping)
            and len(args) == 2
            and any(_misplaced_bool(x, args[1]) for x in value.values())
        ):
            return True
    return False


# A Kubernetes resource quantity (k8s.io/apimachinery resource.Quantity), non-negative:
#   <number> ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
#   <suffix> ::= Ki | Mi | Gi | Ti | Pi | Ei | m | "" | k | M | G | T | P | E | e<int> | E<int>
_K8S_QUANTITY = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[KMGTPE]i|[eE][+-]?\d+|[mkMGTPE])?")


def _quantity_from_number(value: Any) -> Any:
    # YAML reads `cpu_request: 4` as an int; Kubernetes reads it as the quantity "4".
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _check_quantity(value: str) -> str:
    if not _K8S_QUANTITY.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes quantity; expected a non-negative number with an "
            "optional suffix (m, k, M, G, T, Ki, Mi, Gi, Ti, e<n>), e.g. '500m', '4', '16Gi'"
        )
    return value


#: A Kubernetes resource quantity such as ``"500m"``, ``"4"``, ``"16Gi"`` or ``"1e9"``
#: (numbers are taken as their decimal text); anything else fails validation in one line.
K8sQuantity = Annotated[
    str, BeforeValidator(_quantity_from_number), AfterValidator(_check_quantity)
]


class ConfigError(ValueError):
    """A config file that cannot be read or does not validate; names the file."""


def read_mapping(path: str | Path) -> dict[str, Any]:
    """Reads a YAML or JSON mapping from ``path``.

    Args:
        path: A .yaml/.yml/.json file.

    Returns:
        The parsed mapping (empty for an empty file).

    Raises:
        ConfigError: The file is missing, unparseable or not a mapping.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config file ({e.strerror})") from e
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(f"{p}: not valid YAML/JSON: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_stage_config(cls: type[T], path: str | Path | None, section: str) -> T:
    """Loads a stage config from a stage-only file or from a whole pipeline config.

    A pipeline config (the files in ``pipelines/configs``) holds one section per stage; when
    ``path`` has a top-level key ``section`` that section is used (and the top-level ``seed``,
    if any, wins over the section's, as in a pipeline run), otherwise the whole file is the
    stage config.

    Args:
        cls: The stage's config class.
        path: The file, or None for the defaults.
        section: The stage name (the section key in a pipeline config).

    Returns:
        The validated config.

    Raises:
        ConfigError: The file cannot be read or does not validate (message names the file).
    """
    if path is None:
        return cls()
    data = read_mapping(path)
    if section in data and isinstance(data[section], dict):
        stage_data = dict(data[section])
        if "seed" in data and "seed" in cls.model_fields:
            stage_data["seed"] = data["seed"]
        data = stage_data
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{path}: invalid {section} config:\n{e}") from e
