from __future__ import annotations

from django.urls import URLPattern, path

from notifications.api import views

PREFIX = "integrations/notifications/"

urlpatterns: list[URLPattern] = [
    path(f"{PREFIX}sinks", views.SinkListCreateApi.as_view(), name="notification-sink-list"),
    path(f"{PREFIX}sinks/<int:pk>", views.SinkDetailApi.as_view(), name="notification-sink-detail"),
    path(f"{PREFIX}sinks/<int:pk>/test", views.SinkTestApi.as_view(), name="notification-sink-test"),
    path(f"{PREFIX}rules", views.RuleListCreateApi.as_view(), name="notification-rule-list"),
    path(f"{PREFIX}rules/<int:pk>", views.RuleDetailApi.as_view(), name="notification-rule-detail"),
    path(f"{PREFIX}problems", views.ProblemListApi.as_view(), name="notification-problem-list"),
    path(f"{PREFIX}problems/<int:pk>", views.ProblemDetailApi.as_view(), name="notification-problem-detail"),
    path(f"{PREFIX}problems/<int:pk>/acknowledge", views.ProblemAcknowledgeApi.as_view(),
         name="notification-problem-acknowledge"),
]
