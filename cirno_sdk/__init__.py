"""cirno_sdk."""
