"""`deploy --plan`: Nomad's plan of a job, summarized: what changes, and what cannot be placed (pure)."""

from __future__ import annotations

from typing import Any

__all__ = ["plan_lines", "summarize_plan"]

_CHANGE_KEYS = {
    "Place": "place",
    "DestructiveUpdate": "replace",
    "InPlaceUpdate": "update in place",
    "Stop": "stop",
    "Canary": "canary",
    "Migrate": "migrate",
    "Ignore": "unchanged",
}


def summarize_plan(answer: dict[str, Any], errors: list[str], group: str) -> dict[str, Any]:
    """The plan as data: validation errors, per-group allocation changes, unplaceable groups, changed fields."""
    updates = ((answer.get("Annotations") or {}).get("DesiredTGUpdates") or {}).get(group) or {}
    changes = {label: int(updates.get(key) or 0) for key, label in _CHANGE_KEYS.items() if updates.get(key)}
    unplaceable = {}
    for name, failure in (answer.get("FailedTGAllocs") or {}).items():
        reasons: dict[str, int] = {}
        for key in ("ConstraintFiltered", "DimensionExhausted", "ClassFiltered", "QuotaExhausted"):
            reasons |= {str(reason): int(count) for reason, count in (failure.get(key) or {}).items()}
        unplaceable[name] = {
            "nodes_evaluated": int(failure.get("NodesEvaluated") or 0),
            "nodes_filtered": int(failure.get("NodesFiltered") or 0),
            "nodes_exhausted": int(failure.get("NodesExhausted") or 0),
            "reasons": reasons,
        }
    return {
        "valid": not errors,
        "errors": errors,
        "changes": changes,
        "unplaceable": unplaceable,
        "diff": _diff_lines(answer.get("Diff") or {}),
        "warnings": str(answer.get("Warnings") or ""),
    }


def plan_lines(name: str, summary: dict[str, Any]) -> list[str]:
    """The summary for people."""
    if not summary["valid"]:
        return [f"{name}: Nomad would refuse the job:", *(f"  {error.strip()}" for error in summary["errors"])]
    changes = ", ".join(f"{label} {count}" for label, count in summary["changes"].items()) or "no allocation changes"
    lines = [f"{name}: {changes}"]
    lines += [f"  {line}" for line in summary["diff"]]
    for group, failure in summary["unplaceable"].items():
        reasons = ", ".join(f"{reason}: {count}" for reason, count in failure["reasons"].items()) or "no reason given"
        lines.append(
            f"  cannot place group {group}: {failure['nodes_evaluated']} node(s) evaluated, "
            f"{failure['nodes_filtered']} filtered, {failure['nodes_exhausted']} exhausted ({reasons})"
        )
    if summary["warnings"]:
        lines.append(f"  warnings: {summary['warnings'].strip()}")
    return lines


def _diff_lines(diff: dict[str, Any], path: str = "") -> list[str]:
    """`+`/`-`/`~` lines for every added, deleted or edited field of Nomad's job diff."""
    lines = []
    for field in diff.get("Fields") or []:
        if field.get("Type") in ("Added", "Deleted", "Edited"):
            mark = {"Added": "+", "Deleted": "-", "Edited": "~"}[field["Type"]]
            old, new = field.get("Old", ""), field.get("New", "")
            change = f"{old!r} -> {new!r}" if field["Type"] == "Edited" else repr(new or old)
            lines.append(f"{mark} {path}{field.get('Name')}: {change}")
    for key in ("Objects", "TaskGroups", "Tasks"):
        for child in diff.get(key) or []:
            if child.get("Type") == "None":
                continue
            lines += _diff_lines(child, f"{path}{child.get('Name')}.")
    for annotation in diff.get("Annotations") or []:
        lines.append(f"! {path.rstrip('.') or 'job'}: {annotation}")
    return lines
