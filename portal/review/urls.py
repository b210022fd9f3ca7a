"""Pages of the review workflow, mounted under /review/."""

from django.urls import path

from portal.review import views

urlpatterns = [
    path("queue/", views.queue, name="review-queue"),
    path("queue/assign/", views.assign, name="review-assign"),
    path("queue/mine/", views.my_assigned, name="review-my-assigned"),
    path("campaigns/", views.campaigns, name="review-campaigns"),
    path("cases/<int:pk>/", views.case, name="review-case"),
    path("cases/<int:pk>/adjudicate/", views.adjudicate, name="review-adjudicate"),
    path("dashboard/", views.dashboard, name="review-dashboard"),
    path("feedback/", views.my_feedback, name="review-feedback"),
    path("feedback/<int:pk>/acknowledge/", views.feedback_acknowledge, name="review-feedback-ack"),
    path("performance/", views.performance, name="review-performance"),
    path("performance.csv", views.performance_csv, name="review-performance-csv"),
    path("performance.pdf", views.performance_pdf_view, name="review-performance-pdf"),
]
