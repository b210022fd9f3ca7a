"""Pages of the record (mounted at /records/): the interface monitor and the clinician directory."""

from django.urls import path

from portal.records import views

urlpatterns = [
    path("interfaces/", views.interfaces, name="records-interfaces"),
    path("interfaces/<int:pk>/replay", views.interface_replay, name="records-interface-replay"),
    path("clinicians/", views.clinician_directory, name="records-clinicians"),
    path("clinicians/<int:pk>/link", views.clinician_link, name="records-clinician-link"),
]
