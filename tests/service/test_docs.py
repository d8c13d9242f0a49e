"""docs/service.md documents every service setting."""

from pathlib import Path

from service.settings import Settings

DOCS = Path(__file__).parents[2] / "docs"


def test_every_setting_is_documented():
    text = (DOCS / "service.md").read_text() + (DOCS / "batch.md").read_text()
    missing = [f"CGN_{name.upper()}" for name in Settings.model_fields if f"CGN_{name.upper()}" not in text]
    assert not missing, f"undocumented settings: {missing}"
