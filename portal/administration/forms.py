"""Forms of the administration pages: they validate shape and size; the services decide the rest."""

from __future__ import annotations

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator

from portal.accounts.roles import Role

ROLE_CHOICES = [(role.value, role.value.replace("_", " ")) for role in Role]


class SearchForm(forms.Form):
    """The account list's search box."""

    q = forms.CharField(required=False, max_length=100, label="Username, name or e-mail")


class RolesForm(forms.Form):
    """An account's roles (none is allowed: such an account can sign in but sees nothing)."""

    roles = forms.MultipleChoiceField(
        choices=ROLE_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )


class UserCreateForm(RolesForm):
    """A new local account; a blank password makes an account that cannot sign in with one."""

    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = forms.EmailField(required=False, max_length=254)
    first_name = forms.CharField(required=False, max_length=150)
    last_name = forms.CharField(required=False, max_length=150)
    password = forms.CharField(
        required=False,
        max_length=128,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="At least 12 characters. Leave blank for a service account or a directory sign-in.",
    )


class DeactivateForm(forms.Form):
    """Why an account is switched off (kept in the audit log)."""

    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class TokenForm(forms.Form):
    """A new API token's name: which system uses it."""

    name = forms.CharField(max_length=100, label="Used by (system name)")
