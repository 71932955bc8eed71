"""Password policy: at least one uppercase letter and one digit (length is Django's validator)."""

from __future__ import annotations

from django.core.exceptions import ValidationError


class UppercaseDigitValidator:
    def validate(self, password: str, user=None) -> None:  # type: ignore[no-untyped-def]
        errors = []
        if not any(c.isupper() for c in password):
            errors.append(ValidationError("The password must contain at least one uppercase letter.", code="no_upper"))
        if not any(c.isdigit() for c in password):
            errors.append(ValidationError("The password must contain at least one digit.", code="no_digit"))
        if errors:
            raise ValidationError(errors)

    def get_help_text(self) -> str:
        return "Your password must contain at least one uppercase letter and one digit."
