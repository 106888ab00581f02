"""An organization's mapping in the console: view it, read the Plan a new one causes, apply it.

Does: wrap the engine's `set_mapping` so that what is applied is the Plan the admin read: the
preview carries a digest of its Plan and what the deprovisioning guard will do with it (judged
without holding anything), and apply refuses (showing the new Plan) if the organization changed
in between. Does not: validate or evaluate mappings (mappings/ and the engine do).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import yaml
from sqlalchemy.orm import Session

from gateway.errors import Conflict, InvalidInput
from gateway.provisioning.engine import set_mapping
from gateway.provisioning.guard import GuardVerdict, judge
from gateway.provisioning.plan import Plan
from gateway.provisioning.settings import OrgSettings, mapping_text
from gateway.store.models import Organization
from mappings import MappingError, default_mapping, dump_mapping

MAX_MAPPING_BYTES = 256 * 1024


class InvalidMapping(InvalidInput):
    """The mapping does not load; `problems` holds one problem a line, each with its location."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the mapping is not valid: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class PlanPreview:
    text: str
    plan: Plan
    digest: str
    # What the deprovisioning guard does with this Plan when it is applied (judged, not held),
    # and when it holds a Plan's deprovisionings, in the admin's words.
    verdict: GuardVerdict
    guard_limit: str

    @property
    def held_deprovisionings(self) -> int:
        wanted = {id(c) for c in self.plan.deprovisionings}
        return sum(1 for c in self.verdict.held if id(c) in wanted)

    @property
    def held_access_removals(self) -> int:
        return len(self.verdict.held) - self.held_deprovisionings


@dataclass(frozen=True)
class AppliedMapping:
    plan: Plan
    applied: int
    held: int


def current_mapping(session: Session, org: Organization) -> tuple[str, bool]:
    """(the YAML text, whether it is the organization's own or the defaults)."""
    text = mapping_text(session, org.id)
    if text is not None:
        return text, True
    return yaml.safe_dump(dump_mapping(default_mapping()), sort_keys=False), False


def plan_digest(plan: Plan) -> str:
    return hashlib.sha256(
        json.dumps(plan.to_json(), sort_keys=True, default=str).encode()
    ).hexdigest()


def _check(text: str) -> str:
    if not text or not text.strip():
        raise InvalidMapping(["the mapping is empty"])
    if len(text.encode()) > MAX_MAPPING_BYTES:
        raise InvalidMapping([f"the mapping is larger than {MAX_MAPPING_BYTES // 1024} KiB"])
    return text.replace("\r\n", "\n")


def preview_mapping(session: Session, org: Organization, text: str, actor: str) -> PlanPreview:
    text = _check(text)
    try:
        outcome = set_mapping(session, org, text, actor, apply_now=False)
    except MappingError as exc:
        raise InvalidMapping(exc.problems) from None
    # Applying a mapping is guarded as one Plan (no window), as set_mapping's apply does.
    verdict = judge(session, org, outcome.plan, actor, window=False)
    settings = OrgSettings.of(org)
    limit = f"more than both {settings.guard_count} and {settings.guard_share:.0%} of the members"
    return PlanPreview(text, outcome.plan, plan_digest(outcome.plan), verdict, limit)


def apply_mapping(
    session: Session, org: Organization, text: str, digest: str, actor: str
) -> AppliedMapping:
    """Store the mapping and apply its Plan, if that Plan is still the one with `digest`."""
    preview = preview_mapping(session, org, text, actor)
    if preview.digest != digest:
        raise Conflict(
            "the Plan changed since it was shown (the directory or the organization changed): "
            "read the new Plan and apply again"
        )
    outcome = set_mapping(session, org, preview.text, actor, apply_now=True)
    assert outcome.applied is not None
    return AppliedMapping(outcome.plan, outcome.applied.applied, len(outcome.applied.held))
