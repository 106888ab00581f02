"""The web console under `/console`: server-rendered pages and plain form posts (no JavaScript
needed). Each view resolves the organization through the signed-in account's Principal, calls
one service function and renders or redirects.

Does: routing, forms in, templates out, flash messages, security headers. Every form that
changes something answers with a redirect (post/redirect/get): a new token or key is kept with the
console session on the server (gateway.admin.web.show_once) and shown once by the page the post
redirects to. A destructive form's first post changes nothing: it answers with a confirmation
step that says what will happen and to how many, whose button posts the form again. Does not:
hold rules (the service modules and gateway.accounts do).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from markupsafe import Markup
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from gateway import accounts
from gateway.accounts import ROLE_LABELS, Forbidden, LoginThrottled
from gateway.admin import (
    clients,
    connectors,
    deliveries,
    events,
    groups,
    held,
    mapping,
    members,
    readiness,
    scim_settings,
)
from gateway.admin.web import (
    check_csrf,
    csrf_token,
    end_session,
    load_session_principal,
    principal,
    reject_nul_characters,
    show_once,
    start_session,
    take_shown,
)
from gateway.app import gateway
from gateway.errors import GatewayError, InvalidInput, NotFound
from gateway.events import display_url
from gateway.http_errors import status_of
from gateway.lifecycle import webhooks
from gateway.store.models import ADMIN_ROLES, MEMBER_ROLES, MEMBER_STATUSES, ORG_PLANS, Organization

console = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)
PUBLIC_ENDPOINTS = {"console.login", "console.accept", "console.accepted", "console.static"}


# --- request lifecycle ----------------------------------------------------------------------------


@console.before_request
def _before() -> Any:
    check_csrf()
    reject_nul_characters()
    g.principal = load_session_principal()
    if g.principal is None and request.endpoint not in PUBLIC_ENDPOINTS:
        if request.method == "GET":
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        return redirect(url_for("console.login"))
    return None


@console.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'none'; form-action 'self'; frame-ancestors 'none'",
    )
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@console.app_template_global()
def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="csrf_token" value="{}">').format(csrf_token())


@console.app_template_global()
def form_fields(back: str | None = None) -> Markup:
    """CSRF token and the page to return to when the action fails (or is cancelled): this page,
    unless it answers a post (a Plan, a dry run), whose template names a page to go back to."""
    back = back or request.full_path.rstrip("?")
    return csrf_field() + Markup('<input type="hidden" name="back" value="{}">').format(back)


@console.app_template_filter("when")
def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


@console.context_processor
def _context() -> dict[str, Any]:
    return {"me": g.get("principal"), "role_labels": ROLE_LABELS}


@console.errorhandler(GatewayError)
def _gateway_error(exc: GatewayError) -> Any:
    """A failed form post returns to its page with the message; anything else is an error page
    with the status gateway.http_errors gives the error's family."""
    status = status_of(exc).status
    if request.method == "POST" and not isinstance(exc, NotFound | Forbidden):
        flash(str(exc), "error")
        return redirect(_back())
    return render_template("error.html", message=str(exc), status=status), status


@console.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    status = exc.code or 500
    return render_template("error.html", message=exc.description, status=status), status


def console_path(value: str | None) -> str:
    """`value` if it is a path of this console, else the clients page: what a form says to
    return to never sends the browser to another site (`//evil`, `/\\evil`, `https://...`)
    nor puts a control character in the Location header."""
    if (
        value
        and value.startswith("/console/")
        and "//" not in value
        and "\\" not in value
        and all(" " < c < "\x7f" for c in value)
    ):
        return value
    return url_for("console.clients")


def _back() -> str:
    """Where a failed or cancelled form returns to: the page it came from."""
    return console_path(request.form.get("back"))


@dataclass(frozen=True)
class Question:
    """The confirmation step of a destructive form: what will happen, to whom, and the button."""

    title: str
    consequences: list[str]
    button: str
    items: list[str]


def _confirmed() -> bool:
    return request.form.get("confirmed") == "yes"


def _ask(question: Question) -> str:
    """The confirmation page: it changes nothing and posts the same form again, confirmed."""
    fields = [
        (name, value)
        for name, value in request.form.items(multi=True)
        if name not in ("csrf_token", "confirmed")
    ]
    return render_template(
        "confirm.html", ask=question, fields=fields, action=request.path, cancel=_back()
    )


@contextmanager
def _write() -> Iterator[Session]:
    with gateway().db.transaction() as session:
        yield session


@contextmanager
def _read() -> Iterator[Session]:
    with gateway().db.read() as session:
        yield session


def _int(name: str, default: int, *, low: int = 0, high: int = 10**9) -> int:
    raw = request.values.get(name, "")
    try:
        return min(max(int(raw), low), high) if raw.strip() else default
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number") from None


def _optional_int(name: str) -> int | None:
    raw = request.form.get(name, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name.replace('_', ' ')} must be a whole number") from None
    if not 0 <= value <= 10**7:
        raise InvalidInput(f"{name.replace('_', ' ')} must be between 0 and 10,000,000")
    return value


def _org_page(template: str, org: Organization, tab: str, **context: Any) -> str:
    return render_template(template, org=org, tab=tab, **context)


# --- signing in -----------------------------------------------------------------------------------


@console.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        if g.principal is not None:
            return redirect(url_for("console.clients"))
        return render_template("login.html", next=request.args.get("next", ""))
    email = request.form.get("email", "")[:320]
    password = request.form.get("password", "")[:1024]
    config = gateway().config
    limits = accounts.LoginLimits(
        per_account=config.login_attempts_per_account,
        per_address=config.login_attempts_per_address,
    )
    try:
        # No transaction here: accounts.login opens its own short ones around the password
        # check (and opens the console session in the last).
        admin = accounts.login(
            gateway().db,
            email,
            password,
            address=request.remote_addr or "unknown",
            limits=limits,
            on_success=start_session,
        )
    except LoginThrottled as exc:
        flash(str(exc), "error")
        retry_after = {"Retry-After": str(exc.retry_after)}
        return render_template("login.html", next=request.form.get("next", "")), 429, retry_after
    if admin is None:
        flash("Wrong e-mail or password, or the account is not confirmed yet.", "error")
        return render_template("login.html", next=request.form.get("next", "")), 401
    return redirect(console_path(request.form.get("next")))


@console.post("/logout")
def logout() -> Any:
    with _write() as session:
        end_session(session)
    flash("You are signed out.", "ok")
    return redirect(url_for("console.login"))


@console.route("/accept/<token>", methods=["GET", "POST"])
def accept(token: str) -> Any:
    secret = gateway().config.secret_key
    if request.method == "GET":
        with _read() as session:
            admin = accounts.read_invitation(session, secret, token)
        return render_template("accept.html", email=admin.email, token=token)
    password = request.form.get("password", "")
    if password != request.form.get("password_again", ""):
        flash("The two passwords differ.", "error")
        return redirect(url_for("console.accept", token=token))
    try:
        with _read() as session:  # a stranger's link costs no Argon2 run
            accounts.read_invitation(session, secret, token)
        password_hash = accounts.hash_password(password)  # outside any transaction
        with _write() as session:
            accounts.accept_invitation(
                session, secret, token, password_hash=password_hash, name=request.form.get("name")
            )
            end_session(session)
    except InvalidInput as exc:
        flash(str(exc), "error")
        return redirect(url_for("console.accept", token=token))
    return redirect(url_for("console.accepted"))


@console.get("/accepted")
def accepted() -> str:
    return render_template("accepted.html")


# --- clients --------------------------------------------------------------------------------------


@console.get("/", endpoint="clients")
def clients_page() -> str:
    with _read() as session:
        rows = clients.client_rows(session, principal())
    return render_template("clients.html", rows=rows, plans=ORG_PLANS)


@console.post("/clients")
def create_client() -> Any:
    with _write() as session:
        org = clients.create_client(
            session,
            principal(),
            name=request.form.get("name", "")[:200],
            plan=request.form.get("plan", "teams"),
            seats=_optional_int("seats") or 0,
            seat_limit=_optional_int("seat_limit"),
            billing_email=request.form.get("billing_email", "").strip()[:320] or None,
            owner_email=request.form.get("owner_email", "").strip()[:320] or None,
        )
        org_id, name = org.id, org.name
    flash(f"Created {name}. Next: create its SCIM token or LDAP connector.", "ok")
    return redirect(url_for("console.scim", org_id=org_id))


# --- organization: members ------------------------------------------------------------------------


@console.get("/orgs/<org_id>/")
def org_home(org_id: str) -> Any:
    return redirect(url_for("console.members_page", org_id=org_id))


@console.get("/orgs/<org_id>/members")
def members_page(org_id: str) -> str:
    f = members.MemberFilter(
        status=request.args.get("status") or None,
        role=request.args.get("role") or None,
        source=request.args.get("source") or None,
        q=request.args.get("q") or None,
        page=_int("page", 1, low=1),
        per_page=_int("per_page", 50, low=1, high=200),
    )
    with _read() as session:
        org = principal().org(session, org_id)
        page = members.find_members(session, org, f)
        sources = members.member_sources(session, org)
    return _org_page(
        "members.html",
        org,
        "members",
        page=page,
        f=f,
        sources=sources,
        statuses=MEMBER_STATUSES,
        roles=MEMBER_ROLES,
        actions=members.ACTIONS,
    )


def _member_question(org: Organization, preview: members.ActionPreview) -> Question | None:
    n, emails = len(preview.members), [m.email for m in preview.members]
    skipped = (
        [
            f"{len(preview.skipped)} other selected member(s) stay as they are "
            f"({preview.skipped[0].email} is {preview.skipped[0].status})."
        ]
        if preview.skipped
        else []
    )
    if preview.action == "revoke" and n:
        return Question(
            f"Revoke {n} member(s) of {org.name}?",
            [
                f"They lose access to {org.name}'s vault items at once and their seats are "
                "freed. Their groups and collection access are kept: Restore gives it back.",
                *skipped,
            ],
            f"Revoke {n} member(s)",
            emails,
        )
    if preview.action == "remove" and n:
        return Question(
            f"Remove {n} member(s) from {org.name}?",
            [
                f"They are deleted from {org.name} with their group memberships and their "
                "seats are freed. This cannot be undone: to come back, a member is invited and "
                "confirmed again.",
                *skipped,
            ],
            f"Remove {n} member(s)",
            emails,
        )
    if preview.action == "confirm" and preview.unchecked:
        k = len(preview.unchecked)
        return Question(
            f"Confirm {k} member(s) with no key recorded?",
            [
                f"{k} of the {n} member(s) to confirm have no key recorded: there is no "
                "fingerprint phrase to compare, so nothing shows that the key they receive the "
                "organization's vault items with is theirs.",
                "Ask them to accept the invitation again in their app, or confirm anyway.",
                *skipped,
            ],
            f"Confirm {n} member(s) anyway",
            [m.email for m in preview.unchecked],
        )
    return None


@console.post("/orgs/<org_id>/members/action")
def member_action(org_id: str) -> Any:
    action = request.form.get("action", "")
    if not _confirmed() and action in (*members.DESTRUCTIVE, "confirm"):
        with _read() as session:
            org = principal().org(session, org_id)
            preview = members.preview_action(
                session, org, action, request.form.getlist("member_id")
            )
            question = _member_question(org, preview)
            if question is not None:
                return _ask(question)
    with _write() as session:
        org = principal().org(session, org_id)
        report = members.act_on_members(
            session, org, action, request.form.getlist("member_id"), principal().actor
        )
    flash(report.summary(), "error" if report.skipped and not report.done else "ok")
    return redirect(_back())


@console.get("/orgs/<org_id>/confirmations")
def confirmations(org_id: str) -> str:
    with _read() as session:
        org = principal().org(session, org_id)
        queue = members.confirmation_queue(session, org)
    return _org_page(
        "confirmations.html", org, "confirmations", queue=queue, actions=members.ACTIONS
    )


# --- organization: groups and collections ---------------------------------------------------------


@console.get("/orgs/<org_id>/groups")
def groups_page(org_id: str) -> str:
    with _read() as session:
        org = principal().org(session, org_id)
        rows = groups.groups_overview(session, org)
    return _org_page("groups.html", org, "groups", groups=rows)


@console.get("/orgs/<org_id>/collections")
def collections_page(org_id: str) -> str:
    with _read() as session:
        org = principal().org(session, org_id)
        rows = groups.collections_overview(session, org)
    return _org_page("collections.html", org, "collections", collections=rows)


# --- organization: held deprovisions --------------------------------------------------------------


@console.get("/orgs/<org_id>/held")
def held_page(org_id: str) -> str:
    with _read() as session:
        org = principal().org(session, org_id)
        rows = held.pending_held(session, org)
    return _org_page("held.html", org, "held", rows=rows)


@console.post("/orgs/<org_id>/held/<int:held_id>/<decision>")
def held_decide(org_id: str, held_id: int, decision: str) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        if decision == "approve":
            outcome = held.approve(session, org, held_id, principal().actor)
        elif decision == "drop":
            held.drop(session, org, held_id, principal().actor)
            outcome = "dropped"
        else:
            raise NotFound(f"no decision {decision!r}")
    if outcome == "approved":
        flash(f"Approved held change {held_id}: it is applied.", "ok")
    else:
        flash(f"Dropped held change {held_id}: the member stays as they are.", "ok")
    return redirect(url_for("console.held_page", org_id=org_id))


def _bulk_decision(values: Any) -> str:
    decision = values.get("decision", "")
    if decision not in ("approve", "drop"):
        raise InvalidInput("choose Approve or Drop")
    return decision


@console.get("/orgs/<org_id>/held/bulk")
def held_bulk_confirm(org_id: str) -> str:
    """The confirmation step of a bulk decision: what will happen, and to how many."""
    decision = _bulk_decision(request.args)
    wanted = held.parse_filter(request.args)
    with _read() as session:
        org = principal().org(session, org_id)
        rows = held.matching(session, org, wanted)
        kinds: dict[str, int] = {}
        for row in rows:
            kinds[row.kind] = kinds.get(row.kind, 0) + 1
    return _org_page(
        "held_confirm.html",
        org,
        "held",
        decision=decision,
        wanted=wanted,
        count=len(rows),
        kinds=sorted(kinds.items()),
        sample=rows[:10],
        fields={
            **{k: request.args.get(k, "") for k in held.FILTER_FIELDS},
            "through_id": str(max((r.id for r in rows), default=0)),
        },
    )


@console.post("/orgs/<org_id>/held/bulk")
def held_bulk_decide(org_id: str) -> Any:
    decision = _bulk_decision(request.form)
    wanted = held.parse_filter(request.form)
    with _write() as session:
        org = principal().org(session, org_id)
        done = held.decide_matching(session, org, wanted, decision, principal().actor)
    if decision == "approve":
        flash(
            f"Approved {done.approved} held change(s): applied. "
            f"{done.gone} no longer asked for by the directory were dropped.",
            "ok",
        )
    else:
        flash(
            f"Dropped {done.dropped} held change(s): the members stay as they are until the "
            "directory changes them.",
            "ok",
        )
    return redirect(url_for("console.held_page", org_id=org_id))


# --- organization: mapping ------------------------------------------------------------------------


@console.get("/orgs/<org_id>/mapping")
def mapping_page(org_id: str) -> str:
    with _read() as session:
        org = principal().org(session, org_id)
        text, custom = mapping.current_mapping(session, org)
    return _org_page("mapping.html", org, "mapping", text=text, custom=custom)


def _uploaded_mapping() -> str:
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        data = upload.read(mapping.MAX_MAPPING_BYTES + 1)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("the mapping file is not UTF-8 text") from None
    return request.form.get("text", "")


@console.post("/orgs/<org_id>/mapping/plan")
def mapping_plan(org_id: str) -> Any:
    """The Plan of the new mapping; a mapping that does not load comes back in the editor as the
    admin wrote it, with its problems (a preview changes nothing, so no redirect)."""
    with _read() as session:
        org = principal().org(session, org_id)
        text = _uploaded_mapping()
        try:
            preview = mapping.preview_mapping(session, org, text, principal().actor)
        except mapping.InvalidMapping as exc:
            current, custom = mapping.current_mapping(session, org)
            page = _org_page(
                "mapping.html",
                org,
                "mapping",
                text=current,
                custom=custom,
                edited=text,
                problems=exc.problems,
            )
            return page, 422
    return _org_page("mapping_plan.html", org, "mapping", preview=preview)


@console.post("/orgs/<org_id>/mapping/apply")
def mapping_apply(org_id: str) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        done = mapping.apply_mapping(
            session,
            org,
            request.form.get("text", ""),
            request.form.get("plan_digest", ""),
            principal().actor,
        )
    message = f"Mapping applied: {done.applied} change(s) made"
    if done.held:
        message += f", {done.held} deprovision(s) held for approval"
    flash(message + ".", "ok")
    return redirect(url_for("console.mapping_page", org_id=org_id))


# --- organization: SCIM settings ------------------------------------------------------------------


def _shown(kind: str) -> dict[str, str] | None:
    """The secret a form's redirect brought to this page, if it is of `kind`; shown once."""
    shown = take_shown()
    return shown if shown is not None and shown.get("kind") == kind else None


@console.get("/orgs/<org_id>/scim")
def scim(org_id: str) -> str:
    issued = _shown("scim-token")
    with _read() as session:
        org = principal().org(session, org_id)
        return _org_page(
            "scim.html",
            org,
            "scim",
            base_url=gateway().config.scim_base_url(org.id),
            tokens=scim_settings.scim_tokens(session, org),
            issued=issued,
        )


def _issued_token(session: Session, org: Organization, secret: str, what: str) -> Any:
    show_once(session, {"kind": "scim-token", "secret": secret})
    flash(what, "ok")
    return redirect(url_for("console.scim", org_id=org.id))


@console.post("/orgs/<org_id>/scim/tokens")
def scim_token_create(org_id: str) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        issued = scim_settings.create_scim_token(
            session, org, request.form.get("description"), principal().actor
        )
        return _issued_token(session, org, issued.secret, "Created a SCIM token.")


def _token_question(session: Session, org: Organization, token_id: str, step: str) -> Question:
    token = scim_settings.scim_token(session, org, token_id)
    live = [t for t in scim_settings.scim_tokens(session, org) if t.revoked_at is None]
    name = f"{token.prefix}…" + (f" ({token.description})" if token.description else "")
    used = f"last used {_when(token.last_used_at)}" if token.last_used_at else "never used"
    others = f"{len(live) - 1} other live token(s) of {org.name} keep working."
    if step == "rotate":
        return Question(
            f"Rotate the SCIM token {name}?",
            [
                f"A new token is created and shown once, and {token.prefix}… ({used}) is revoked "
                "at once: the identity provider that uses it fails until you give it the new "
                "token.",
                others,
            ],
            "Rotate: revoke the old token",
            [],
        )
    return Question(
        f"Revoke the SCIM token {name}?",
        [
            f"Requests with {token.prefix}… ({used}) fail from now on: the identity provider "
            f"that uses it stops provisioning {org.name} until it has another token.",
            others,
        ],
        "Revoke the token",
        [],
    )


@console.post("/orgs/<org_id>/scim/tokens/<token_id>/rotate")
def scim_token_rotate(org_id: str, token_id: str) -> Any:
    if not _confirmed():
        with _read() as session:
            org = principal().org(session, org_id)
            return _ask(_token_question(session, org, token_id, "rotate"))
    with _write() as session:
        org = principal().org(session, org_id)
        issued = scim_settings.rotate_scim_token(session, org, token_id, principal().actor)
        return _issued_token(
            session, org, issued.secret, "Rotated the token: the old one is revoked."
        )


@console.post("/orgs/<org_id>/scim/tokens/<token_id>/revoke")
def scim_token_revoke(org_id: str, token_id: str) -> Any:
    if not _confirmed():
        with _read() as session:
            org = principal().org(session, org_id)
            return _ask(_token_question(session, org, token_id, "revoke"))
    with _write() as session:
        org = principal().org(session, org_id)
        token = scim_settings.revoke_scim_token(session, org, token_id, principal().actor)
        prefix = token.prefix
    flash(f"Revoked {prefix}…: requests with it fail from now on.", "ok")
    return redirect(url_for("console.scim", org_id=org_id))


# --- organization: LDAP connectors ----------------------------------------------------------------


def _ldap_page(org_id: str, **result: Any) -> str:
    with _read() as session:
        org = principal().org(session, org_id)
        history = connectors.sync_history(session, org)
    return _org_page(
        "ldap.html", org, "ldap", found=connectors.list_connectors(org), history=history, **result
    )


@console.get("/orgs/<org_id>/ldap")
def ldap(org_id: str) -> str:
    return _ldap_page(org_id)


@console.post("/orgs/<org_id>/ldap/<name>/<step>")
def ldap_step(org_id: str, name: str, step: str) -> Any:
    """Test and dry run change nothing and show their result; a run answers with a redirect to
    the page whose history lists it (a reload does not run it again)."""
    from connectors.ldap.sync import SyncFailed

    with _read() as session:
        org = principal().org(session, org_id)
    if step == "test":
        return _ldap_page(org_id, tested=(name, connectors.test_connector(org, name)))
    if step not in ("plan", "run"):
        raise NotFound(f"no LDAP step {step!r}")
    try:
        result = connectors.sync_now(
            gateway().db, org, name, dry_run=step == "plan", full=bool(request.form.get("full"))
        )
    except SyncFailed as exc:
        if step == "run":
            flash(f"{name}: the sync failed and changed nothing: {exc}", "error")
            return redirect(url_for("console.ldap", org_id=org_id))
        return _ldap_page(org_id, failed=(name, str(exc)))
    if step == "run":
        counts = ", ".join(
            f"{k} {v}" for k, v in result.counts.items() if k != "first_warnings" and v
        )
        flash(f"{name}: {result.kind} sync done" + (f": {counts}." if counts else "."), "ok")
        return redirect(url_for("console.ldap", org_id=org_id))
    return _ldap_page(org_id, synced=result)


# --- organization: deliveries ---------------------------------------------------------------------


@console.get("/orgs/<org_id>/deliveries")
def deliveries_page(org_id: str) -> str:
    added = _shown("webhook-secret")
    with _read() as session:
        org = principal().org(session, org_id)
        rows = deliveries.deliveries(session, org, kind=request.args.get("kind") or None)
        return _org_page(
            "deliveries.html",
            org,
            "deliveries",
            rows=rows,
            endpoints=webhooks.list_endpoints(session, org),
            display_url=display_url,
            added=added,
        )


@console.post("/orgs/<org_id>/webhooks")
def webhook_add(org_id: str) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        events = request.form.get("events", "").replace(",", " ").split()
        added = webhooks.add_endpoint(
            session,
            org,
            request.form.get("url", ""),
            secret_key=gateway().config.secret_key,
            allow_private=gateway().config.webhook_allow_private,
            actor=principal().actor,
            events=events,
            description=request.form.get("description"),
        )
        show_once(session, {"kind": "webhook-secret", "secret": added.secret})
        where = display_url(added.endpoint.url)
    flash(f"Added the webhook endpoint {where}.", "ok")
    return redirect(url_for("console.deliveries_page", org_id=org_id))


@console.post("/orgs/<org_id>/webhooks/<webhook_id>/remove")
def webhook_remove(org_id: str, webhook_id: str) -> Any:
    if not _confirmed():
        with _read() as session:
            org = principal().org(session, org_id)
            endpoint = webhooks.get_endpoint(session, org, webhook_id)
            return _ask(
                Question(
                    f"Remove the webhook endpoint {display_url(endpoint.url)}?",
                    [
                        f"Nothing more of {org.name} is sent to it, and the messages still "
                        "queued for it are dropped. Its receiver stops hearing about changes.",
                    ],
                    "Remove the endpoint",
                    [],
                )
            )
    with _write() as session:
        org = principal().org(session, org_id)
        webhooks.remove_endpoint(session, org, webhook_id, actor=principal().actor)
    flash("The webhook endpoint is removed; nothing more is sent to it.", "ok")
    return redirect(url_for("console.deliveries_page", org_id=org_id))


@console.post("/orgs/<org_id>/deliveries/<int:message_id>/resend")
def delivery_resend(org_id: str, message_id: int) -> Any:
    with _write() as session:
        org = principal().org(session, org_id)
        deliveries.redeliver(session, org, message_id, principal().actor)
    flash(f"Message {message_id} is queued again.", "ok")
    return redirect(url_for("console.deliveries_page", org_id=org_id))


# --- organization: event log ----------------------------------------------------------------------


def _date(name: str, *, end: bool = False) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"{name} must be a date like 2025-01-31") from None
    return day + timedelta(days=1) if end else day


def _event_filter(limit: int) -> events.EventFilter:
    before = request.args.get("before", "").strip()
    return events.EventFilter(
        type=request.args.get("type") or None,
        actor=request.args.get("actor") or None,
        target_id=request.args.get("target") or None,
        since=_date("since"),
        until=_date("until", end=True),
        before_id=int(before) if before.isascii() and before.isdigit() else None,
        limit=limit,
    )


@console.get("/orgs/<org_id>/events")
def events_page(org_id: str) -> str:
    f = _event_filter(100)
    with _read() as session:
        org = principal().org(session, org_id)
        rows = events.find_events(session, org, f)
        types = events.event_types(session, org)
    args = {k: v for k, v in request.args.items() if k != "before"}
    return _org_page("events.html", org, "events", rows=rows, types=types, args=args, f=f)


@console.get("/orgs/<org_id>/events.csv")
def events_export(org_id: str) -> Response:
    f = _event_filter(0)
    with _read() as session:
        org = principal().org(session, org_id)
        name = org.name

    def body() -> Iterator[str]:
        with _read() as session:
            found = session.get(Organization, org_id)
            assert found is not None
            yield from events.events_csv(session, found, f)

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    safe = "".join(c if c.isalnum() else "-" for c in name).strip("-") or "org"
    return Response(
        stream_with_context(body()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="events-{safe}-{stamp}.csv"'},
    )


# --- readiness, accounts, my account --------------------------------------------------------------


@console.get("/readiness")
def readiness_page() -> str:
    principal().require_provider()
    gw = gateway()
    checks = readiness.run_checks(gw.db, gw.config)
    return render_template("readiness.html", checks=checks)


@console.get("/accounts")
def accounts_page() -> str:
    principal().require_accounts()
    with _read() as session:
        rows = accounts.list_admins(session)
        orgs = clients.client_rows(session, principal())
    return render_template("accounts.html", rows=rows, orgs=orgs, roles=ADMIN_ROLES)


@console.post("/accounts/invite")
def account_invite() -> Any:
    principal().require_accounts()
    with _write() as session:
        admin = accounts.invite_admin(
            session,
            request.form.get("email", ""),
            role=request.form.get("role", ""),
            name=request.form.get("name", "").strip()[:200] or None,
            org_ids=request.form.getlist("org_id"),
            actor=principal().actor,
        )
        email = admin.email
    flash(f"Invited {email}: the e-mail is on its way.", "ok")
    return redirect(url_for("console.accounts_page"))


@console.post("/accounts/<admin_id>/<step>")
def account_step(admin_id: str, step: str) -> Any:
    principal().require_accounts()
    actor = principal().actor
    if step == "remove" and not _confirmed():
        with _read() as session:
            email = accounts.get_admin(session, admin_id).email
        return _ask(
            Question(
                f"Remove the console account {email}?",
                [
                    f"{email} can no longer sign in to the console, their sessions end and "
                    "their admin API keys stop working. To come back they are invited again."
                ],
                "Remove the account",
                [],
            )
        )
    with _write() as session:
        if step == "confirm":
            email = accounts.confirm_admin(session, admin_id, actor=actor).email
            message = f"Confirmed {email}: they can sign in now."
        elif step == "resend":
            email = accounts.resend_admin_invitation(session, admin_id, actor=actor).email
            message = f"Sent the invitation to {email} again."
        elif step == "remove":
            email = accounts.get_admin(session, admin_id).email
            accounts.remove_admin(session, admin_id, actor=actor)
            message = f"Removed {email}."
        else:
            raise NotFound(f"no account step {step!r}")
    flash(message, "ok")
    return redirect(url_for("console.accounts_page"))


@console.get("/me")
def me() -> str:
    issued = _shown("api-key")
    with _read() as session:
        keys = accounts.list_api_keys(session, principal().admin_id)
    return render_template("me.html", keys=keys, issued=issued)


@console.post("/me/keys")
def api_key_create() -> Any:
    with _write() as session:
        issued = accounts.issue_api_key(
            session,
            principal().admin_id,
            description=request.form.get("description", "").strip()[:200] or None,
        )
        show_once(session, {"kind": "api-key", "secret": issued.secret})
    flash("Created an API key.", "ok")
    return redirect(url_for("console.me"))


@console.post("/me/keys/<key_id>/revoke")
def api_key_revoke(key_id: str) -> Any:
    if not _confirmed():
        with _read() as session:
            key = accounts.get_api_key(session, principal().admin_id, key_id)
            prefix, used = key.prefix, key.last_used_at
        return _ask(
            Question(
                f"Revoke the API key {prefix}…?",
                [
                    f"Scripts and tools that use {prefix}… ("
                    + (f"last used {_when(used)}" if used else "never used")
                    + ") are refused from now on."
                ],
                "Revoke the key",
                [],
            )
        )
    with _write() as session:
        accounts.revoke_api_key(session, principal().admin_id, key_id)
    flash("The API key is revoked.", "ok")
    return redirect(url_for("console.me"))


@console.post("/me/password")
def password_change() -> Any:
    new = request.form.get("new_password", "")
    if new != request.form.get("new_password_again", ""):
        raise InvalidInput("the two new passwords differ")
    accounts.change_password(
        gateway().db,
        principal().admin_id,
        request.form.get("current_password", ""),
        new,
        on_success=start_session,
    )
    flash("Password changed; other sessions of this account are signed out.", "ok")
    return redirect(url_for("console.me"))
