"""Base class and loading helpers for the strict pydantic configs of every stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

T = TypeVar("T", bound="StrictModel")


class StrictModel(BaseModel):
    """A config model that rejects unknown fields and validates on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


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


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flattens a nested mapping into dotted keys (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
