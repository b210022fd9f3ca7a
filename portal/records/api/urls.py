"""URLs of the clinical-record API (mounted at /api/v1/)."""

from django.urls import path

from portal.records.api import standards, views

urlpatterns = [
    path("health", views.HealthView.as_view(), name="api-health"),
    path("studies", views.StudyListCreate.as_view(), name="api-studies"),
    path("studies/<int:pk>", views.StudyDetail.as_view(), name="api-study"),
    path("ai-outputs", views.AIOutputListCreate.as_view(), name="api-ai-outputs"),
    path("ai-outputs/<int:pk>", views.AIOutputDetail.as_view(), name="api-ai-output"),
    path("signed-reports", views.SignedReportListCreate.as_view(), name="api-signed-reports"),
    path("signed-reports/<int:pk>", views.SignedReportDetail.as_view(), name="api-signed-report"),
    path(
        "fhir/DiagnosticReport",
        standards.FhirDiagnosticReportView.as_view(),
        name="api-fhir-diagnosticreport",
    ),
    path("fhir/Patient", standards.FhirPatientView.as_view(), name="api-fhir-patient"),
    path("fhir/Practitioner", standards.FhirPractitionerView.as_view(), name="api-fhir-practitioner"),
    path("fhir", standards.FhirBundleView.as_view(), name="api-fhir-bundle"),
    path("hl7", standards.Hl7View.as_view(), name="api-hl7"),
    path("dicom", standards.DicomUploadView.as_view(), name="api-dicom"),
]
