import factory
from rest_framework.test import APIClient

from accounts.models import User

PASSWORD = "Passw0rdX"


class UserClient(APIClient):
    """An API client signed in as `user` (the `auth_client` fixture)."""

    user: User


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    username = factory.Sequence(lambda n: f"user{n}")
    role = "trader"
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()
