"""cirno."""
