"""The admin password: first setting, login, change."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, ValidationError
from wtforms.validators import DataRequired, EqualTo

from webui.admin import password_problem


def _strong(_form: FlaskForm, field: PasswordField) -> None:
    problem = password_problem(field.data or "")
    if problem:
        raise ValidationError(problem)


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        "New admin password", validators=[DataRequired("Choose a password."), _strong]
    )
    confirm = PasswordField(
        "Repeat it",
        validators=[DataRequired("Type the password again."), EqualTo("password", "Not the same.")],
    )


class LoginForm(FlaskForm):
    password = PasswordField("Admin password", validators=[DataRequired("Enter the password.")])


class ChangePasswordForm(SetPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired("Enter it.")])
