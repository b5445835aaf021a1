"""Preflight: what a first real run on Vertex needs, checked before anything is submitted.

Each check reads facts through a :class:`CloudFacts` source (the Google Cloud
calls live in :mod:`gemini_sft.vertex_client`) and says ``pass``, ``fail``
(with the command that fixes it) or ``cannot-check`` (with why). Nothing here
changes the project.

Checks, in order: the APIs the pipeline calls are enabled; the pipeline bucket
exists, is in the pipeline's region and keeps object versions; the service
account may read and write the pipeline root and act as itself; the person
running preflight may submit as it; the region offers tuning for the model; the
component image is in Artifact Registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gemini_sft import model_catalog

PASS = "pass"
FAIL = "fail"
CANNOT_CHECK = "cannot-check"

REQUIRED_APIS: tuple[str, ...] = (
    "aiplatform.googleapis.com",
    "storage.googleapis.com",
    "artifactregistry.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
)

# Roles that let a principal read and write objects in a bucket (granted on the bucket or the project).
READ_WRITE_ROLES = frozenset(
    {"roles/storage.objectAdmin", "roles/storage.objectUser", "roles/storage.admin", "roles/owner", "roles/editor"}
)
READ_ROLES = frozenset({"roles/storage.objectViewer", "roles/storage.legacyObjectReader"}) | READ_WRITE_ROLES
WRITE_ROLES = frozenset({"roles/storage.objectCreator", "roles/storage.legacyBucketWriter"}) | READ_WRITE_ROLES
ACT_AS_ROLES = frozenset({"roles/iam.serviceAccountUser", "roles/owner", "roles/editor"})

# What the person who submits needs (testIamPermissions as the caller).
SUBMITTER_BUCKET_PERMISSIONS: tuple[str, ...] = ("storage.buckets.get", "storage.objects.create", "storage.objects.get")
SUBMITTER_SA_PERMISSIONS: tuple[str, ...] = ("iam.serviceAccounts.actAs",)

_IMAGE = re.compile(
    r"^(?P<host>(?P<region>[a-z0-9-]+)-docker\.pkg\.dev)/(?P<project>[^/]+)/(?P<repository>[^/]+)/"
    r"(?P<image>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


class CannotCheck(Exception):
    """A fact could not be read (no permission, API off, no network); the message says why."""


class CloudFacts(Protocol):
    """Read-only facts about a project. Every method raises CannotCheck when the fact cannot be read."""

    def service_enabled(self, project: str, service: str) -> bool: ...

    def bucket(self, name: str) -> "BucketFacts | None": ...

    def bucket_policy(self, name: str) -> Mapping[str, Sequence[str]]: ...

    def project_policy(self, project: str) -> Mapping[str, Sequence[str]]: ...

    def service_account_policy(self, email: str) -> Mapping[str, Sequence[str]]: ...

    def caller_bucket_permissions(self, name: str, permissions: Sequence[str]) -> set[str]: ...

    def caller_service_account_permissions(self, email: str, permissions: Sequence[str]) -> set[str]: ...

    def image_exists(self, host: str, path: str, reference: str) -> bool: ...


@dataclass(frozen=True)
class BucketFacts:
    """What preflight needs to know of a bucket."""

    name: str
    location: str
    versioning: bool


@dataclass(frozen=True)
class PreflightTarget:
    """What a run will use: from the environment config.

    Args in order: project, region, pipeline root (gs://...), service account e-mail, component image,
    base model, registry URI.
    """

    project: str
    region: str
    pipeline_root: str
    service_account: str
    image: str
    base_model: str = model_catalog.DEFAULT_BASE_MODEL
    registry_uri: str = ""


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``status`` is pass, fail or cannot-check; ``fix`` is a command for a failure."""

    name: str
    status: str
    detail: str
    fix: str = ""


@dataclass
class PreflightReport:
    """Every check's result, in order."""

    results: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == FAIL]

    @property
    def ok(self) -> bool:
        """True when no check failed (checks that could not run are reported, not failed)."""
        return not self.failed

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checks": [{"name": r.name, "status": r.status, "detail": r.detail, "fix": r.fix} for r in self.results],
        }

    def to_text(self) -> str:
        lines = []
        for r in self.results:
            lines.append(f"{r.status.upper():<13} {r.name}: {r.detail}")
            if r.fix:
                lines.append(f"{'':<14}fix: {r.fix}")
        counts = {s: sum(r.status == s for r in self.results) for s in (PASS, FAIL, CANNOT_CHECK)}
        lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[CANNOT_CHECK]} could not be checked")
        return "\n".join(lines)


def bucket_of(uri: str) -> str:
    """The bucket name of a ``gs://BUCKET/...`` URI ('' when it is not one)."""
    return uri[len("gs://"):].split("/", 1)[0] if uri.startswith("gs://") else ""


def _holds_role(policy: Mapping[str, Sequence[str]], member: str, roles: Iterable[str]) -> str | None:
    """The first of ``roles`` that ``policy`` (role -> members) grants ``member``, or None."""
    for role in roles:
        if member in policy.get(role, ()):
            return role
    return None


def _guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    try:
        return check()
    except CannotCheck as exc:
        return CheckResult(name, CANNOT_CHECK, str(exc))


def run_preflight(target: PreflightTarget, facts: CloudFacts) -> PreflightReport:
    """Every check for ``target``, reading through ``facts``; never raises for a cloud problem."""
    report = PreflightReport()
    add = report.results.append
    for service in REQUIRED_APIS:
        add(_guarded(f"api {service}", lambda s=service: _api_check(target, facts, s)))
    bucket_name = bucket_of(target.pipeline_root)
    bucket_results = _bucket_checks(target, facts, bucket_name)
    report.results.extend(bucket_results)
    add(_guarded("service account reads and writes the pipeline root",
                 lambda: _service_account_storage(target, facts, bucket_name)))
    add(_guarded("service account acts as itself", lambda: _service_account_acts_as_itself(target, facts)))
    add(_guarded("you may submit as the service account", lambda: _caller_can_submit(target, facts, bucket_name)))
    add(_region_check(target))
    add(_guarded("component image in Artifact Registry", lambda: _image_check(target, facts)))
    return report


def _api_check(target: PreflightTarget, facts: CloudFacts, service: str) -> CheckResult:
    name = f"api {service}"
    if facts.service_enabled(target.project, service):
        return CheckResult(name, PASS, f"enabled in {target.project}")
    return CheckResult(name, FAIL, f"not enabled in {target.project}",
                       f"gcloud services enable {service} --project {target.project}")


def _bucket_checks(target: PreflightTarget, facts: CloudFacts, bucket_name: str) -> list[CheckResult]:
    names = ("pipeline bucket exists", "pipeline bucket in the region", "pipeline bucket keeps object versions")
    if not bucket_name:
        return [CheckResult(names[0], FAIL, f"pipeline_root {target.pipeline_root!r} is not gs://BUCKET/PATH",
                            "set pipeline_root in the config to gs://BUCKET/pipeline-root")]
    try:
        bucket = facts.bucket(bucket_name)
    except CannotCheck as exc:
        return [CheckResult(n, CANNOT_CHECK, str(exc)) for n in names]
    if bucket is None:
        return [CheckResult(names[0], FAIL, f"gs://{bucket_name} does not exist",
                            f"gcloud storage buckets create gs://{bucket_name} --project {target.project} "
                            f"--location={target.region} --uniform-bucket-level-access")]
    results = [CheckResult(names[0], PASS, f"gs://{bucket_name} exists")]
    if bucket.location.lower() == target.region.lower():
        results.append(CheckResult(names[1], PASS, f"gs://{bucket_name} is in {bucket.location.lower()}"))
    else:
        results.append(CheckResult(
            names[1], FAIL,
            f"gs://{bucket_name} is in {bucket.location}, the pipeline runs in {target.region}: every artifact "
            "crosses regions (slower, billed egress)",
            f"gcloud storage buckets create gs://NEW_BUCKET --location={target.region} and point pipeline_root at it",
        ))
    if bucket.versioning:
        results.append(CheckResult(names[2], PASS, "object versioning is on"))
    else:
        results.append(CheckResult(names[2], FAIL, "object versioning is off: an overwritten artifact is lost",
                                   f"gcloud storage buckets update gs://{bucket_name} --versioning"))
    return results


def _service_account_storage(target: PreflightTarget, facts: CloudFacts, bucket_name: str) -> CheckResult:
    name = "service account reads and writes the pipeline root"
    if not target.service_account:
        return CheckResult(name, FAIL, "the config names no service_account (runs would use the Compute Engine "
                           "default one)", "set service_account in the config (README: Run on Vertex AI, step 4)")
    if not bucket_name:
        raise CannotCheck("no bucket to check (see the pipeline bucket check)")
    member = f"serviceAccount:{target.service_account}"
    bucket_policy = facts.bucket_policy(bucket_name)
    try:
        project_policy = facts.project_policy(target.project)
    except CannotCheck:
        project_policy = {}
    granted = {**project_policy}
    for role, members in bucket_policy.items():
        granted[role] = list(granted.get(role, ())) + list(members)
    reads = _holds_role(granted, member, sorted(READ_ROLES))
    writes = _holds_role(granted, member, sorted(WRITE_ROLES))
    if reads and writes:
        roles = reads if reads == writes else f"{reads} + {writes}"
        return CheckResult(name, PASS, f"{target.service_account} has {roles}")
    return CheckResult(
        name, FAIL, f"{target.service_account} cannot {'write' if reads else 'read'} gs://{bucket_name}",
        f"gcloud storage buckets add-iam-policy-binding gs://{bucket_name} --member={member} "
        "--role=roles/storage.objectAdmin",
    )


def _service_account_acts_as_itself(target: PreflightTarget, facts: CloudFacts) -> CheckResult:
    name = "service account acts as itself"
    if not target.service_account:
        raise CannotCheck("the config names no service_account")
    member = f"serviceAccount:{target.service_account}"
    role = _holds_role(facts.service_account_policy(target.service_account), member, sorted(ACT_AS_ROLES))
    if role is None:
        try:
            role = _holds_role(facts.project_policy(target.project), member, sorted(ACT_AS_ROLES))
        except CannotCheck:
            role = None
    if role:
        return CheckResult(name, PASS, f"{target.service_account} has {role} on itself")
    return CheckResult(
        name, FAIL, f"{target.service_account} may not start tuning jobs as itself",
        f"gcloud iam service-accounts add-iam-policy-binding {target.service_account} --member={member} "
        "--role=roles/iam.serviceAccountUser",
    )


def _caller_can_submit(target: PreflightTarget, facts: CloudFacts, bucket_name: str) -> CheckResult:
    name = "you may submit as the service account"
    if not bucket_name or not target.service_account:
        raise CannotCheck("needs a gs:// pipeline_root and a service_account in the config")
    missing = [p for p in SUBMITTER_BUCKET_PERMISSIONS
               if p not in facts.caller_bucket_permissions(bucket_name, SUBMITTER_BUCKET_PERMISSIONS)]
    missing += [p for p in SUBMITTER_SA_PERMISSIONS
                if p not in facts.caller_service_account_permissions(target.service_account,
                                                                     SUBMITTER_SA_PERMISSIONS)]
    if not missing:
        return CheckResult(name, PASS, "you hold " + ", ".join(SUBMITTER_BUCKET_PERMISSIONS + SUBMITTER_SA_PERMISSIONS))
    return CheckResult(
        name, FAIL, "you lack " + ", ".join(missing),
        "ask an administrator for roles/aiplatform.user on the project, roles/iam.serviceAccountUser on "
        f"{target.service_account} and roles/storage.objectAdmin on gs://{bucket_name}",
    )


def _region_check(target: PreflightTarget) -> CheckResult:
    name = f"{target.region} tunes {target.base_model}"
    if target.region not in model_catalog.TUNING_REGIONS:
        return CheckResult(name, FAIL, f"{target.region} is not a region where Vertex offers Gemini tuning "
                           "(per the model catalogue)", "set region to one of: "
                           + ", ".join(sorted(model_catalog.TUNING_REGIONS)[:6]) + ", ...")
    try:
        model_catalog.limits_for(target.base_model)
    except Exception as exc:  # noqa: BLE001 - the catalogue's own error says which models it knows
        return CheckResult(name, FAIL, str(exc), "set parameters.base_model to a tunable model")
    return CheckResult(name, PASS, f"{target.region} offers supervised tuning of {target.base_model} "
                       "(per the model catalogue, not asked of Vertex)")


def _image_check(target: PreflightTarget, facts: CloudFacts) -> CheckResult:
    name = "component image in Artifact Registry"
    if not target.image:
        return CheckResult(name, FAIL, "the config names no image",
                           "make image PROJECT=... REGION=..., then set image in the config")
    match = _IMAGE.match(target.image)
    if not match:
        raise CannotCheck(f"{target.image} is not an Artifact Registry image (REGION-docker.pkg.dev/...)")
    reference = match.group("digest") or match.group("tag") or "latest"
    path = f"{match.group('project')}/{match.group('repository')}/{match.group('image')}"
    if facts.image_exists(match.group("host"), path, reference):
        result = CheckResult(name, PASS, f"{target.image} exists")
    else:
        result = CheckResult(name, FAIL, f"{target.image} is not in Artifact Registry",
                             f"make image PROJECT={match.group('project')} REGION={match.group('region')}")
    if match.group("region") != target.region:
        result = CheckResult(name, result.status, result.detail + f" (its repository is in {match.group('region')}, "
                             f"the pipeline runs in {target.region})", result.fix)
    return result
