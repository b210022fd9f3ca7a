"""Forms of the peer-learning pages: they only check shape and size; the services check the rules."""

from __future__ import annotations

from django import forms

from portal.peer import routing, teaching
from portal.records.models import Specialty


class TeachingSetForm(forms.Form):
    """A new teaching set: its title, the conference date and a short description."""

    title = forms.CharField(max_length=teaching.MAX_TITLE, strip=True)
    conference_date = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    description = forms.CharField(max_length=teaching.MAX_DESCRIPTION, required=False, widget=forms.Textarea)


class AddCaseForm(forms.Form):
    """A case to add, by its number (the queue and the case page show it)."""

    case = forms.IntegerField(min_value=1, max_value=2**63 - 1)


class TeachingCaseForm(forms.Form):
    """The chair's corrections of a copied case (de-identified again on save)."""

    ai_draft = forms.CharField(max_length=teaching.MAX_TEXT, widget=forms.Textarea, strip=False)
    signed_report = forms.CharField(max_length=teaching.MAX_TEXT, widget=forms.Textarea, strip=False)
    committee_comment = forms.CharField(
        max_length=teaching.MAX_TEXT, widget=forms.Textarea, required=False, strip=False
    )


class RoutingRuleForm(forms.Form):
    """A rule: reviewer (an account id), subspecialty and quota of open cases."""

    reviewer = forms.IntegerField(min_value=1, max_value=2**63 - 1)
    specialty = forms.ChoiceField(choices=Specialty.choices)
    max_open = forms.IntegerField(min_value=1, max_value=routing.MAX_OPEN)
    active = forms.BooleanField(required=False, initial=True)


class RuleToggleForm(forms.Form):
    """Switch a rule on or off."""

    active = forms.BooleanField(required=False)


class RoutingRunForm(forms.Form):
    """How many waiting cases one run may route."""

    limit = forms.IntegerField(min_value=1, max_value=routing.MAX_PER_RUN, initial=routing.MAX_PER_RUN)
