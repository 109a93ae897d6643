"""The config's unknown-key check: a key the schema does not allow is named, with where it is
and the keys allowed there (and a close match), instead of the whole schema that a failed
``snakemake.utils.validate`` prints. A leaf module (yaml only), cheap to import in the Snakefile."""

import difflib
import re
from collections.abc import Mapping
from pathlib import Path

import yaml


class ConfigError(ValueError):
    """A config key the schema does not know; the message names it, where it is and the keys
    allowed there (instead of the whole schema a failed validation prints)."""


def _resolve(schema: Mapping, root: Mapping) -> Mapping:
    while "$ref" in schema:
        node = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _unknown_keys(node, schema: Mapping, where: str, root: Mapping) -> list[str]:
    """One line per key of ``node`` that ``schema`` does not allow, recursively."""
    schema = _resolve(schema, root)
    problems = []
    if isinstance(node, Mapping):
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            matching = [p for p in patterns if re.search(p, str(key))]
            if key in properties:
                problems += _unknown_keys(value, properties[key], here, root)
            elif matching:
                problems += _unknown_keys(value, patterns[matching[0]], here, root)
            elif isinstance(extra, Mapping):
                problems += _unknown_keys(value, extra, here, root)
            elif extra is False:
                allowed = list(properties) + [f"keys matching {p}" for p in patterns]
                close = difflib.get_close_matches(str(key), list(properties), n=1)
                hint = f" Did you mean '{close[0]}'?" if close else ""
                problems.append(
                    f"unknown key '{key}' in {where or 'the top level'}.{hint} Rename or remove it; allowed there: {', '.join(allowed)}."
                )
    elif isinstance(node, list) and isinstance(schema.get("items"), Mapping):
        for i, item in enumerate(node):
            problems += _unknown_keys(item, schema["items"], f"{where}[{i}]", root)
    return problems


def check_config_keys(config: Mapping, schema_path: str | Path) -> None:
    """Raise :class:`ConfigError` naming every key of ``config`` that the schema does not
    allow, where it is and the keys allowed there. Run before the schema validation, whose
    message for an unknown key is the whole schema."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    problems = _unknown_keys(config, schema, "", schema)
    if problems:
        raise ConfigError("config: " + "\nconfig: ".join(problems) + f"\n(the keys and their meaning: {schema_path})")
