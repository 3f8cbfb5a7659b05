"""Roles on every staff route (SPEC 12): support < marketer < admin.

`role_required("marketer")` is Flask-Login's login_required plus the role: an account with
too small a role gets a friendly 403 page and nothing changes (a form's CSRF token is
checked before, by Flask-WTF). A test checks that every staff route names its role.
"""

from __future__ import annotations

import functools

from flask_login import current_user, login_required

from survey_mailer import users

from ..errors import PageError


def role_required(role: str):
    users.check_role(role)

    def decorator(view):
        @functools.wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if not users.allows(current_user.role, role):
                raise PageError("You cannot do that",
                                f"This page is for the {role} role or above; your account "
                                f"is {current_user.role}. An admin can change that on the "
                                f"Team page.", 403)
            return view(*args, **kwargs)

        wrapped.required_role = role
        return wrapped

    return decorator
