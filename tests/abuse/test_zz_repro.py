import pytest
pytestmark = pytest.mark.django_db
def test_r(ris):
    r = ris.post("/api/v1/hl7", data=b"", content_type="x-application/hl7-v2+er7")
    print(r.status_code, r.content[:200])
