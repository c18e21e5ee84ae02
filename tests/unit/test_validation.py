import pytest

from bot.logs import mask
from bot.validation import deep_link_source, normalize_email, normalize_phone
from handlers.callbacks import AnswerCb, LeadCb, NavCb


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+380 67 123 4567", "+380671234567"),
        ("380671234567", "+380671234567"),  # contacts often come without the plus
        ("+1 (415) 555-2671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_phones_normalise_to_e164(raw, expected):
    assert normalize_phone(raw) == expected


def test_local_ukrainian_number_with_ukrainian_locale():
    assert normalize_phone("067 123 45 67", "uk") == "+380671234567"


@pytest.mark.parametrize("raw", ["", "hello", "123", "+1 000", "+380 67 123", "9" * 50])
def test_invalid_phones(raw):
    assert normalize_phone(raw) is None


def test_emails():
    assert normalize_email(" Ann@Example.COM ") == "Ann@example.com"
    assert normalize_email("not an email") is None
    assert normalize_email("a@b") is None


@pytest.mark.parametrize(
    ("payload", "source"),
    [(None, "direct"), ("ads_fb", "ads_fb"), ("A-z_0-9", "A-z_0-9"), ("x" * 64, "x" * 64),
     ("x" * 65, "direct"), ("bad payload", "direct"), ("<script>", "direct"), ("", "direct"), ("ü", "direct")],
)
def test_deep_link_payloads_are_validated(payload, source):
    assert deep_link_source(payload) == source


def test_personal_data_is_masked_in_logs_but_ids_are_not():
    line = mask("update 987654321 user 5551234567: +380 67 123 4567, 067-123-45-67, ann@example.com")
    assert "987654321" in line and "5551234567" in line
    assert "123 4567" not in line and "45-67" not in line and "ann@" not in line


def test_callback_data_fits_64_bytes_in_the_worst_case():
    longest_key = "k" * 32
    worst = [
        AnswerCb(step=longest_key, idx=99).pack(),
        NavCb(action="consent_yes", step=longest_key).pack(),
        LeadCb(action="x", lead=2**53, at=99, to=99, reason=99).pack(),
    ]
    for data in worst:
        assert len(data.encode()) <= 64, data
