"""Input serializers that refuse unknown fields, and say so in the OpenAPI schema.

A misspelt optional field ("speciality" for "specialty") must not be ignored where ignoring it changes
what happens (a cohort filter silently widened to every study). Such inputs derive from
:class:`StrictInput`: unknown keys are a 400 naming each, and the published schema states
``additionalProperties: false`` so that generated clients do not send them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers


class StrictInput(serializers.Serializer):
    """A serializer whose input may hold only its declared fields (at most 20 unknown ones are named)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Refuse keys the serializer does not declare."""
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({key: "Unknown field." for key in unknown[:20]})
        return super().validate(attrs)


class StrictInputExtension(OpenApiSerializerExtension):
    """The schema of every :class:`StrictInput`: as drf-spectacular maps it, closed to other keys."""

    target_class = StrictInput
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        """The usual component, with ``additionalProperties: false`` on requests."""
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema
