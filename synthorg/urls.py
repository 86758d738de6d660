from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from synthorg import views
from synthorg.metrics import metrics_view

admin.site.site_header = "SynthOrg Integrations"
admin.site.site_title = "SynthOrg Integrations"
admin.site.index_title = "Operator console"

api_v1 = [
    path("", include("synthorg.api.urls")),
    path("", include("integrations.api.urls")),
    path("", include("oauthflow.api.urls")),
    path("", include("webhooks.api.urls")),
    path("", include("catalog.api.urls")),
    path("", include("providers.api.urls")),
    path("", include("notifications.api.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view loads its init script from a URL instead of inlining it (CSP script-src 'self').
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="synthorg/swagger_ui.html"),
         name="swagger-ui"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    # Prometheus (synthorg/metrics.py): allowed networks or the bearer token only.
    path("metrics", metrics_view, name="metrics"),
]

handler404 = "synthorg.views.json_not_found"
handler500 = "synthorg.views.json_server_error"
