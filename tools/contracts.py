"""An import-linter contract type of our own: private modules stay inside their package.

A module whose name starts with ``_`` (``meshd.api._requests``) is an
implementation detail of its package (``meshd.api``): only modules inside that
package (``meshd.api.*``) may import it; everyone else imports what the
package exports (``from meshd.api import EndpointConnect``). Dunder modules
(``__init__``, ``__main__``) are not private. Registered in pyproject.toml
(``[tool.importlinter] contract_types``) and checked by ``lint-imports``.
"""

from __future__ import annotations

from typing import Any

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output


def private_owner(module: str) -> str | None:
    """The package that owns ``module``'s first private component, or None if it has none."""
    parts = module.split(".")
    for i, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:i])
    return None


def may_import(importer: str, imported: str) -> bool:
    owner = private_owner(imported)
    return owner is None or importer == owner or importer.startswith(owner + ".")


class PrivateModulesContract(Contract):
    """Options: ``packages`` — the root packages whose private modules are checked."""

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        roots = tuple(str(p) for p in self.packages)  # type: ignore[attr-defined]  # import-linter: a list at run time
        broken: list[dict[str, Any]] = []
        for importer in sorted(graph.modules):
            if not importer.startswith(roots):
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                if imported.startswith(roots) and not may_import(importer, imported):
                    details = graph.get_import_details(importer=importer, imported=imported)
                    lines = [d["line_number"] for d in details]
                    broken.append({"importer": importer, "imported": imported, "lines": lines,
                                   "owner": private_owner(imported)})
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for b in check.metadata["broken"]:
            where = ", ".join(f"l.{n}" for n in b["lines"]) or "?"
            output.print_error(f"{b['importer']} ({where}) imports {b['imported']}, private to {b['owner']}: "
                               f"export what it needs from {b['owner']} and import that instead", bold=False)
            output.new_line()
