"""Forms of the review pages: they turn query strings and posts into validated values (never raw SQL)."""

from __future__ import annotations

import re

from django import forms
from django.core.validators import RegexValidator

from portal.records.models import Specialty
from portal.review.models import (
    CampaignMethod,
    CorrectSide,
    DiscrepancyCategory,
    RadpeerScore,
    ReviewStatus,
    Verdict,
)
from portal.review.selectors import SORTS, QueueFilters
from portal.review.services import MAX_COMMENT_CHARS, VerdictInput

ANY = [("", "Any")]
MODALITY = RegexValidator(r"^[A-Za-z0-9]{1,16}$", "A DICOM modality code such as CT, MR or CR.")
SIGNIFICANCE_CHOICES = [
    ("significant", "With a significant discrepancy"),
    ("minor", "Minor discrepancies only"),
    ("none", "No discrepancy"),
]
SORT_CHOICES = [
    ("-date", "Newest study first"),
    ("date", "Oldest study first"),
    ("-significant", "Most significant discrepancies first"),
    ("-radpeer", "Highest suggested RADPEER first"),
]
assert {value for value, _ in SORT_CHOICES} == set(SORTS)  # noqa: S101 - import-time consistency check


class UpperChoiceField(forms.ChoiceField):
    """A choice of codes written in capitals ("CT"), also accepted in small letters ("ct")."""

    def to_python(self, value: object) -> str:
        return super().to_python(value).upper()


class QueueFilterForm(forms.Form):
    """The queue's filters and sort order (GET); every field optional."""

    date_from = forms.DateField(required=False, label="Study from")
    date_to = forms.DateField(required=False, label="Study to")
    specialty = forms.ChoiceField(choices=ANY + list(Specialty.choices), required=False)
    modality = forms.CharField(max_length=16, required=False, validators=[MODALITY])  # see __init__
    category = forms.ChoiceField(choices=ANY + list(DiscrepancyCategory.choices), required=False)
    significance = forms.ChoiceField(choices=ANY + SIGNIFICANCE_CHOICES, required=False)
    radpeer = forms.ChoiceField(choices=ANY + [(v, v) for v in RadpeerScore.values], required=False,
                                label="Suggested RADPEER")  # fmt: skip
    model_version = forms.IntegerField(min_value=1, max_value=2**62, required=False)
    reviewer = forms.IntegerField(min_value=1, max_value=2**62, required=False)
    status = forms.ChoiceField(choices=ANY + list(ReviewStatus.choices), required=False)
    sort = forms.ChoiceField(choices=SORT_CHOICES, required=False)
    cursor = forms.CharField(max_length=1024, required=False)

    def __init__(self, *args, modalities: list[str] | None = None, **kwargs) -> None:  # noqa: ANN002, ANN003
        """``modalities``: the codes the data holds; given, the modality filter is a list of them."""
        super().__init__(*args, **kwargs)
        if modalities is not None:
            choices = ANY + [(code, code) for code in modalities]
            self.fields["modality"] = UpperChoiceField(choices=choices, required=False)

    def clean_modality(self) -> str:
        return self.cleaned_data["modality"].upper()

    def clean(self) -> dict:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def filters(self) -> QueueFilters:
        """The validated filters (call after is_valid())."""
        data = self.cleaned_data
        return QueueFilters(
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            specialty=data.get("specialty") or "",
            modality=data.get("modality") or "",
            category=data.get("category") or "",
            significance=data.get("significance") or "",
            radpeer=data.get("radpeer") or "",
            model_version=data.get("model_version"),
            reviewer=data.get("reviewer"),
            status=data.get("status") or "",
        )

    def sort_order(self) -> str:
        """The chosen sort (newest first by default)."""
        return self.cleaned_data.get("sort") or "-date"


class AssignForm(forms.Form):
    """The chair gives the ticked cases of a queue page to one reviewer."""

    reviewer = forms.IntegerField(min_value=1, max_value=2**62)
    back = forms.CharField(max_length=2048, required=False)

    def __init__(self, data, *args, **kwargs) -> None:  # noqa: ANN001
        super().__init__(data, *args, **kwargs)
        self.case_values = data.getlist("cases") if data is not None else []

    def clean(self) -> dict:
        data = super().clean()
        if not self.case_values:
            raise forms.ValidationError("Tick at least one case.")
        if len(self.case_values) > 200 or not all(re.fullmatch(r"\d{1,18}", v) for v in self.case_values):
            raise forms.ValidationError("The ticked cases are not valid.")
        data["cases"] = sorted({int(v) for v in self.case_values})
        return data


class CampaignForm(QueueFilterForm):
    """A sampling campaign: name, method and its parameter, seed, reviewer, and the cohort's filters."""

    name = forms.CharField(max_length=128)
    method = forms.ChoiceField(choices=CampaignMethod.choices)
    percentage = forms.DecimalField(min_value=0.001, max_value=100, decimal_places=3, required=False)
    every_nth = forms.IntegerField(min_value=1, max_value=1_000_000, required=False)
    seed = forms.IntegerField(min_value=0, max_value=2**53 - 1, required=False)
    assign_to = forms.IntegerField(min_value=1, max_value=2**62, label="Reviewer")

    def clean(self) -> dict:
        data = super().clean()
        if data.get("method") == CampaignMethod.RANDOM and data.get("percentage") is None:
            self.add_error("percentage", "A random campaign needs a percentage.")
        if data.get("method") == CampaignMethod.EVERY_NTH and data.get("every_nth") is None:
            self.add_error("every_nth", "An every-Nth campaign needs N.")
        return data


def verdict_choices(own_category: str) -> list[tuple[str, str]]:
    """Agree, reject, or move the discrepancy to one of the other categories."""
    choices = [(Verdict.AGREE.value, "Agree"), (Verdict.NOT_A_DISCREPANCY.value, "Not a discrepancy")]
    choices += [
        (f"{Verdict.RECATEGORISE.value}:{value}", f"Really: {label}")
        for value, label in DiscrepancyCategory.choices
        if value != own_category
    ]
    return choices


#: The "not scored" choice: the radiologist's report is not judged (no verdict finds it wrong).
NOT_SCORED = ("", "Not scored - the signed report is not at fault")
SIDE_CHOICES = [("", "Who was right?"), *CorrectSide.choices]


class AdjudicationForm(forms.Form):
    """A verdict per engine discrepancy (``verdict_<id>``) with who was right (``side_<id>``) and
    whether the AI's error was carried into the report (``carried_<id>``); the RADPEER score of the
    radiologist's report where it is judged; comment and optional feedback.
    """

    radpeer = forms.ChoiceField(
        choices=[*RadpeerScore.choices, NOT_SCORED], widget=forms.RadioSelect, required=False
    )
    comment = forms.CharField(max_length=MAX_COMMENT_CHARS, required=False, widget=forms.Textarea)
    send_feedback = forms.BooleanField(required=False)
    feedback_message = forms.CharField(max_length=MAX_COMMENT_CHARS, required=False, widget=forms.Textarea)
    supersedes = forms.IntegerField(min_value=1, max_value=2**62, required=False)
    back = forms.CharField(max_length=2048, required=False)

    def __init__(self, *args, discrepancies=(), **kwargs) -> None:  # noqa: ANN001
        super().__init__(*args, **kwargs)
        self.discrepancy_ids = []
        for discrepancy in discrepancies:
            self.fields[f"verdict_{discrepancy.pk}"] = forms.ChoiceField(
                choices=verdict_choices(discrepancy.category), initial=Verdict.AGREE.value
            )
            self.fields[f"side_{discrepancy.pk}"] = forms.ChoiceField(choices=SIDE_CHOICES, required=False)
            self.fields[f"carried_{discrepancy.pk}"] = forms.BooleanField(required=False)
            self.discrepancy_ids.append(discrepancy.pk)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("send_feedback") and not (data.get("feedback_message") or "").strip():
            self.add_error("feedback_message", "Write the feedback to send, or untick 'send feedback'.")
        return data

    def verdicts(self) -> dict[int, VerdictInput]:
        """Verdicts by discrepancy id (call after is_valid())."""
        out = {}
        for pk in self.discrepancy_ids:
            verdict, _, category = self.cleaned_data[f"verdict_{pk}"].partition(":")
            out[pk] = VerdictInput(
                verdict=verdict,
                category=category,
                correct_side=self.cleaned_data.get(f"side_{pk}") or "",
                carried=bool(self.cleaned_data.get(f"carried_{pk}")),
            )
        return out
