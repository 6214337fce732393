"""Task specs: load YAML, validate against specs/schema.json, and say exactly what is wrong.

A spec error names the file, the line, the field and the fix, and is raised before the run
has any side effect.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jsonschema
import yaml

from codebot.errors import SpecError

TestsPolicy = Literal["may_add", "may_edit", "frozen"]

DEFAULT_MAX_ITERATIONS = 5
DEFAULT_TIMEOUT_S = 300
DEFAULT_SETUP_TIMEOUT_S = 600


@dataclass(frozen=True)
class Budget:
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_minutes: float | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One task. `lint` None means the default lint, False means no lint."""

    title: str
    description: str
    test: str
    acceptance: tuple[str, ...] = ()
    build: str | None = None
    setup: str | None = None
    setup_timeout: int = DEFAULT_SETUP_TIMEOUT_S
    lint: str | bool | None = None
    files: tuple[str, ...] = ()
    tests: TestsPolicy = "may_add"
    max_iterations: int = DEFAULT_MAX_ITERATIONS
    timeout: int = DEFAULT_TIMEOUT_S
    budget: Budget = field(default_factory=Budget)
    id: str | None = None
    base: str | None = None
    repo: str | None = None
    source: str = ""

    @property
    def slug(self) -> str:
        return self.id or slugify(self.title)


def slugify(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "task"


@cache
def schema() -> dict[str, Any]:
    text = resources.files("codebot").joinpath("schema.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


def load_spec(path: str | Path, defaults: dict[str, Any] | None = None) -> TaskSpec:
    """Read a spec file. `defaults` (e.g. from the repo's .codebot.yml) fill absent fields."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"spec file {path} does not exist", "pass the path to a YAML spec"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {path}: {exc}", "pass a UTF-8 YAML file") from None
    return parse_spec(text, source=str(path), defaults=defaults)


def parse_spec(text: str, source: str, defaults: dict[str, Any] | None = None) -> TaskSpec:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{where}: not valid YAML ({problem})", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: a spec must be a YAML mapping (got {type(data).__name__})",
            "start with `title:` and `description:` keys",
        )
    return spec_from_data(data, source, defaults, node)


def spec_from_data(
    data: dict[str, Any],
    source: str,
    defaults: dict[str, Any] | None = None,
    node: yaml.Node | None = None,
) -> TaskSpec:
    """Validate a spec given as data (from YAML, an issue, a PR comment) against the schema."""
    merged = {**(defaults or {}), **data}
    errors = sorted(
        jsonschema.Draft202012Validator(schema()).iter_errors(merged),
        key=lambda e: (list(e.absolute_path), e.validator),
    )
    if errors:
        raise _explain(errors[0], source, node)
    if "test" not in merged:
        raise SpecError(
            f"{source}: field `test` is missing",
            "add `test: <command that runs the tests>` to the spec or to the repo's .codebot.yml",
        )
    return _from_dict(merged, source)


def _from_dict(data: dict[str, Any], source: str) -> TaskSpec:
    budget = data.get("budget", {})
    return TaskSpec(
        title=data["title"].strip(),
        description=data["description"],
        test=data["test"],
        acceptance=tuple(data.get("acceptance", ())),
        build=data.get("build"),
        setup=data.get("setup"),
        setup_timeout=data.get("setup_timeout", DEFAULT_SETUP_TIMEOUT_S),
        lint=data.get("lint"),
        files=tuple(data.get("files", ())),
        tests=data.get("tests", "may_add"),
        max_iterations=data.get("max_iterations", DEFAULT_MAX_ITERATIONS),
        timeout=data.get("timeout", DEFAULT_TIMEOUT_S),
        budget=Budget(
            budget.get("max_tokens"), budget.get("max_cost_usd"), budget.get("max_minutes")
        ),
        id=data.get("id"),
        base=data.get("base"),
        repo=data.get("repo"),
        source=source,
    )


def _explain(error: jsonschema.ValidationError, source: str, node: yaml.Node | None) -> SpecError:
    path = [str(p) for p in error.absolute_path]
    field_name = ".".join(path) or "(top level)"
    line = _line_of(node, list(error.absolute_path))
    where = f"{source}:{line}" if line else source
    props = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = ".".join([*path, *missing])
        return SpecError(f"{where}: field `{name}` is missing", f"add `{name}:` to the spec")
    if error.validator == "additionalProperties":
        instance = error.instance if isinstance(error.instance, dict) else {}
        unknown = sorted(set(instance) - set(props))
        name = unknown[0] if unknown else "?"
        line = _line_of(node, [*error.absolute_path, name]) or line
        where = f"{source}:{line}" if line else source
        close = difflib.get_close_matches(name, list(props), n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"allowed: {', '.join(sorted(props))}"
        full = ".".join([*path, name])
        return SpecError(f"{where}: unknown field `{full}`", f"remove it; {hint}")
    description = _describe(error)
    return SpecError(f"{where}: field `{field_name}` {description}", _fix_for(error, field_name))


def _describe(error: jsonschema.ValidationError) -> str:
    schema_part = error.schema if isinstance(error.schema, dict) else {}
    value = json.dumps(error.instance) if not isinstance(error.instance, dict) else "a mapping"
    if error.validator == "type":
        return f"must be of type {schema_part.get('type')} (got {value})"
    if error.validator == "pattern":
        return f"does not match {schema_part.get('pattern')!r} (got {value})"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "minLength", "maxLength"):
        return f"is out of range: {error.message}"
    if error.validator == "oneOf":
        return f"has the wrong form (got {value})"
    return error.message


def _fix_for(error: jsonschema.ValidationError, field_name: str) -> str:
    desc = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "oneOf" and field_name == "lint":
        return "use a command string, or `lint: false` to turn lint off"
    return f"set `{field_name}` to a valid value" + (f" ({desc})" if desc else "")


def _line_of(node: yaml.Node | None, path: list[Any]) -> int | None:
    """1-based line of the YAML node at `path`, or of its nearest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == key), None)
            if match is None:
                key_node = next((k for k, _ in node.value if k.value == key), None)
                return key_node.start_mark.line + 1 if key_node else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def spec_to_dict(spec: TaskSpec) -> dict[str, Any]:
    """The spec as it appears in run.json (budget flattened, no derived fields)."""
    from codebot.records import to_jsonable

    data: dict[str, Any] = to_jsonable(spec)
    data["slug"] = spec.slug
    return data
