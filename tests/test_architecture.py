"""The house's one direction of dependency, read from every module's imports (``ast``, nothing runs).

LAYERS is THE table of the arrangement (docs/architecture.md explains it): an app may import only
apps of a lower layer. Two apps of the same layer do not import each other, so no two apps can form a
cycle. A room that needs something from above gets it as an argument, a signal or a task name.
Imports inside functions count too: moving an import into a function does not change its direction.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("audit", "inference", "portal")

#: Bottom to top. An app is a top-level package, a package directly under portal/, or a sub-package
#: listed here on its own (inference/compare: the pure engine, beside the record).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("audit",),  # the append-only log: imports no domain app
    ("portal/core",),  # shared plumbing: errors, API plumbing, access denial, enqueue, workers, charts
    ("portal/accounts",),  # roles: the one place that decides who may see what
    ("portal/records", "inference/compare"),  # the clinical record; the pure discrepancy engine
    ("inference", "portal/review", "portal/administration"),  # models, re-inference; QA review; admin pages
    ("portal/legal",),  # holds, retention, export packages: over the record, reviews and re-inference
    ("portal", "portal/demo"),  # wiring (settings, URLs, Celery app, landing page) and the demo
)
RANK = {app: rank for rank, apps in enumerate(LAYERS) for app in apps}
SUBAPPS = ("inference/compare",)
#: Apps that must import nothing of the project at all, and not Django either.
PURE = {"inference/compare": ("django", "rest_framework", "celery", *PACKAGES)}


def app_of(relative: str) -> str:
    """The app a module file (path relative to the repository root) belongs to."""
    for sub in SUBAPPS:
        if relative.startswith(sub + "/"):
            return sub
    parts = relative.split("/")
    if parts[0] == "portal" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0]


def read(path: Path) -> tuple[str, str]:
    """A module's path from the repository root, and its source."""
    return str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def module_files() -> list[Path]:
    """Every module of the apps, migrations left out (they record history, not dependencies)."""
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and "__pycache__" not in path.parts
    )


def imported_names(relative: str, source: str) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every import in a module's source, relative ones resolved.

    ``relative`` is the module's path from the repository root (it anchors ``from . import x``).
    """
    package = relative.removesuffix(".py").split("/")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def target_app(name: str) -> str | None:
    """The project app a dotted import name lands in, or None outside the project."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    while parts:
        candidate = ROOT.joinpath(*parts)
        if candidate.with_suffix(".py").is_file():
            return app_of("/".join(parts) + ".py")
        if candidate.is_dir():
            return app_of("/".join(parts) + "/__init__.py")
        parts.pop()
    return None


def edges() -> dict[tuple[str, str], str]:
    """App-to-app imports, each with the first file:line that makes it."""
    found: dict[tuple[str, str], str] = {}
    for path in module_files():
        relative, text = read(path)
        source = app_of(relative)
        for line, name in imported_names(relative, text):
            target = target_app(name)
            if target and target != source:
                found.setdefault((source, target), f"{relative}:{line} imports {name}")
    return found


def test_every_app_has_a_layer() -> None:
    apps = {app_of(str(path.relative_to(ROOT))) for path in module_files()}
    assert apps - set(RANK) == set(), "add the new app to LAYERS (and to docs/architecture.md)"


def violations(found: dict[tuple[str, str], str]) -> list[str]:
    """The edges that go up or sideways (an app missing from LAYERS counts as a violation too)."""
    return [
        f"{source} (layer {RANK.get(source)}) -> {target} (layer {RANK.get(target)}): {where}"
        for (source, target), where in sorted(found.items())
        if RANK.get(target, 99) >= RANK.get(source, -1)
    ]


def test_no_app_imports_one_above_it_or_beside_it() -> None:
    assert violations(edges()) == []


def test_no_cycle_between_apps() -> None:
    graph: dict[str, set[str]] = {}
    for source, target in edges():
        graph.setdefault(source, set()).add(target)
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def cycle_from(app: str, trail: list[str]) -> list[str] | None:
        state[app] = 1
        for nxt in sorted(graph.get(app, ())):
            if state.get(nxt) == 1:
                return [*trail, app, nxt]
            if nxt not in state and (found := cycle_from(nxt, [*trail, app])):
                return found
        state[app] = 2
        return None

    cycles = [c for app in sorted(graph) if app not in state and (c := cycle_from(app, []))]
    assert cycles == []


@pytest.mark.parametrize("app", sorted(PURE))
def test_pure_apps_import_neither_django_nor_the_project(app: str) -> None:
    forbidden = PURE[app]
    wrong = [
        f"{relative}:{line} imports {name}"
        for relative, text in map(read, module_files())
        if app_of(relative) == app
        for line, name in imported_names(relative, text)
        if name.split(".")[0] in forbidden and target_app(name) != app
    ]
    assert wrong == []


def test_the_checker_sees_an_upward_import() -> None:
    """The rules above fail on a real violation (a test that cannot fail would prove nothing)."""
    assert app_of("portal/records/services.py") == "portal/records"
    assert app_of("inference/compare/text.py") == "inference/compare"
    assert app_of("inference/registry.py") == "inference"
    assert app_of("portal/urls.py") == "portal"
    assert target_app("portal.urls") == "portal"
    assert target_app("portal.review.models.Comparison") == "portal/review"
    assert target_app("inference.compare.compare") == "inference/compare"
    assert target_app("django.db.models") is None
    source = "def f():\n    from portal.review.models import Comparison\nfrom . import runtime\n"
    names = [name for _line, name in imported_names("inference/registry.py", source)]
    assert sorted(names) == ["inference.runtime", "portal.review.models.Comparison"]
    found = {
        ("inference", target_app(name) or ""): "probe" for name in names if target_app(name) != "inference"
    }
    assert violations(found) == ["inference (layer 4) -> portal/review (layer 4): probe"]
    assert violations({("portal/records", "portal/legal"): "up"}) != []
    assert violations({("portal/legal", "inference"): "down"}) == []
