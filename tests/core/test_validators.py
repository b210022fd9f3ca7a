"""Checks the services make themselves (portal/core/validators.py)."""

from __future__ import annotations

import pytest

from portal.core.errors import InvalidRecord
from portal.core.validators import require_text


@pytest.mark.parametrize("blank", ["", "   ", "\n\t", None])
def test_a_blank_required_text_is_refused_naming_the_field(blank):
    with pytest.raises(InvalidRecord, match="A reason is required.") as caught:
        require_text(blank, "reason", "A reason")  # type: ignore[arg-type]
    assert caught.value.field == "reason"


@pytest.mark.parametrize(
    "text", ["Claim letter received.", "<script>alert(1)</script>", "'; DROP TABLE x; --"]
)
def test_any_non_blank_text_passes_verbatim(text):
    assert require_text(text, "reason", "A reason") is None
