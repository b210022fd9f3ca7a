"""Pages of peer learning, mounted under /peer/."""

from django.urls import path

from portal.peer.views import inbox, routing, teaching

urlpatterns = [
    path("inbox/", inbox.inbox, name="peer-inbox"),
    path("inbox/<int:pk>/open/", inbox.open_notification, name="peer-notification-open"),
    path("inbox/read-all/", inbox.mark_all_read, name="peer-inbox-read-all"),
    path("teaching/", teaching.teaching_sets, name="peer-teaching-sets"),
    path("teaching/<int:pk>/", teaching.teaching_set, name="peer-teaching-set"),
    path("teaching/<int:pk>/cases/<int:case_pk>/", teaching.teaching_case_edit, name="peer-teaching-case"),
    path(
        "teaching/<int:pk>/cases/<int:case_pk>/remove/",
        teaching.teaching_case_remove,
        name="peer-teaching-case-remove",
    ),
    path(
        "teaching/<int:pk>/export.pdf",
        teaching.teaching_set_export,
        {"export_format": "pdf"},
        name="peer-teaching-pdf",
    ),
    path(
        "teaching/<int:pk>/export.zip",
        teaching.teaching_set_export,
        {"export_format": "zip"},
        name="peer-teaching-bundle",
    ),
    path("rules/", routing.rules, name="peer-rules"),
    path("rules/<int:pk>/toggle/", routing.rule_toggle, name="peer-rule-toggle"),
    path("rules/run/", routing.run, name="peer-rules-run"),
]
