"""The Users pages (Administrator of every tenant): the local users with their roles, tenants,
state and last sign-in; add one (a typed or generated password, the generated one shown once),
set roles and tenants, disable/enable, reset a password (generated, shown once), remove (after
a confirmation). They call ``UserAdmin`` as ``/admin/v1/users`` and ``dialback users`` do; an
operator cannot disable or remove their own account (the service refuses it)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Path, Request
from starlette.responses import Response

from dialback.identity.roles import Permission, Principal, Role
from dialback.identity.users import User, parse_roles, parse_tenants
from dialback.kit.errors import ApiError
from dialback.ui.deps import UiProblem, UiRedirect, ui_requires, ui_router
from dialback.ui.forms import (
    FormState,
    field_error,
    form_flag,
    form_list,
    form_text,
    notice_of,
    once_token,
    refuse_resent,
    refused_fields,
    shown_once,
)
from dialback.ui.rendering import render
from dialback.web.deps import ContainerDep

router = ui_router()
NAV_PATHS = ("/users",)

ROLE_CHOICES = [
    (Role.MONITOR.value, "Monitor", "views callbacks, services, health"),
    (Role.SUPERVISOR.value, "Supervisor", "creates, reschedules, cancels and exports callbacks"),
    (Role.DEVELOPER.value, "Developer", "log level, corrId look-up"),
    (Role.ADMINISTRATOR.value, "Administrator", "everything, incl. tenants, keys and users"),
]
_FIELDS = {"username", "display_name", "roles", "tenants", "password", "password2"}

Reader = Annotated[Principal, ui_requires(Permission.USERS_READ, every_tenant=True)]
Writer = Annotated[Principal, ui_requires(Permission.USERS_WRITE, every_tenant=True)]
Username = Annotated[str, Path(min_length=1, max_length=64)]


def _is_self(who: Principal, username: str) -> bool:
    return who.kind == "local" and who.name == username


class _Choice:
    """What a roles-and-tenants form chose (to show again with its errors)."""

    def __init__(self, form: Any) -> None:
        self.roles = form_list(form, "roles")
        self.every_tenant = form_text(form, "scope", 10) != "some"
        self.tenants = form_list(form, "tenants")

    def parse(self, errors: dict[str, str]) -> tuple[Any, Any]:
        """(roles, tenants) through the service's own parsers; their errors into ``errors``."""
        roles = tenants = None
        try:
            roles = parse_roles(self.roles)
        except ApiError as exc:
            errors["roles"] = field_error(exc.message, _FIELDS)[1]
        try:
            tenants = None if self.every_tenant else parse_tenants(self.tenants)
        except ApiError as exc:
            errors["tenants"] = field_error(exc.message, _FIELDS)[1]
        return roles, tenants


async def _tenant_names(c: Any) -> list[str]:
    return [t.name for t in await c.tenants.list()]


def _user_values(user: User) -> dict[str, Any]:
    return {
        "roles": sorted(r.value for r in user.roles),
        "every_tenant": user.tenants is None,
        "tenants": sorted(user.tenants or ()),
        "display_name": user.display_name,
    }


_NEW_USER = {"roles": [], "every_tenant": True, "tenants": [], "password_mode": "generate"}


async def _list_page(
    request: Request, c: Any, who: Principal, state: FormState = FormState()
) -> Response:
    users: list[User] = await c.users.list()
    return render(
        request,
        "users/list.html",
        state.status,
        users=users,
        can_write=who.can(Permission.USERS_WRITE),
        role_choices=ROLE_CHOICES,
        tenant_names=await _tenant_names(c),
        errors=state.errors,
        values=state.values or _NEW_USER,
        once=shown_once.new(),
        notice=state.notice,
    )


_NOTICES = {
    "removed": "User removed; their sessions ended.",
    "created": "User created.",
    "saved": "Roles and tenants saved; they apply from the user's next request.",
    "disabled": "User disabled; their sessions ended.",
    "enabled": "User enabled.",
}


@router.get("/users", name="ui_users")
async def users_page(request: Request, c: ContainerDep, who: Reader) -> Response:
    """Every local user: roles, tenants, state, last sign-in; the add form."""
    return await _list_page(request, c, who, FormState(notice=notice_of(request, _NOTICES)))


@router.post("/users", name="create_user")
async def create_user(request: Request, c: ContainerDep, who: Writer) -> Response:
    """Add a local user; a generated password is shown once on the answer."""
    form = await request.form()
    token = once_token(form)
    choice = _Choice(form)
    username = form_text(form, "username", 64)
    display_name = form_text(form, "display_name")
    generate = form_text(form, "password_mode", 10) != "type"
    raw_password, raw_again = form.get("password", ""), form.get("password2", "")
    password = raw_password if isinstance(raw_password, str) else ""
    again = raw_again if isinstance(raw_again, str) else ""
    values = {
        "username": username,
        "display_name": display_name,
        "roles": choice.roles,
        "every_tenant": choice.every_tenant,
        "tenants": choice.tenants,
        "password_mode": "generate" if generate else "type",
    }
    errors: dict[str, str] = {}
    if not username:
        errors["username"] = "a user needs a name"
    roles, tenants = choice.parse(errors)
    if not generate:
        if not password:
            errors["password"] = "type the password, or choose a generated one"
        elif password != again:
            errors["password2"] = "the two passwords differ"
    if not errors:
        if not shown_once.use(token):
            raise refuse_resent("password")
        try:
            made = await c.users.add(
                username,
                roles,
                tenants,
                password=None if generate else password,
                display_name=display_name,
            )
        except ApiError as exc:
            shown_once.release(token)
            errors = refused_fields(exc, _FIELDS)
            return await _list_page(request, c, who, FormState(exc.status, errors, values))
        if made.generated_password is None:
            raise UiRedirect(f"/ui/users/{quote(made.user.username)}?done=created")
        return render(
            request,
            "users/password.html",
            201,
            user=made.user,
            password=made.generated_password,
            created=True,
        )
    return await _list_page(request, c, who, FormState(400, errors, values))


async def _user_page(
    request: Request, c: Any, who: Principal, username: str, state: FormState = FormState()
) -> Response:
    user: User = await c.users.get(username)
    return render(
        request,
        "users/user.html",
        state.status,
        user=user,
        is_self=_is_self(who, user.username),
        can_write=who.can(Permission.USERS_WRITE),
        role_choices=ROLE_CHOICES,
        tenant_names=sorted(set(await _tenant_names(c)) | set(user.tenants or ())),
        errors=state.errors,
        values=state.values or _user_values(user),
        once=shown_once.new(),
        notice=state.notice,
    )


@router.get("/users/{username}", name="ui_user")
async def user_page(request: Request, username: Username, c: ContainerDep, who: Reader) -> Response:
    """One user: roles, tenants, state; change them, reset the password, remove."""
    state = FormState(notice=notice_of(request, _NOTICES))
    return await _user_page(request, c, who, username, state)


@router.post("/users/{username}", name="patch_user")
async def patch_user(
    request: Request, username: Username, c: ContainerDep, who: Writer
) -> Response:
    """Set a user's roles, tenants and display name."""
    form = await request.form()
    choice = _Choice(form)
    display_name = form_text(form, "display_name")
    errors: dict[str, str] = {}
    roles, tenants = choice.parse(errors)
    values = {
        "roles": choice.roles,
        "every_tenant": choice.every_tenant,
        "tenants": choice.tenants,
        "display_name": display_name,
    }
    if not errors:
        try:
            user = await c.users.update(
                username,
                roles=roles,
                tenants=tenants,
                set_tenants=True,
                display_name=display_name,
                by=who,
            )
        except ApiError as exc:
            errors = refused_fields(exc, _FIELDS)
            return await _user_page(
                request, c, who, username, FormState(exc.status, errors, values)
            )
        raise UiRedirect(f"/ui/users/{quote(user.username)}?done=saved")
    return await _user_page(request, c, who, username, FormState(400, errors, values))


@router.post("/users/{username}/state", name="set_user_disabled")
async def set_user_state(
    request: Request, username: Username, c: ContainerDep, who: Writer
) -> Response:
    """Disable (ending their sessions) or enable a user; never one's own account."""
    form = await request.form()
    user = await c.users.update(username, disabled=form_flag(form, "disabled"), by=who)
    done = "disabled" if user.disabled else "enabled"
    raise UiRedirect(f"/ui/users/{quote(user.username)}?done={done}")


@router.post("/users/{username}/password", name="reset_password")
async def reset_password(
    request: Request, username: Username, c: ContainerDep, who: Writer
) -> Response:
    """A new generated password, shown once; the user's sessions end."""
    form = await request.form()
    if not shown_once.use(once_token(form)):
        raise refuse_resent("password")
    made = await c.users.reset_password(username)
    return render(
        request,
        "users/password.html",
        200,
        user=made.user,
        password=made.generated_password,
        created=False,
    )


@router.get("/users/{username}/remove", name="ui_remove_user")
async def remove_confirm(
    request: Request, username: Username, c: ContainerDep, who: Writer
) -> Response:
    """Ask before removing a user."""
    user: User = await c.users.get(username)
    if _is_self(who, user.username):
        raise UiProblem(409, "Not possible", "You cannot remove your own account.")
    return render(request, "users/remove.html", user=user)


@router.post("/users/{username}/remove", name="delete_user")
async def remove_user(
    request: Request, username: Username, c: ContainerDep, who: Writer
) -> Response:
    """Remove a user; their sessions end."""
    await c.users.remove(username, by=who)
    raise UiRedirect("/ui/users?done=removed")
