"""AES-256-GCM secrets: round trip, tampering, wrong keys, key order, rotation."""

from __future__ import annotations

import base64
import io

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from exchanges import crypto
from exchanges.crypto import DecryptionError, decrypt, encrypt, mask_secret
from exchanges.models import ExchangeConfig

from .factories import ExchangeConfigFactory

KEY_A = base64.b64encode(b"A" * 32).decode()
KEY_B = base64.b64encode(b"B" * 32).decode()
KEY_C = base64.b64encode(b"C" * 32).decode()


def test_round_trip_uses_the_first_key_and_a_fresh_nonce() -> None:
    first = encrypt("s3cret-value", keys=[KEY_A, KEY_B])
    second = encrypt("s3cret-value", keys=[KEY_A, KEY_B])
    assert first != second
    assert "s3cret" not in first
    assert first.startswith(f"v1:{crypto.key_id_for(b'A' * 32)}:")
    assert decrypt(first, keys=[KEY_A, KEY_B]) == "s3cret-value"


def test_any_configured_key_decrypts_whatever_its_position() -> None:
    ciphertext = encrypt("value", keys=[KEY_A])
    assert decrypt(ciphertext, keys=[KEY_B, KEY_A]) == "value"
    assert decrypt(ciphertext, keys=[KEY_C, KEY_B, KEY_A]) == "value"


@pytest.mark.parametrize("position", [10, 20, -5])
def test_tampering_is_detected(position: int) -> None:
    ciphertext = encrypt("value", keys=[KEY_A])
    body = list(ciphertext)
    body[position] = "A" if body[position] != "A" else "B"
    with pytest.raises(DecryptionError):
        decrypt("".join(body), keys=[KEY_A])


def test_context_binds_a_ciphertext_to_its_row_and_field() -> None:
    ciphertext = encrypt("value", context="row-1:api_secret", keys=[KEY_A])
    assert decrypt(ciphertext, context="row-1:api_secret", keys=[KEY_A]) == "value"
    with pytest.raises(DecryptionError, match="tampered|another record"):
        decrypt(ciphertext, context="row-2:api_secret", keys=[KEY_A])


def test_a_key_we_do_not_have_is_a_clear_error_without_key_material() -> None:
    ciphertext = encrypt("value", keys=[KEY_A])
    with pytest.raises(DecryptionError) as info:
        decrypt(ciphertext, keys=[KEY_B])
    message = str(info.value)
    assert crypto.key_id_for(b"A" * 32) in message
    assert KEY_A not in message and KEY_B not in message


@pytest.mark.parametrize("garbage", ["", "plain text", "v1:abc:xyz", "v2:12345678:AAAA", "v1:12345678:!!!!"])
def test_garbage_is_a_decryption_error(garbage: str) -> None:
    with pytest.raises(DecryptionError):
        decrypt(garbage, keys=[KEY_A])


def test_bad_master_keys_are_a_configuration_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="#2"):
        encrypt("x", keys=[KEY_A, base64.b64encode(b"short").decode()])
    with pytest.raises(ImproperlyConfigured):
        encrypt("x", keys=[])


def test_mask_secret() -> None:
    assert mask_secret("abcdefghijklA4B1") == "****A4B1"
    assert mask_secret("short") == "****"
    assert mask_secret("") == ""


@pytest.mark.django_db
def test_rotation_re_encrypts_every_secret_with_the_new_first_key(settings) -> None:
    settings.ENCRYPTION_KEYS = [KEY_A]
    with_password = ExchangeConfigFactory.create(
        api_key="key-one-1234567890", api_secret="secret-one", password="pass-1"
    )
    plain = ExchangeConfigFactory.create(api_key="key-two-1234567890", api_secret="secret-two")
    old_ciphertext = ExchangeConfig.objects.get(pk=plain.pk).api_secret_encrypted

    settings.ENCRYPTION_KEYS = [KEY_B, KEY_A]  # new first key; the old one still decrypts
    assert ExchangeConfig.objects.get(pk=plain.pk).credentials().api_secret == "secret-two"

    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "Re-encrypted 5 secrets (2 exchange configs, 0 notification channels)" in out.getvalue()
    assert "(5 were under an older key)" in out.getvalue()

    settings.ENCRYPTION_KEYS = [KEY_B]  # the old key can go now
    rotated = ExchangeConfig.objects.get(pk=with_password.pk)
    assert rotated.credentials().api_key == "key-one-1234567890"
    assert rotated.credentials().password == "pass-1"
    assert not crypto.needs_rotation(rotated.api_key_encrypted)
    assert ExchangeConfig.objects.get(pk=plain.pk).api_secret_encrypted != old_ciphertext


@pytest.mark.django_db
def test_rotation_changes_nothing_when_a_secret_cannot_be_decrypted(settings) -> None:
    settings.ENCRYPTION_KEYS = [KEY_A]
    good = ExchangeConfigFactory.create(api_key="key-good-123456789", api_secret="good")
    ExchangeConfigFactory.create(api_key="key-lost-123456789", api_secret="lost")
    before = ExchangeConfig.objects.get(pk=good.pk).api_key_encrypted
    ExchangeConfig.objects.exclude(pk=good.pk).update(api_secret_encrypted=encrypt("x", keys=[KEY_C]))

    settings.ENCRYPTION_KEYS = [KEY_B, KEY_A]
    with pytest.raises(Exception, match="Nothing changed"):
        call_command("rotate_encryption_key", stdout=io.StringIO())
    assert ExchangeConfig.objects.get(pk=good.pk).api_key_encrypted == before


@pytest.mark.django_db
def test_credentials_repr_and_model_str_hold_no_secret() -> None:
    config = ExchangeConfigFactory.create(api_key="visible-key-ABCD", api_secret="the-secret-value")
    creds = config.credentials()
    assert creds.api_secret == "the-secret-value"
    for text in (repr(creds), str(config), repr(config)):
        assert "the-secret-value" not in text and "visible-key-ABCD" not in text
    assert config.api_key_masked == "****ABCD"
