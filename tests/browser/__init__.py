"""Browser tests: the console and the chat client in the system's headless Chromium."""
