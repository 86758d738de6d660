from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_non_staff_user_with_control_tunnel_permission_may_stop_the_tunnel(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("tunneler", password="pw-tunnel-1")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.post("/api/v1/integrations/tunnel/stop").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="control_tunnel"))
    user = django_user_model.objects.get(pk=user.pk)
    assert client.post("/api/v1/integrations/tunnel/stop").status_code in {200, 202}
